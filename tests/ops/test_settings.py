"""Settings come from the environment and fail fast, naming what is missing."""

from __future__ import annotations

import pytest

from bot.settings import Settings, SettingsError

BASE = {"RASA_TOKEN": "t" * 32, "SECRET_KEY": "s" * 32}


def test_defaults_give_a_working_local_system(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env({**BASE, "CARELOOP_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'crm.db'}"
    assert settings.rasa_tracker_db == tmp_path / "rasa_tracker.db"
    assert settings.scheduler_db_url == f"sqlite:///{tmp_path / 'scheduler.db'}"
    assert (settings.rasa_port, settings.action_server_port) == (5005, 5055)
    assert settings.action_endpoint_url == "http://127.0.0.1:5055/webhook"
    assert settings.telegram_bot_token is None and settings.demo_data is True


def test_database_url_switches_the_crm_to_postgresql() -> None:
    url = "postgresql+psycopg://careloop:pw@db:5432/careloop"
    assert Settings.from_env({**BASE, "DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize("missing", ["RASA_TOKEN", "SECRET_KEY"])
def test_missing_secret_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=f"missing environment variable {missing}"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CARELOOP_ENV", "staging", "CARELOOP_ENV='staging' is not one of"),
        ("CARELOOP_DEMO_DATA", "maybe", "not a boolean"),
        ("RASA_URL", "localhost:5005", "must start with http"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_malformed_values_are_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**BASE, name: value})


def test_production_refuses_weak_secrets() -> None:
    with pytest.raises(SettingsError, match="RASA_TOKEN is too weak"):
        Settings.from_env({**BASE, "RASA_TOKEN": "short", "CARELOOP_ENV": "production"})
    assert Settings.from_env({**BASE, "CARELOOP_ENV": "production"}).environment == "production"


def test_settings_survive_the_trip_to_a_child_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    original = Settings.from_env({**BASE, "CARELOOP_VAR_DIR": str(tmp_path), "TELEGRAM_BOT_TOKEN": "123:abc"})
    assert Settings.from_env(original.to_env()) == original
