"""Issue 19 in Chromium: the Reports page and the campaign form with the keyboard alone (every
control reached in reading order, each with a name and a visible focus ring, the period changed and
a form submitted without a mouse), and axe-core finds no serious or critical violation on Reports
with figures in every section."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.a11y.axe import serious_violations
from tests.browser import browser, page
from tests.console.conftest import desk_stack
from tests.console.test_reports import seed
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(180)

# What has the focus: its tag, id, accessible name (label, aria-label or text) and whether a focus
# ring shows (an outline or a box shadow).
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const style = getComputedStyle(e);
  const labelled = e.labels && e.labels.length ? Array.from(e.labels).map(l => l.textContent).join(' ') : '';
  const by = e.getAttribute('aria-labelledby');
  const name = (e.getAttribute('aria-label') || labelled
    || (by ? by.split(' ').map(id => (document.getElementById(id) || {}).textContent || '').join(' ') : '')
    || e.textContent || e.value || '').trim().replace(/\\s+/g, ' ');
  const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
    || (style.boxShadow && style.boxShadow !== 'none');
  return {tag: e.tagName.toLowerCase(), id: e.id, type: e.type || '', name: name, ring: ring,
          href: e.getAttribute('href') || ''};
}"""


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def tab(page: Page) -> dict[str, Any]:
    page.keyboard.press("Tab")
    focused = page.evaluate(FOCUSED)
    assert focused is not None, "Tab left the page's controls"
    return focused


def tab_to(page: Page, matches: Any, limit: int = 120) -> list[dict[str, Any]]:
    """Press Tab until `matches(focused)`; return every control passed on the way (the last included)."""
    seen = []
    for _ in range(limit):
        focused = tab(page)
        seen.append(focused)
        if matches(focused):
            return seen
    pytest.fail(f"not reached with Tab in {limit} presses; last: {seen[-3:]}")


def keyboard_login(page: Page, stack: RunningGateway, username: str) -> None:
    page.goto(f"{stack.url}/console/login")
    expect(page.locator("#username")).to_be_focused()  # the login form starts there
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(f"{username}-pw")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()


def assert_usable(controls: list[dict[str, Any]]) -> None:
    for control in controls:
        assert control["name"], f"a control without a name: {control}"
        assert control["ring"], f"no visible focus on {control}"


def test_reports_work_with_the_keyboard_and_pass_axe(stack: RunningGateway, page: Page) -> None:
    seed(stack.settings)
    keyboard_login(page, stack, "mo")
    page.goto(f"{stack.url}/console/reports")
    expect(page.get_by_test_id("save-rate")).to_have_text("50%")
    found = serious_violations(page)
    assert found == [], found

    passed = tab_to(page, lambda f: f["name"] == "Last 7 days")
    assert [f["name"] for f in passed].index("Download CSV") < len(passed) - 1  # reading order
    assert_usable(passed)
    page.keyboard.press("Enter")
    expect(page.locator('[aria-current="page"]')).to_have_text("Last 7 days")
    assert page.url.endswith("/reports?days=7")

    page.goto(f"{stack.url}/console/reports?days=30")
    passed = tab_to(page, lambda f: f["href"] == "#g-save-rate")
    assert_usable(passed)
    page.keyboard.press("Enter")
    definition = page.locator("#g-save-rate")
    expect(definition).to_be_in_viewport()
    assert page.url.endswith("#g-save-rate")
    assert "Stayed ÷ (stayed + left)" in definition.locator("xpath=following-sibling::dd[1]").inner_text()
    # Every link of the page is reachable and named: Tab runs through to the end of the glossary.
    links = page.locator("main a").count()
    page.goto(f"{stack.url}/console/reports?days=30")
    seen = tab_to(
        page, lambda f: f["tag"] == "a" and f["href"] == "#glossary" and f["name"] == "What the figures mean"
    )
    assert_usable(seen)
    assert links > 20


def test_the_campaign_form_works_with_the_keyboard_alone(stack: RunningGateway, page: Page) -> None:
    keyboard_login(page, stack, "mo")
    page.goto(f"{stack.url}/console/campaigns/new")
    passed = tab_to(page, lambda f: f["name"] == "Send now")
    assert_usable(passed)
    order = []
    for control in passed:  # a date field is three stops (month, day, year) for one control
        key = control["id"] or f"{control['tag']}:{control['name']}"
        if not order or order[-1] != key:
            order.append(key)
    fields = [key for key in order if not key.startswith(("a:", "button:"))]
    named = ["name", "tags", "last_contact_days_min", "last_contact_days_max", "churn_risk_min"]
    named += ["has_open_complaint", "message", "button_1", "button_2", "date", "time", "every", "zone"]
    assert [key for key in fields if key in named] == named  # in the order a reader meets them
    assert (
        sum(1 for control in passed if control["type"] == "checkbox") >= 6
    )  # segments, temperaments, channels
    assert [k for k in order if k.startswith("button:")] == [
        "button:Log out",
        "button:Preview",
        "button:Save as draft",
        "button:Schedule",
        "button:Send now",
    ]

    # Scheduling an empty form lists every mistake; its link takes the focus to the field.
    page.goto(f"{stack.url}/console/campaigns/new")
    tab_to(page, lambda f: f["name"] == "Schedule")
    page.keyboard.press("Enter")
    errors = page.locator("#form-errors")
    expect(errors).to_be_visible()
    assert errors.locator("li").count() >= 2
    tab_to(page, lambda f: f["tag"] == "a" and f["href"] == "#name")
    page.keyboard.press("Enter")
    expect(page.locator("#name")).to_be_focused()
    page.keyboard.type("Keyboard hello")
    tab_to(page, lambda f: f["id"] == "message")
    page.keyboard.type("Hi {first_name}, this one was typed without a mouse.")
    tab_to(page, lambda f: f["name"] == "Save as draft")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved as a draft.")).to_be_visible()
    expect(page.get_by_role("heading", name="Keyboard hello")).to_be_visible()
