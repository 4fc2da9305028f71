"""The local .env: created once with random secrets, read without overriding the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.ops.envfile import ensure_env_file, load_env_file, parse_env_file


def test_env_file_is_created_once_with_fresh_secrets(tmp_path: Path, project_root: Path) -> None:
    target = tmp_path / ".env"
    assert ensure_env_file(target, project_root / ".env.example") is True
    values = parse_env_file(target)
    assert len(values["RASA_TOKEN"]) >= 32 and len(values["SECRET_KEY"]) >= 32
    assert values["RASA_TOKEN"] != values["SECRET_KEY"]
    assert target.stat().st_mode & 0o077 == 0  # readable by its owner only
    before = target.read_text()
    assert ensure_env_file(target, project_root / ".env.example") is False
    assert target.read_text() == before


def test_example_lists_every_setting(project_root: Path) -> None:
    import re

    listed = set(parse_env_file(project_root / ".env.example"))
    source = (project_root / "bot" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.get\(|, )"([A-Z][A-Z0-9_]+)"', source))
    assert len(read) >= 10
    assert read <= listed, f"not in .env.example: {read - listed}"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# comment\nA=from-file\nB='quoted'\nEMPTY=\n")
    env = {"A": "from-env"}
    load_env_file(path, env)
    assert env == {"A": "from-env", "B": "quoted"}


def test_malformed_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("GOOD=1\nthis is not a setting\n")
    with pytest.raises(ValueError, match=r"\.env:2: expected NAME=value"):
        parse_env_file(path)
