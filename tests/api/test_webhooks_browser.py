"""Webhooks in a real browser against a real gateway (headless Chromium): an admin adds a real local
receiver's URL and copies its secret; an event's delivery failed, the admin presses Resend, and the
scheduler's sender delivers it to the receiver, signed with that secret. The page with its delivery
log has no serious accessibility violation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bot.crm import webhooks
from bot.crm.db import make_engine
from bot.crm.models import WebhookDelivery, WebhookStatus
from scheduler.webhooks import WebhookSender, http_post
from tests.a11y.axe import serious_violations
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.console.test_desk_browser import log_in
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa
from tests.scheduler.test_webhooks import Receiver, _free_port

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(_free_port())
    receiver.start()
    yield receiver
    receiver.stop()


def test_an_admin_adds_a_webhook_and_resends_a_failed_delivery(
    stack: RunningGateway, page: Page, receiver: Receiver
) -> None:
    log_in(page, stack, "ada")
    page.get_by_role("link", name="Integrations").click()
    url = f"http://127.0.0.1:{receiver.port}/careloop"
    page.get_by_label("URL (https://, on the shop's server)").fill(url)
    for box in page.locator("input[name=events]").all():
        box.uncheck()
    page.get_by_label("survey.rated").check()
    page.get_by_role("button", name="Add the webhook").click()

    expect(page.get_by_test_id("shown-secret")).to_contain_text("shown only this once")
    secret = page.locator("#new-secret").inner_text()
    expect(page.locator("#webhook-1")).to_contain_text("survey.rated")

    with stack.crm() as crm, crm.begin():
        webhooks.emit(crm, "survey.rated", {"customer_id": None, "score": 5})
        delivery = crm.scalars(select(WebhookDelivery)).one()
        delivery.status, delivery.attempts, delivery.last_status = WebhookStatus.FAILED, 30, 503
        delivery_id, event_id = delivery.id, delivery.event_id
    page.goto(f"{stack.url}/console/integrations")
    expect(page.get_by_text("failed: gave up after a day")).to_be_visible()
    assert serious_violations(page) == []

    page.get_by_role("button", name=f"Resend survey.rated {event_id}").click()
    expect(page.get_by_text("Queued again")).to_be_visible()

    engine = make_engine(stack.settings.database_url)
    now = datetime.now(timezone.utc)
    sender = WebhookSender(
        sessionmaker(bind=engine, expire_on_commit=False), http_post(public_only=False), lambda: now
    )
    assert sender.run_due() == {"delivered": 1}
    engine.dispose()
    ((headers, body),) = receiver.got
    assert json.loads(body)["id"] == event_id
    assert webhooks.verify_signature(secret, body, headers[webhooks.SIGNATURE_HEADER], now=now.timestamp())
    page.reload()
    expect(page.locator(f"#delivery-{delivery_id}")).to_contain_text("delivered")
