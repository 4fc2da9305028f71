"""Learning from live chats in a real browser (headless Chromium, no script needed): a customer's
message the bot fell back on, sent through the real widget and gateway, is corrected by an admin in
one click and found, masked, in the export file the page names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from ruamel.yaml import YAML
from sqlalchemy import select

from bot.crm.models import Conversation, Customer, Message
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.crm.rasa_tracker import RasaTrackerStore
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)

TYPED = "I'm Ulla and I wanna lodge a grievance about CL-104233, write to ulla.b@mail.example <b>now</b>"
MASKED = (
    "I'm Anna and I wanna lodge a grievance about [CL-100000](order_id), write to [anna@example.com](email)"
    " <b>now</b>"
)


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def customer_says(page: Page, stack: RunningGateway, text: str) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)")).to_have_count(1)


def rasa_fell_back_on(stack: RunningGateway, text: str) -> None:
    """What Rasa stored for that message: an nlu_fallback, then action_clarify (config.yml)."""
    with stack.crm() as session:
        message = session.scalars(select(Message).where(Message.text == text)).one()
        conversation = session.get_one(Conversation, message.conversation_id)
        session.get_one(Customer, conversation.customer_id).first_name = "Ulla"  # known to the CRM
        session.commit()
        tracker = RasaTrackerStore(stack.settings.rasa_tracker_db)
        tracker.session_started(conversation.sender_id)
        tracker.turn(
            conversation.sender_id,
            text,
            message_id=message.id,
            intent="nlu_fallback",
            confidence=0.4,
            answer="action_clarify",
            ranking=[("nlu_fallback", 0.4), ("give_feedback", 0.33), ("complain", 0.31)],
            votes={"diet": ("complain", 0.6), "logistic_regression": ("give_feedback", 0.4)},
        )


def test_an_admin_corrects_a_message_in_one_click_and_finds_it_masked_in_the_export(
    stack: RunningGateway, page: Page
) -> None:
    customer_says(page, stack, TYPED)
    rasa_fell_back_on(stack, TYPED)

    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("ada-pw")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="NLU review").click()
    card = page.locator("article.review")
    expect(card).to_have_count(1)
    expect(card.locator("li.current .pre")).to_have_text(TYPED)  # as text: no <b> element
    assert card.locator("li.current b").count() == 0
    expect(card.locator(".reason")).to_have_text("not understood")
    expect(card.locator(".reading")).to_contain_text("diet → complain 60%")

    card.get_by_role("button", name="It is complain").click()
    expect(page.get_by_role("status")).to_contain_text("Corrected.")
    expect(page.locator("article.review")).to_have_count(0)
    page.get_by_role("link", name="Reviewed").click()
    expect(page.locator("table.reviewed tbody tr")).to_contain_text("complain")

    page.get_by_role("button", name="Export 1 decided message").click()
    notice = page.get_by_role("status")
    expect(notice).to_contain_text("Wrote 1 example(s) to")
    (written,) = stack.settings.nlu_review_dir.iterdir()
    expect(notice).to_contain_text(written.name)
    expect(page.locator("table.reviewed tbody tr code")).to_have_text(written.name)
    text = written.read_text()
    assert "ulla" not in text.lower() and "104233" not in text
    content = YAML(typ="safe").load(text)
    assert content["nlu"] == [{"intent": "complain", "examples": f"- {MASKED}\n"}]
