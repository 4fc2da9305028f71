"""The chat widget in a real browser on the demo shop page, against the real gateway, Rasa server
and action server: what a visitor sees and does, and what lands in the CRM."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from bot.crm.models import Author, Direction, InboundStatus, OutboundStatus
from tests.gateway.harness import wait_until
from tests.webchat.conftest import LiveStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240, func_only=True)]

REPLY_TIMEOUT = 60_000  # ms; Rasa shares the CPU with the rest of the suite


def open_chat(page: Page, live: LiveStack) -> None:
    page.goto(live.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    expect(page.get_by_role("dialog", name="CareLoop Coffee")).to_be_visible()


def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def answers(page: Page) -> list[str]:
    """What the bot said on screen (not the widget's own local greeting)."""
    return page.locator(".cl-msg--bot:not(.cl-greeting) .cl-text").all_inner_texts()


def shown(page: Page) -> list[str]:
    return page.locator(".cl-msg:not(.cl-greeting) .cl-text").all_inner_texts()


def test_a_visitor_greets_clicks_a_button_and_finds_the_conversation_after_a_reload(
    live: LiveStack, page: Page
) -> None:
    open_chat(page, live)
    expect(page.locator(".cl-greeting")).to_contain_text("CareLoop Coffee assistant")  # the page's config

    say(page, "hi")
    offered = page.locator(".cl-msg--bot").filter(has=page.locator(".cl-chip"))
    expect(offered.first).to_be_visible(timeout=REPLY_TIMEOUT)
    expect(page.locator(".cl-greeting")).to_have_count(0)
    replies_before = len(answers(page))
    chip = offered.last.locator(".cl-chip").first
    title = chip.inner_text()
    chip.click()

    expect(page.locator(".cl-msg--customer .cl-text").last).to_have_text(title)
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)").nth(replies_before)).to_be_visible(
        timeout=REPLY_TIMEOUT
    )
    expect(page.locator(".cl-pending")).to_have_count(0)

    sender = live.sender_of(page)
    inbound = [m for m in live.messages(sender) if m.direction == Direction.INBOUND]
    assert [(m.author, m.text) for m in inbound] == [(Author.CUSTOMER, "hi"), (Author.CUSTOMER, title)]
    assert inbound[1].payload is not None and inbound[1].payload["kind"] == "button"
    assert str(inbound[1].payload["rasa_text"]).startswith("/")
    wait_until(
        lambda: (
            all(m.delivery_status == InboundStatus.PROCESSED for m in inbound)
            and all(
                m.delivery_status == OutboundStatus.DELIVERED
                for m in live.messages(sender)
                if m.direction == Direction.OUTBOUND
            )
        ),
        timeout=30,
        what="every message processed and every answer confirmed by the browser",
    )
    before_reload = shown(page)
    stored = [m.text for m in live.messages(sender) if m.text]
    assert before_reload == stored  # the screen and the CRM tell the same story

    page.reload()
    expect(page.get_by_role("dialog", name="CareLoop Coffee")).to_be_visible()  # still open
    expect(page.locator(".cl-msg:not(.cl-greeting) .cl-text")).to_have_count(len(before_reload))
    assert shown(page) == before_reload
    expect(page.locator(".cl-greeting")).to_have_count(0)


def test_hostile_text_is_shown_as_text_and_never_run(live: LiveStack, page: Page) -> None:
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & <b>bold</b>'
    open_chat(page, live)
    say(page, hostile)
    expect(page.locator(".cl-msg--customer .cl-text").last).to_have_text(hostile)
    expect(page.locator(".cl-pending")).to_have_count(0, timeout=REPLY_TIMEOUT)
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator(".cl-log img, .cl-log script, .cl-log b").count() == 0
    sender = live.sender_of(page)
    assert live.messages(sender)[0].text == hostile  # stored verbatim; escaping is the renderer's job


def test_the_widget_works_with_the_keyboard_and_tells_screen_readers_what_happens(
    live: LiveStack, page: Page
) -> None:
    page.goto(live.url + "/")
    expect(page.get_by_role("button", name="Open chat: CareLoop Coffee")).to_be_visible()
    launcher = page.locator(".cl-launcher")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    launcher.focus()
    page.keyboard.press("Enter")

    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(launcher).to_have_accessible_name("Close chat")
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_focused()
    log = page.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-live", "polite")
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    expect(page.locator(".cl-msg--customer")).to_have_count(1)
    expect(page.locator(".cl-msg--customer .cl-sr")).to_have_text("You: ")  # author for screen readers
    expect(page.locator(".cl-msg--customer time")).to_have_text(re.compile(r"\d{1,2}[:.]\d{2}"))
    page.keyboard.press("Escape")

    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")


def test_on_a_phone_the_open_chat_fills_the_screen(live: LiveStack, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        open_chat(page, live)
        box = page.get_by_role("dialog", name="CareLoop Coffee").bounding_box()
        assert box is not None and (round(box["width"]), round(box["height"])) == (375, 740)
        composer = page.get_by_role("textbox", name="Message").bounding_box()
        assert composer is not None and composer["y"] + composer["height"] <= 740
    finally:
        context.close()


def test_a_message_sent_while_away_waits_for_the_visitor_with_an_unread_badge(
    live: LiveStack, browser: Browser
) -> None:
    context = browser.new_context()
    first_visit = context.new_page()
    open_chat(first_visit, live)
    say(first_visit, "hi")
    expect(first_visit.locator(".cl-msg--bot:not(.cl-greeting)").first).to_be_visible(timeout=REPLY_TIMEOUT)
    sender = live.sender_of(first_visit)
    first_visit.close()  # the visitor leaves

    response = httpx.post(
        f"{live.url}/internal/proactive",
        json={"sender_id": sender, "intent": "EXTERNAL_silence", "idempotency_key": f"silence:{sender}"},
        headers={"Authorization": f"Bearer {live.settings.internal_api_token}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    waiting = response.json()["messages"]
    assert waiting and {m["status"] for m in waiting} == {"queued"}

    return_visit = context.new_page()
    return_visit.goto(live.url + "/")
    launcher = return_visit.get_by_role("button", name=re.compile("^Open chat"))
    expect(launcher).to_have_accessible_name(re.compile(rf"\({len(waiting)} unread message"))
    expect(return_visit.locator(".cl-badge")).to_have_text(str(len(waiting)))
    launcher.click()
    expect(return_visit.locator(".cl-badge")).to_be_hidden()
    stored = {m.id: m for m in live.messages(sender)}
    for message in waiting:
        expect(return_visit.locator(f'.cl-msg[data-id="{message["id"]}"] .cl-text')).to_have_text(
            stored[message["id"]].text or ""
        )
    wait_until(
        lambda: all(
            m.delivery_status == OutboundStatus.DELIVERED
            for m in live.messages(sender)
            if m.direction == Direction.OUTBOUND
        ),
        what="the returning visitor's browser to confirm the waiting messages",
    )
    context.close()
