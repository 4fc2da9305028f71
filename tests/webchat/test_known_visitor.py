"""Known web visitors in a real browser, against the real stack (gateway, Rasa with the committed
model, action server): a demo customer logged in on the demo shop asks where their order is and
hears about the order the shop has just sent through the inbound API; a forged hash gets an
anonymous conversation."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.crm.integrations import create_key
from bot.crm.models import Agent, ApiScope, Conversation, Customer, Order
from tests.webchat.conftest import LiveStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240, func_only=True)]

ANNA = "cust-0001"  # the demo's first persona, Anna Berger, as the demo shop knows her
FORGE_HASH = """
Object.defineProperty(window, "CareLoopWidget", {
  configurable: true,
  set(config) { config.user_hash = "0".repeat(64); this.__forged = config; },
  get() { return this.__forged; },
});
"""


def send_order_through_the_api(live: LiveStack, number: str) -> None:
    """The shop's backend: a write key made by the demo admin, then a new order for Anna."""
    with live.crm() as crm:
        admin = crm.scalars(select(Agent).where(Agent.username == "admin")).one()
        _, key = create_key(session=crm, name="e2e shop", scope=ApiScope.WRITE, agent_id=admin.id)
        crm.commit()
    placed = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    response = httpx.post(
        f"{live.url}/api/v1/orders",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "external_id": f"ord-{number}",
            "occurred_at": placed,
            "status": "placed",
            "number": number,
            "customer_external_id": ANNA,
            "total": "24.50",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text


def ask_where_my_order_is(page: Page) -> str:
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    box = page.get_by_role("textbox", name="Message")
    box.fill("where is my order?")
    box.press("Enter")
    answer = page.locator(".cl-msg--bot:not(.cl-greeting) .cl-text").first
    expect(answer).to_be_visible(timeout=60_000)
    return answer.inner_text()


def customer_of_conversation(live: LiveStack, sender_id: str) -> Customer:
    with live.crm() as crm:
        conversation = crm.scalars(select(Conversation).where(Conversation.sender_id == sender_id)).one()
        return crm.get_one(Customer, conversation.customer_id)


def test_a_logged_in_demo_customer_hears_about_the_order_the_shop_just_sent(
    live: LiveStack, page: Page
) -> None:
    send_order_through_the_api(live, "SHOP-E2E-77")
    page.goto(live.url + "/demo")
    page.get_by_label("Log in as a demo customer").select_option(ANNA)
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("#demo-who")).to_have_text("Logged in as Anna Berger")
    assert live.settings.widget_identity_secret not in page.content()

    answer = ask_where_my_order_is(page)

    assert "SHOP-E2E-77" in answer
    expect(page.locator("#careloop-widget")).to_have_attribute("data-identity", "verified")
    assert customer_of_conversation(live, live.sender_of(page)).external_id == ANNA


def test_a_forged_hash_gets_an_anonymous_conversation(live: LiveStack, page: Page) -> None:
    # The visitor tampers with the page in their own browser: Anna's id, a hash they made up.
    # (Rewriting the response with page.route would make Chromium treat the page as non-local and
    # block its websocket to 127.0.0.1.)
    page.add_init_script(FORGE_HASH)
    page.goto(f"{live.url}/demo?customer={ANNA}")
    expect(page.locator("#demo-who")).to_have_text("Logged in as Anna Berger")
    assert page.evaluate("() => window.CareLoopWidget.user_hash") == "0" * 64

    answer = ask_where_my_order_is(page)

    expect(page.locator("#careloop-widget")).to_have_attribute("data-identity", "anonymous")
    stranger = customer_of_conversation(live, live.sender_of(page))
    assert stranger.external_id is None
    with live.crm() as crm:
        annas = crm.scalars(select(Order.number).join(Customer).where(Customer.external_id == ANNA)).all()
    assert annas and not any(number in answer for number in annas)
