"""The start every entry point shares: `.env` loaded, the settings read and checked, logging set up.

Each `python -m ...` main calls `bootstrap()` first; code that needs the settings later in a
process it does not start (the actions, the scheduler's jobs) calls `load_settings()`.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

from bot.settings import PROJECT_ROOT, Settings, declared

ENV_FILE = PROJECT_ROOT / ".env"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


def bootstrap(*, command: bool = False) -> Settings:
    """Load `.env`, read the settings and set up logging; return the settings.

    A service logs at LOG_LEVEL; a command-line tool (`command=True`) only warnings and errors, so
    that what it prints stays readable.
    """
    settings = load_settings(ENV_FILE)
    configure_logging("WARNING" if command else settings.log_level)
    for name, meant in misspelt_names(ENV_FILE):
        log.warning("%s in .env is no CareLoop setting and is ignored: did you mean %s?", name, meant)
    return settings


def load_settings(env_file: Path = ENV_FILE) -> Settings:
    """The settings from the process environment, with `env_file` filling what it leaves unset."""
    load_env_file(env_file)
    return Settings.from_env()


def configure_logging(level: str) -> None:
    """One line per event with the logger's name; chatty HTTP clients only from WARNING."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request URLs carry the Telegram token
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(max(logging.getLevelName(level), logging.INFO))


def parse_env_file(path: Path) -> dict[str, str]:
    """Read `NAME=value` lines; blank lines and `#` comments are ignored."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"{path}:{number}: expected NAME=value")
        values[name.strip()] = value.strip().strip('"').strip("'")
    return values


def load_env_file(path: Path, environ: MutableMapping[str, str] | None = None) -> None:
    """Copy values from `path` into the environment without overriding what is already set."""
    env = os.environ if environ is None else environ
    if not path.exists():
        return
    for name, value in parse_env_file(path).items():
        if value and not env.get(name):
            env[name] = value


def misspelt_names(path: Path) -> list[tuple[str, str]]:
    """Names in the env file that no setting declares but one nearly does, each with that one."""
    if not path.exists():
        return []
    # Only near misses: .env may hold variables other tools read (a test database, a cache).
    known = [setting.name for setting in declared()]
    found = []
    for name in parse_env_file(path):
        meant = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if name not in known and meant:
            found.append((name, meant[0]))
    return found
