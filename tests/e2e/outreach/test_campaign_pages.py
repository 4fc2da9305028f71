"""A marketer runs a campaign in the browser: log in, create, preview (audience size, the message
for a sample customer, HTML shown as text), schedule, watch the running scheduler send it through
the gateway (Telegram stand-in and web chat at the network boundary), see the figures, pause and
cancel. An agent is refused. Headless Chromium against the real stack."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from bot.crm.consent import set_consent
from bot.crm.models import Campaign, CampaignStatus, Channel, ConsentPurpose
from tests.e2e.outreach.conftest import OutreachStack
from tests.gateway.harness import wait_until

pytestmark = pytest.mark.e2e

SCRIPT = "<script>window.__pwned = 1</script>"


def log_in(browser: Browser, stack: OutreachStack, username: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()
    return page


def figure(page: Page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"]').inner_text()


def reload_until(page: Page, condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"the campaign page did not get there: {page.inner_text('main')}"
        time.sleep(1)
        page.reload()


def test_a_marketer_creates_previews_schedules_watches_pauses_and_cancels(
    browser: Browser, outreach: OutreachStack
) -> None:
    tag = f"pw-{uuid.uuid4().hex[:8]}"
    telegram, chat_id = outreach.telegram, outreach.new_chat_id()
    ada_visitor, ada_token = outreach.web_visitor()
    nico_visitor, _ = outreach.web_visitor()
    with outreach.crm() as session:
        ada = outreach.customer(
            session, channel=Channel.WEB, external_id=ada_visitor, first_name="Ada", tags=[tag]
        )
        tess = outreach.customer(
            session, channel=Channel.TELEGRAM, external_id=str(chat_id), first_name="Tess", tags=[tag]
        )
        outreach.customer(
            session, channel=Channel.WEB, external_id=nico_visitor, first_name="Nico", tags=[tag]
        )
        for customer in (ada, tess):  # Nico never agreed to marketing messages
            set_consent(
                session=session,
                customer=customer,
                purpose=ConsentPurpose.MARKETING,
                granted=True,
                source="test",
            )
        session.commit()

    page = log_in(browser, outreach, "mo")
    page.get_by_role("navigation").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    # Half an hour ago on today's date in the customers' zone: due for them at once, still ahead elsewhere.
    local = datetime.now(ZoneInfo(outreach.zone)) - timedelta(minutes=30)
    page.get_by_label("Name (only marketers see it)").fill("Winter roast")
    page.get_by_label("Tags (all of them, separated by commas)").fill(tag)
    page.get_by_label("Text (at most 1,000 characters)").fill(
        f"{SCRIPT} Hi {{first_name}}, the winter roast is here!"
    )
    page.get_by_label("Button 1 (optional)").fill("Tell me more")
    page.get_by_label("Date").fill(local.date().isoformat())
    page.get_by_label("Time", exact=True).fill(local.strftime("%H:%M"))
    # Weekly: the next occurrence is days away, so it stays "sending" (pausable) after today's.
    page.get_by_label("Repeat").select_option("week")

    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("audience-size")).to_have_text("3")
    expect(page.get_by_test_id("preview-text")).to_have_text(f"{SCRIPT} Hi Ada, the winter roast is here!")
    assert page.evaluate("() => window.__pwned") is None  # shown as text, never run
    expect(page.get_by_text("It is already past")).to_be_visible()
    with outreach.crm() as session:
        assert session.scalars(select(Campaign).where(Campaign.name == "Winter roast")).all() == []

    # The script tag is sent as literal text: the form warns and asks for that to be said.
    expect(page.locator("#markup-warning")).to_be_visible()
    page.get_by_label("Send the text as written anyway").check()
    page.get_by_role("button", name="Schedule").click()
    asked = page.get_by_role("button", name=re.compile("^Yes, schedule it"))  # a dialog, or the step page
    expect(asked.or_(page.get_by_role("status"))).to_be_visible()
    if asked.is_visible():
        asked.click()
    expect(page.get_by_role("status")).to_have_text("Scheduled. The scheduler picks it up at its next run.")
    expect(page.get_by_role("heading", name="Winter roast")).to_be_visible()
    campaign_url = page.url.split("?")[0]

    # The scheduler service, running since before the campaign existed, sends it.
    reload_until(page, lambda: "3 of 3 handled (100%)" in page.get_by_test_id("progress").inner_text())
    assert (figure(page, "sent"), figure(page, "skipped"), figure(page, "failed")) == ("2", "1", "0")
    expect(page.locator("tr.sub")).to_have_text(re.compile(r"no consent\s*1"))
    expect(page.locator("tr.delivery-skipped")).to_contain_text("Nico")
    expect(page.locator("tr.delivery-skipped")).to_contain_text("no consent")
    expect(page.get_by_test_id("campaign-status")).to_have_text("sending")  # it repeats weekly

    # At the network boundary: Telegram got plain text with the button; the web visitor's chat has it.
    [on_telegram] = wait_until(lambda: telegram.sent_to(chat_id), timeout=10, what="the campaign on Telegram")
    assert on_telegram["text"] == f"{SCRIPT} Hi Tess, the winter roast is here!"
    assert "Tell me more" in str(on_telegram["reply_markup"])
    history = httpx.get(
        f"{outreach.url}/webchat/history", headers={"Authorization": f"Bearer {ada_token}"}, timeout=10
    ).json()
    assert f"{SCRIPT} Hi Ada, the winter roast is here!" in [m["text"] for m in history["messages"]]

    telegram.user_writes(chat_id, "Ooh, tell me more about it", first_name="Tess")
    reload_until(page, lambda: figure(page, "replied") == "1")

    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Yes, pause sending").click()
    expect(page.get_by_role("status")).to_have_text("Paused: nothing more is sent until you resume it.")
    expect(page.get_by_test_id("campaign-status")).to_have_text("paused")
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    page.get_by_role("button", name="Cancel campaign").click()
    page.get_by_role("button", name="Yes, cancel the campaign").click()
    expect(page.get_by_role("status")).to_have_text("Cancelled: messages not yet sent are dropped.")
    expect(page.get_by_test_id("campaign-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    with outreach.crm() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.name == "Winter roast")).one()
        assert campaign.status is CampaignStatus.CANCELLED
        assert campaign.audience == {"tags": [tag]}
    assert page.url.startswith(campaign_url)
    page.context.close()


def test_an_agent_is_refused_the_campaign_pages(browser: Browser, outreach: OutreachStack) -> None:
    page = log_in(browser, outreach, "alex")
    expect(page.get_by_role("navigation").get_by_role("link", name="Campaigns")).to_have_count(0)
    response = page.goto(f"{outreach.url}/console/campaigns/new")
    assert response is not None and response.status == 403
    expect(page.locator("body")).to_contain_text("Your role does not allow this page.")
    page.context.close()
