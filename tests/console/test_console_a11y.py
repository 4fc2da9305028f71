"""Issue 19: the console's pages (as an admin, who sees them all) have no serious
or critical accessibility violations by axe-core (tests/a11y, served from the project), including
a chat, a form with its errors, a confirmation step and an error page; and the queue and a chat
can be worked with the keyboard alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.a11y.axe import serious_violations
from tests.browser import browser, page
from tests.console.conftest import desk_stack, open_handoff_for
from tests.console.test_desk_browser import _visitor, customer_says, log_in
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(240)

ADMIN_PAGES = [
    "/",
    "/queue",
    "/cases",
    "/notices",
    "/feedback",
    "/users",
    "/canned",
    "/campaigns",
    "/campaigns/new",
    "/reports",
    "/outbox",
    "/nlu-review",
    "/integrations",
    "/no-such-page",
]


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def assert_accessible(page: Page, where: str) -> None:
    found = serious_violations(page)
    assert found == [], f"{where}: {found}"


def test_every_console_page_has_no_serious_accessibility_violation(
    stack: RunningGateway, rasa: StandInRasa, page: Page
) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    customer_says(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)")).to_have_count(1)
    _, handoff_id = open_handoff_for(stack, rasa, f"web:{_visitor(page)}")

    page.goto(f"{stack.url}/console/login")
    assert_accessible(page, "/login")
    log_in(page, stack, "ada")
    for path in ADMIN_PAGES:
        page.goto(f"{stack.url}/console{path}")
        assert_accessible(page, path)

    page.goto(f"{stack.url}/console/chats/{handoff_id}")
    page.get_by_role("button", name="Claim this chat").click()  # the chat as its agent sees it
    expect(page.locator("#chat-status")).to_have_text("You are handling this chat.")
    assert_accessible(page, "/chats/<id>")

    page.goto(f"{stack.url}/console/campaigns/new")
    page.get_by_role("button", name="Schedule").click()  # an empty form: every field's mistake
    expect(page.locator("#form-errors")).to_be_visible()
    assert_accessible(page, "/campaigns/new with errors")
    page.get_by_label("Name (only marketers see it)").fill("Spring")
    page.get_by_label("Text (at most 1,000 characters)").fill("Hi {first_name}")
    page.get_by_role("button", name="Save as draft").click()
    assert_accessible(page, "/campaigns/<id>")
    page.evaluate(
        "() => document.querySelectorAll('form[data-confirm]').forEach(f => delete f.dataset.confirm)"
    )
    page.get_by_role("button", name="Cancel campaign").click()  # the second step, as without JavaScript
    expect(page.get_by_test_id("consequence")).to_be_visible()
    assert_accessible(page, "confirmation page")


def test_the_queue_and_a_chat_work_with_the_keyboard_alone(
    stack: RunningGateway, rasa: StandInRasa, page: Page
) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    customer_says(page, "hi")
    expect(page.locator(".cl-msg--bot:not(.cl-greeting)")).to_have_count(1)
    _, handoff_id = open_handoff_for(stack, rasa, f"web:{_visitor(page)}")
    log_in(page, stack, "alex")
    page.goto(f"{stack.url}/console/queue")
    claim = page.locator(f'#waiting tr[data-handoff="{handoff_id}"]').get_by_role("button", name="Claim")
    for _ in range(40):  # Tab until the claim button has the focus
        page.keyboard.press("Tab")
        if claim.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("the Claim button cannot be reached with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#chat-status")).to_have_text("You are handling this chat.")
    page.get_by_label("Reply to the customer").focus()
    page.keyboard.type("Hello from the keyboard")
    page.keyboard.press("Enter")
    expect(page.locator("#log .msg-agent .text").last).to_have_text("Hello from the keyboard")
