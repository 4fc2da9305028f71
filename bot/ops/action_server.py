"""Serve the custom actions on loopback only: `python -m bot.ops.action_server`.

rasa_sdk's own launcher binds every interface (0.0.0.0); the actions write to the CRM, so only
the Rasa server on this machine may call them.
"""

from __future__ import annotations

import logging

from rasa_sdk.endpoint import create_app

from bot.ops.envfile import load_env_file
from bot.settings import PROJECT_ROOT, Settings


def main() -> None:
    load_env_file(PROJECT_ROOT / ".env")
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app("bot.actions", cors_origins=[])
    app.run("127.0.0.1", settings.action_server_port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
