"""Bring the CRM schema up to date: `python -m bot.crm.migrate [revision]`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    """An Alembic configuration for `url`, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision`."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def main() -> None:
    from bot.bootstrap import bootstrap

    settings = bootstrap(command=True)
    upgrade(settings.database_url, sys.argv[1] if len(sys.argv) > 1 else "head")
    print("CRM schema is up to date", file=sys.stderr)


if __name__ == "__main__":
    main()
