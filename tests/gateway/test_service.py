"""The gateway's settings and its place among CareLoop's services."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.ops.services import careloop_services, describe
from bot.settings import Settings, SettingsError

BASE = {"RASA_TOKEN": "t" * 32, "SECRET_KEY": "s" * 32}


def test_gateway_defaults_are_local_and_safe(tmp_path: Path) -> None:
    settings = Settings.from_env({**BASE, "CARELOOP_VAR_DIR": str(tmp_path)})
    assert (settings.gateway_url, settings.gateway_host, settings.gateway_port) == (
        "http://127.0.0.1:8000",
        "127.0.0.1",
        8000,
    )
    assert settings.telegram_api_base_url == "https://api.telegram.org"
    assert settings.telegram_webhook_url is None
    assert (settings.gateway_max_message_chars, settings.gateway_rate_limit_per_minute) == (4000, 20)
    assert settings.webchat_allowed_origins == ("*",)


def test_the_internal_token_is_derived_from_the_secret_key_unless_set() -> None:
    derived = Settings.from_env(BASE).internal_api_token
    assert len(derived) >= 32 and derived != BASE["SECRET_KEY"]
    assert Settings.from_env(BASE).internal_api_token == derived  # every process agrees
    assert Settings.from_env({**BASE, "SECRET_KEY": "other" * 8}).internal_api_token != derived
    assert (
        Settings.from_env({**BASE, "INTERNAL_API_TOKEN": "explicit-token"}).internal_api_token
        == "explicit-token"
    )


def test_production_refuses_a_weak_internal_token() -> None:
    with pytest.raises(SettingsError, match="INTERNAL_API_TOKEN is too weak"):
        Settings.from_env({**BASE, "CARELOOP_ENV": "production", "INTERNAL_API_TOKEN": "short"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TELEGRAM_WEBHOOK_URL": "https://chat.example/telegram/webhook"}, "set TELEGRAM_WEBHOOK_SECRET"),
        ({"TELEGRAM_WEBHOOK_SECRET": "no spaces allowed"}, "TELEGRAM_WEBHOOK_SECRET may hold only"),
        ({"TELEGRAM_WEBHOOK_URL": "chat.example"}, "must start with http"),
        ({"GATEWAY_RASA_TIMEOUT": "soon"}, "is not a number"),
        ({"GATEWAY_RATE_LIMIT_PER_MINUTE": "0"}, "greater than zero"),
        ({"GATEWAY_URL": "http://127.0.0.1"}, "must name a port"),
    ],
)
def test_bad_gateway_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**BASE, **env}).gateway_port  # noqa: B018 - the port is checked when read


def test_gateway_settings_survive_the_trip_to_a_child_process(tmp_path: Path) -> None:
    original = Settings.from_env(
        {
            **BASE,
            "CARELOOP_VAR_DIR": str(tmp_path),
            "TELEGRAM_BOT_TOKEN": "123:abc",
            "TELEGRAM_WEBHOOK_URL": "https://chat.example/telegram/webhook",
            "TELEGRAM_WEBHOOK_SECRET": "s3cret_-token",
            "GATEWAY_RASA_TIMEOUT": "2.5",
            "WEBCHAT_ALLOWED_ORIGINS": "https://shop.example, https://www.shop.example/",
        }
    )
    assert original.webchat_allowed_origins == ("https://shop.example", "https://www.shop.example")
    assert Settings.from_env(original.to_env()) == original


def test_the_gateway_starts_after_rasa_and_make_run_prints_the_shop(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {**BASE, "CARELOOP_VAR_DIR": str(tmp_path), "GATEWAY_URL": "http://127.0.0.1:8123"}
    )
    services = careloop_services(settings, tmp_path / "model.tar.gz")
    names = [s.name for s in services]
    assert names.index("actions") < names.index("rasa") < names.index("gateway")  # healthy in that order
    gateway = services[names.index("gateway")]
    assert gateway.argv[-2:] == ["-m", "bot.gateway"]
    assert gateway.health_url == "http://127.0.0.1:8123/health"
    assert gateway.env["INTERNAL_API_TOKEN"] == settings.internal_api_token
    text = describe(settings, services)
    assert "http://127.0.0.1:8123/" in text and "demo shop page" in text
    assert "off (set TELEGRAM_BOT_TOKEN" in text


def test_rasa_gets_its_token_from_the_environment_not_the_command_line(tmp_path: Path) -> None:
    settings = Settings.from_env({**BASE, "CARELOOP_VAR_DIR": str(tmp_path)})
    rasa = next(s for s in careloop_services(settings, tmp_path / "model.tar.gz") if s.name == "rasa")
    assert settings.rasa_token and not any(settings.rasa_token in part for part in rasa.argv)  # ps shows argv
    assert rasa.env["RASA_TOKEN"] == settings.rasa_token
    assert rasa.argv[1].endswith("bot/ops/rasa_run.py") and "--enable-api" in rasa.argv
