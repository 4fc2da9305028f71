"""`rasa run` with its HTTP API token taken from the environment (RASA_TOKEN), not the command line.

A command line is readable by every user of the machine (`ps`); a process's environment is not.
This file runs in the Rasa environment as a plain script, so it imports nothing of CareLoop's:
`.venvs/rasa/bin/python bot/ops/rasa_run.py <rasa run options>`.
"""

import os
import sys

from rasa.__main__ import main

if __name__ == "__main__":
    token = os.environ.get("RASA_TOKEN", "")
    if not token:
        sys.exit("RASA_TOKEN is not set: Rasa's HTTP API must not run without a token")
    sys.argv = ["rasa", "run", "--auth-token", token, *sys.argv[1:]]
    main()
