"""Write `.env.example` from the settings' declarations, and the local `.env` with fresh secrets.

`python -m bot.ops.envfile` creates `.env` on first run (secrets never live in the repository);
`--example` rewrites `.env.example` after a setting changed in bot/settings.py; `--check` fails
while it is out of date.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import textwrap
from pathlib import Path

from bot.bootstrap import load_env_file, parse_env_file
from bot.settings import PROJECT_ROOT, Setting, declared

__all__ = ["ensure_env_file", "example_text", "generated_secrets", "load_env_file", "parse_env_file"]

EXAMPLE = PROJECT_ROOT / ".env.example"
HEADER = (
    "CareLoop settings. `make run` copies this file to .env on first run and fills the secrets with "
    "random values; .env is git-ignored. Generated from bot/settings.py, where each setting is "
    "declared once: after changing one there, run `python -m bot.ops.envfile --example`."
)
SECRET_NOTE = "Secret: `make run` writes a random one into .env."
WIDTH = 100


def generated_secrets() -> frozenset[str]:
    """The variables .env gets a fresh random value for."""
    return frozenset(setting.name for setting in declared() if setting.secret)


def example_text() -> str:
    """The text of `.env.example`: every setting with its comment and default, in groups."""
    lines = _comment(HEADER)
    for setting in declared():
        if setting.heading:
            lines += ["", f"# --- {setting.heading} ---"]
        lines += _comment(_doc_of(setting))
        lines.append(f"{setting.name}={setting.example}")
    return "\n".join(lines) + "\n"


def _doc_of(setting: Setting) -> str:
    if not setting.secret:
        return setting.doc
    return f"{setting.doc.rstrip('.')}. {SECRET_NOTE}"


def _comment(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent="# ",
        subsequent_indent="# ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def ensure_env_file(path: Path, example: Path) -> bool:
    """Write `path` from `example` with fresh random secrets, unless it exists. Return True if written."""
    if path.exists():
        return False
    fresh = generated_secrets()
    lines = []
    for line in example.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name in fresh and not value:
            line = f"{name}={secrets.token_urlsafe(32)}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return True


def main(argv: list[str] | None = None) -> int:
    """Create `.env` from `.env.example` on first run, or write or check `.env.example`."""
    parser = argparse.ArgumentParser(prog="python -m bot.ops.envfile", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--example", action="store_true", help="rewrite .env.example from bot/settings.py")
    what.add_argument("--check", action="store_true", help="fail if .env.example is out of date")
    args = parser.parse_args(argv)
    if args.example:
        EXAMPLE.write_text(example_text())
        print(f"wrote {EXAMPLE.name} ({len(declared())} settings)", file=sys.stderr)
    elif args.check:
        if not EXAMPLE.exists() or EXAMPLE.read_text() != example_text():
            print(".env.example is out of date: run `python -m bot.ops.envfile --example`", file=sys.stderr)
            return 1
    elif ensure_env_file(PROJECT_ROOT / ".env", EXAMPLE):
        print("created .env with fresh random secrets (git-ignored)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
