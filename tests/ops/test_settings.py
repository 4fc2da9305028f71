"""Settings come from the environment and fail fast, naming what is missing."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from bot.settings import Setting, Settings, SettingsError, declared

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


# Text each kind of setting refuses (text and paths take anything).
REFUSED = {
    "url": "localhost:8000",
    "number": "soon",
    "count": "2.5",
    "fraction": "1.5",
    "flag": "maybe",
    "choice": "whatever",
    "networks": "10.0.0.300",
}


@pytest.mark.parametrize("setting", [s for s in declared() if s.kind.name in REFUSED], ids=lambda s: s.name)
def test_every_malformed_value_is_refused_naming_its_variable(setting: Setting) -> None:
    bad = REFUSED[setting.kind.name]
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, setting.name: bad})
    assert str(refused.value).startswith(f"{setting.name}={bad!r} ")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SMTP_SECURITY", "tls", "SMTP_SECURITY='tls' is not one of starttls, ssl, none"),
        ("OUTREACH_WEEKLY_CAP", "2.5", "OUTREACH_WEEKLY_CAP='2.5' is not a whole number"),
        ("GATEWAY_RETRY_SECONDS", "-1", "GATEWAY_RETRY_SECONDS='-1' must be greater than zero"),
        ("GATEWAY_RETRY_SECONDS", "nan", "GATEWAY_RETRY_SECONDS='nan' is not a number"),
        ("NLU_REVIEW_CONFIDENCE", "0", "NLU_REVIEW_CONFIDENCE='0' must be between 0 and 1"),
        (
            "CONSOLE_TRUSTED_PROXIES",
            "10.0.0.1, proxy",
            "CONSOLE_TRUSTED_PROXIES='10.0.0.1, proxy' holds 'proxy'",
        ),
    ],
)
def test_unknown_and_invalid_values_say_what_is_wrong(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env({**BASE, name: value})


def test_every_default_has_the_declared_type() -> None:
    settings = Settings.from_env(BASE)
    hints = typing.get_type_hints(Settings)
    for setting in declared():
        value, hint = getattr(settings, setting.attribute), hints[setting.attribute]
        allowed = tuple(typing.get_origin(t) or t for t in (typing.get_args(hint) or (hint,)))
        if typing.get_origin(hint) is tuple:
            allowed = (tuple,)
        assert isinstance(value, allowed), f"{setting.name}: {value!r} is not {hint}"


def test_each_variable_is_its_attribute_in_capitals_unless_named() -> None:
    names = [setting.name for setting in declared()]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))
    renamed = {s.attribute: s.name for s in declared() if s.name != s.attribute.upper()}
    assert renamed == {
        "environment": "CARELOOP_ENV",
        "var_dir": "CARELOOP_VAR_DIR",
        "demo_data": "CARELOOP_DEMO_DATA",
        "models_dir": "CARELOOP_MODELS_DIR",
    }


def test_an_empty_variable_means_its_default() -> None:
    assert Settings.from_env({**BASE, "GATEWAY_URL": "", "LOG_LEVEL": "  "}) == Settings.from_env(BASE)


def test_every_setting_makes_the_trip_to_a_child_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    changed = {
        "CARELOOP_VAR_DIR": str(tmp_path),
        "CARELOOP_DEMO_DATA": "false",
        "GATEWAY_URL": "http://127.0.0.1:9000/",
        "GATEWAY_MAX_MESSAGE_CHARS": "500",
        "SLA_AT_RISK_SHARE": "0.5",
        "SLA_OFFICE_HOURS_TEAMS": "billing, quality",
        "CONSOLE_TRUSTED_PROXIES": "10.0.0.5,172.16.0.0/12",
        "SMTP_HOST": "mail.example",
        "SMTP_PASSWORD": "pw",
        "OUTREACH_HOLIDAYS": "07-04 Independence Day",
    }
    original = Settings.from_env({**BASE, **changed})
    sent = original.to_env()
    assert set(sent) == {setting.name for setting in declared()}
    assert Settings.from_env(sent) == original
    assert original.public_url == "http://127.0.0.1:9000"  # follows GATEWAY_URL unless set


def test_production_checks_the_secrets_every_installation_has() -> None:
    production = {**BASE, "CARELOOP_ENV": "production"}
    with pytest.raises(SettingsError, match="WIDGET_IDENTITY_SECRET is too weak"):
        Settings.from_env({**production, "WIDGET_IDENTITY_SECRET": "change-me-please-change-me-please"})
    # Telegram's webhook secret is optional and the user's choice (Telegram limits its characters).
    webhook = {
        "TELEGRAM_WEBHOOK_URL": "https://chat.example/telegram/webhook",
        "TELEGRAM_WEBHOOK_SECRET": "short",
    }
    assert Settings.from_env({**production, **webhook}).telegram_webhook_secret == "short"
