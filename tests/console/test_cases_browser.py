"""The case desk in a real browser (Chromium) against the real gateway: an agent finds their
team's case on the Cases page, takes it, is told what is missing from a resolution, and resolves
it; the customer's words (hostile HTML) are shown as text and never run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bot.crm.models import ComplaintCategory, ComplaintStatus, Team
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.console.test_cases import file_case, in_team, the_case
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)

HOSTILE = '<img src=x onerror="window.__pwned=1"> the lid <b>broke</b>'


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def test_take_then_resolve_in_the_browser(stack: RunningGateway, page: Page) -> None:
    in_team(stack, "alex", Team.QUALITY)
    case_id = file_case(stack, words=HOSTILE, order_total="25.00", category=ComplaintCategory.PRODUCT_QUALITY)
    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill("alex")
    page.get_by_label("Password").fill("alex-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()

    page.get_by_role("link", name="Cases").click()
    page.get_by_role("link", name=f"#{case_id}").click()
    expect(page.locator("#case-words")).to_have_text(HOSTILE)
    page.get_by_role("button", name="Take this case").click()
    expect(page.locator("#case-done")).to_have_text("The case is yours now.")
    expect(page.locator("#case-status")).to_have_attribute("data-state", "in_progress")

    page.get_by_role("button", name="Resolve and tell the customer").click()  # nothing written
    expect(page.locator("#case-error")).to_contain_text("Write the resolution")
    page.get_by_label("Resolution (the customer reads this)").fill("We are sending you a new grinder.")
    page.get_by_label("Remedy").select_option("replacement")
    page.get_by_role("button", name="Resolve and tell the customer").click()
    expect(page.locator("#case-done")).to_contain_text("Resolved.")
    expect(page.locator("#case-status")).to_have_attribute("data-state", "resolved")
    expect(page.locator("#case-resolution")).to_have_text("We are sending you a new grinder.")
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#case-words img, #case-words b").count() == 0
    assert the_case(stack, case_id).status is ComplaintStatus.RESOLVED
