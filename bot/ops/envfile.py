"""Create and read the local `.env` file, so that secrets never live in the repository."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import MutableMapping
from pathlib import Path

from bot.settings import PROJECT_ROOT

GENERATED_SECRETS = (
    "RASA_TOKEN",
    "SECRET_KEY",
    "INTERNAL_API_TOKEN",
    "RASA_CHANNEL_SECRET",
    "ACTION_SERVER_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "WIDGET_IDENTITY_SECRET",
)


def ensure_env_file(path: Path, example: Path) -> bool:
    """Write `path` from `example` with fresh random secrets, unless it exists. Return True if written."""
    if path.exists():
        return False
    lines = []
    for line in example.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name in GENERATED_SECRETS and not value:
            line = f"{name}={secrets.token_urlsafe(32)}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return True


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


def main() -> None:
    """Create `.env` from `.env.example` on first run."""
    if ensure_env_file(PROJECT_ROOT / ".env", PROJECT_ROOT / ".env.example"):
        print("created .env with fresh random secrets (git-ignored)", file=sys.stderr)


if __name__ == "__main__":
    main()
