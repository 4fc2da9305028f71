"""`rasa run` with its HTTP API token taken from the environment (RASA_TOKEN), not the command line.

A command line is readable by every user of the machine (`ps`); a process's environment is not.
credentials.yml and endpoints.yml read the other two secrets from the environment as well: the
gateway's channel secret (RASA_CHANNEL_SECRET) and the action server's token (ACTION_SERVER_TOKEN).
This file runs in the Rasa environment as a plain script, so it imports nothing of CareLoop's:
`.venvs/rasa/bin/python bot/ops/rasa_run.py <rasa run options>`.
"""

import os
import sys

from rasa.__main__ import main

SECRETS = {
    "RASA_TOKEN": "Rasa's HTTP API must not run without a token",
    "RASA_CHANNEL_SECRET": "the gateway's channel must not take messages from anyone",
    "ACTION_SERVER_TOKEN": "the action server answers only calls that carry it",
}

if __name__ == "__main__":
    for name, why in SECRETS.items():
        if not os.environ.get(name, "").strip():
            sys.exit(f"{name} is not set: {why}")
    token = os.environ["RASA_TOKEN"]
    sys.argv = ["rasa", "run", f"--auth-token={token}", *sys.argv[1:]]  # = : a token may begin with "-"
    main()
