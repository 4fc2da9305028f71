"""Webhook mode: the gateway registers its URL with a secret, and takes only updates that carry it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from standins.telegram_botapi import TOKEN, StandInBotApi
from tests.gateway.harness import RunningGateway, copy_crm, gateway_settings, running_gateway, wait_until
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(60)

SECRET = "webhook_Secret-0123456789"
PUBLIC_URL = "https://chat.example/telegram/webhook"
CHAT = 555_000_111


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {"TELEGRAM_WEBHOOK_URL": PUBLIC_URL, "TELEGRAM_WEBHOOK_SECRET": SECRET}


def post_update(gateway: RunningGateway, body: object, secret: str | None) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return httpx.post(f"{gateway.url}/telegram/webhook", json=body, headers=headers, timeout=10)


def test_the_webhook_is_registered_with_its_secret_instead_of_polling(
    gateway: RunningGateway, telegram: StandInBotApi
) -> None:
    assert telegram.calls_of("setWebhook") == [
        {"url": PUBLIC_URL, "secret_token": SECRET, "allowed_updates": ["message", "callback_query"]}
    ]
    assert telegram.calls_of("getUpdates") == []


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1], SECRET.upper()])
def test_updates_without_the_right_secret_are_refused(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi, secret: str | None
) -> None:
    response = post_update(gateway, telegram.update_json(CHAT, "let me in"), secret)
    assert response.status_code == 403
    assert rasa.webhook_calls == [] and gateway.messages(f"telegram:{CHAT}") == []


def test_an_update_with_the_secret_is_stored_and_answered(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    response = post_update(gateway, telegram.update_json(CHAT, "hello via webhook"), SECRET)
    sent = wait_until(lambda: telegram.sent_to(CHAT), what="the reply")
    assert response.status_code == 200
    assert [m["text"] for m in sent] == ["You said: hello via webhook"]


@pytest.mark.parametrize("body", [{"no": "update_id"}, ["a", "list"], "text"])
def test_malformed_updates_are_refused(gateway: RunningGateway, rasa: StandInRasa, body: object) -> None:
    assert post_update(gateway, body, SECRET).status_code == 400
    invalid_json = httpx.post(
        f"{gateway.url}/telegram/webhook",
        content=b"{not json",
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        timeout=10,
    )
    assert invalid_json.status_code == 400
    assert rasa.webhook_calls == []


def test_polling_gateways_have_no_webhook(
    tmp_path: Path, crm_template: Path, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(
        tmp_path / "var", rasa.url, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=telegram.url
    )
    with running_gateway(settings) as polling:
        assert post_update(polling, telegram.update_json(CHAT, "x"), SECRET).status_code == 404
