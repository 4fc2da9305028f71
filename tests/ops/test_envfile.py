"""The local .env: created once with random secrets, read without overriding the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.ops.envfile import (
    ensure_env_file,
    example_text,
    generated_secrets,
    load_env_file,
    main,
    parse_env_file,
)
from bot.settings import Settings, declared


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
    listed = set(parse_env_file(project_root / ".env.example"))
    read = {setting.name for setting in declared()}  # what Settings.from_env reads
    assert len(read) >= 10
    assert read <= listed, f"not in .env.example: {read - listed}"
    assert listed <= read, f"in .env.example but read by no setting: {listed - read}"


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


def test_example_is_generated_from_the_declarations(project_root: Path) -> None:
    written = (project_root / ".env.example").read_text()
    assert written == example_text(), "stale .env.example: run `python -m bot.ops.envfile --example`"


def test_every_setting_has_its_comment_right_above_it(project_root: Path) -> None:
    lines = (project_root / ".env.example").read_text().splitlines()
    for setting in declared():
        assert len(setting.doc.split()) >= 3, f"{setting.name} needs a real comment in bot/settings.py"
        (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{setting.name}=")]
        assert lines[at - 1].startswith("# "), f"{setting.name} has no comment above it"


def test_example_shows_the_defaults_the_settings_use(project_root: Path, tmp_path: Path) -> None:
    required = {"RASA_TOKEN": "t" * 32, "SECRET_KEY": "s" * 32, "CARELOOP_VAR_DIR": str(tmp_path)}
    example = {name: value for name, value in parse_env_file(project_root / ".env.example").items() if value}
    assert {"RASA_URL", "OUTREACH_QUIET_HOURS", "GATEWAY_MAX_MESSAGE_CHARS"} <= set(example)
    assert Settings.from_env({**example, **required}) == Settings.from_env(required)


def test_only_the_secrets_get_fresh_random_values(tmp_path: Path, project_root: Path) -> None:
    target = tmp_path / ".env"
    ensure_env_file(target, project_root / ".env.example")
    written, example = parse_env_file(target), parse_env_file(project_root / ".env.example")
    fresh = {name for name in written if written[name] != example[name]}
    assert fresh == generated_secrets()
    assert {"SECRET_KEY", "RASA_TOKEN", "WIDGET_IDENTITY_SECRET", "TELEGRAM_WEBHOOK_SECRET"} <= fresh
    assert "SMTP_PASSWORD" not in fresh  # the mail provider's, not ours to invent
    assert len(set(written[name] for name in fresh)) == len(fresh)


def test_check_fails_on_a_stale_example_and_example_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.ops.envfile as envfile

    example = tmp_path / ".env.example"
    monkeypatch.setattr(envfile, "EXAMPLE", example)
    example.write_text(example_text().replace("OUTREACH_WEEKLY_CAP=3", "OUTREACH_WEEKLY_CAP=4"))
    assert main(["--check"]) == 1
    assert main(["--example"]) == 0
    assert main(["--check"]) == 0 and example.read_text() == example_text()
