"""The desk in a real browser (Chromium) against the real gateway with a stand-in Rasa: a customer's
hostile message is shown as text and never run, on the page as served and as updated live; the
queue changes without a reload."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from bot.gateway.tokens import visitor_of
from tests.browser import browser, page
from tests.console.conftest import desk_stack, open_handoff_for
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import SECRET_KEY, RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> & <b>bold</b>'


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def customer_says(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def log_in(page: Page, stack: RunningGateway, username: str) -> None:
    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()


def test_a_customers_script_is_shown_as_text_and_never_run(
    stack: RunningGateway, rasa: StandInRasa, browser: Browser, page: Page
) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    customer_says(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)")).to_have_count(1)
    sender = f"web:{_visitor(page)}"

    agent_context = browser.new_context()
    agent = agent_context.new_page()
    try:
        log_in(agent, stack, "alex")
        agent.goto(f"{stack.url}/console/queue")
        expect(agent.locator("#desk.is-live")).to_be_attached()
        expect(agent.locator("#waiting tr[data-handoff]")).to_have_count(0)
        _, handoff_id = open_handoff_for(stack, rasa, sender)
        row = agent.locator(f'#waiting tr[data-handoff="{handoff_id}"]')
        expect(row).to_be_visible()  # no reload: the websocket said the queue changed
        row.get_by_role("button", name="Claim").click()
        expect(agent.locator("#chat-status")).to_have_text("You are handling this chat.")

        customer_says(page, HOSTILE)  # rendered live by the console's script
        expect(agent.locator("#log .msg-customer .text").last).to_have_text(HOSTILE)
        agent.reload()  # rendered by the server's template
        expect(agent.locator("#log .msg-customer .text").last).to_have_text(HOSTILE)
        agent.get_by_label("New note").fill(HOSTILE)
        agent.get_by_role("button", name="Add note").click()
        expect(agent.locator("#notes .note-text").last).to_have_text(HOSTILE)

        assert agent.evaluate("() => window.__pwned") is None
        assert agent.locator("#log script, #log img, #log b, #notes script, #notes img").count() == 0
        box = agent.get_by_label("Reply to the customer")
        box.fill("I can see it, thanks.")
        box.press("Enter")
        expect(page.locator(".cl-msg--agent .cl-text")).to_have_text("I can see it, thanks.")
    finally:
        agent_context.close()


def _visitor(page: Page) -> str:
    key = page.evaluate("() => Object.keys(localStorage).find(k => k.endsWith(':token'))")
    token = page.evaluate("key => JSON.parse(localStorage.getItem(key))", key)
    visitor = visitor_of(SECRET_KEY, token)
    assert visitor is not None
    return visitor
