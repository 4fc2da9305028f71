"""Every entry point starts the same way: `.env` loaded, the settings read and checked, logging set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import bot.bootstrap as bootstrap_module
from bot.bootstrap import bootstrap, load_settings, misspelt_names
from bot.settings import SettingsError

SECRETS = "RASA_TOKEN=from-the-file-rasa-token-0123456789\nSECRET_KEY=from-the-file-secret-key-0123456789\n"


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A process environment of the test's own, so what `.env` loads does not leak into others."""
    env: dict[str, str] = {}
    monkeypatch.setattr(os, "environ", env)
    return env


def test_the_env_file_fills_what_the_environment_leaves_unset(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(SECRETS + "OUTREACH_WEEKLY_CAP=5\nLOG_LEVEL=DEBUG\n")
    environ["LOG_LEVEL"] = "ERROR"
    settings = load_settings(env_file)
    assert settings.secret_key == "from-the-file-secret-key-0123456789"
    assert (settings.outreach_weekly_cap, settings.log_level) == (5, "ERROR")


def test_a_bad_value_in_the_env_file_stops_the_start_by_name(tmp_path: Path, environ: dict[str, str]) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(SECRETS + "OUTREACH_WEEKLY_CAP=three\n")
    with pytest.raises(SettingsError, match="OUTREACH_WEEKLY_CAP='three' is not a number"):
        load_settings(env_file)


@pytest.mark.parametrize(("command", "level"), [(False, "DEBUG"), (True, "WARNING")])
def test_services_log_at_log_level_and_commands_only_warnings(
    tmp_path: Path, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, command: bool, level: str
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(SECRETS + "LOG_LEVEL=DEBUG\n")
    monkeypatch.setattr(bootstrap_module, "ENV_FILE", env_file)
    levels: list[str] = []
    monkeypatch.setattr(bootstrap_module, "configure_logging", levels.append)
    assert bootstrap(command=command).log_level == "DEBUG"
    assert levels == [level]


def test_a_misspelt_setting_in_the_env_file_is_pointed_out(
    tmp_path: Path, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env_file = tmp_path / ".env"
    # Another tool's variable is no typo of ours and goes unremarked.
    env_file.write_text(
        SECRETS + "OUTREACH_QUIETHOURS=22:00-08:00\nCARELOOP_TEST_POSTGRES_URL=postgresql://x\n"
    )
    assert misspelt_names(env_file) == [("OUTREACH_QUIETHOURS", "OUTREACH_QUIET_HOURS")]
    monkeypatch.setattr(bootstrap_module, "ENV_FILE", env_file)
    monkeypatch.setattr(bootstrap_module, "configure_logging", lambda level: None)
    bootstrap()
    warning = "OUTREACH_QUIETHOURS in .env is no CareLoop setting and is ignored: did you mean "
    assert warning + "OUTREACH_QUIET_HOURS?" in caplog.text


def test_only_the_bootstrap_reads_env_files_and_the_process_environment(project_root: Path) -> None:
    """One start for every entry point: no main loads `.env` or reads the settings its own way."""
    others = []
    for top in ("bot", "scheduler", "bench", "tools"):
        for path in sorted((project_root / top).rglob("*.py")):
            if path.name == "bootstrap.py" and path.parent.name == "bot":
                continue
            source = path.read_text(encoding="utf-8")
            if re.search(r"load_env_file\(|Settings\.from_env\(\)", source):
                others.append(str(path.relative_to(project_root)))
    assert others == []


def test_every_entry_point_that_reads_settings_calls_the_bootstrap(project_root: Path) -> None:
    mains = []
    for top in ("bot", "scheduler", "bench"):
        for path in sorted((project_root / top).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            if 'if __name__ == "__main__"' in source and re.search(r"\bsettings\.(?!py\b)[a-z_]+", source):
                mains.append((str(path.relative_to(project_root)), "bootstrap(" in source))
    assert len(mains) >= 8
    assert [name for name, calls in mains if not calls] == []
