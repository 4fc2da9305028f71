"""The Loyalty page in Chromium: a marketer logs in, the charts draw (Chart.js instances with the
expected series), nothing breaks the console's CSP, axe finds no serious violation, and a screenshot
lands in var/artifacts/loyalty.png (CI keeps it)."""

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
from tests.console.test_loyalty import seed
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(180)
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective));
"""
CHARTS = """() => Array.from(document.querySelectorAll('canvas[data-chart]')).map(c => {
  const chart = window.Chart.getChart(c);
  return {key: c.dataset.chart, drawn: !!chart && c.width > 0,
          labels: chart ? chart.data.labels : [], series: chart ? chart.data.datasets.map(d => d.label) : []};
})"""


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def test_a_marketer_sees_the_charts_drawn(stack: RunningGateway, page: Page) -> None:
    seed(stack.settings)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "response", lambda r: problems.append(r.url) if r.status >= 400 and "favicon" not in r.url else None
    )
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(f"{stack.url}/console/login")
    page.fill("#username", "mo")
    page.fill("#password", "mo-pw")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()
    page.get_by_role("link", name="Loyalty").click()
    expect(page.get_by_role("heading", name="Loyalty", exact=True)).to_be_visible()
    expect(page.locator("body[data-charts-drawn=yes]")).to_have_count(1)

    charts: dict[str, Any] = {c["key"]: c for c in page.evaluate(CHARTS)}
    assert charts and all(c["drawn"] for c in charts.values()), charts
    assert charts["churn"]["series"][-1] == "Target: zero churn"
    assert "most valuable (MVC) lost" in charts["churn"]["series"]
    assert charts["revenue-share"]["series"] == ["share of customers", "share of revenue"]
    assert charts["repeat-by-rating"]["labels"] == ["rated 5", "rated 4", "rated 3 or less"]
    assert charts["cohorts"]["series"] == [
        "after 1 month",
        "after 3 months",
        "after 6 months",
        "after 12 months",
    ]
    assert "csat-agents" not in charts  # a marketer sees no agent's rows
    expect(page.get_by_test_id("nps-note")).to_contain_text("not asked yet")
    assert problems == [], problems  # no script error, nothing missing
    assert page.evaluate("window.__violations") == []  # nothing the CSP refused
    assert serious_violations(page) == []

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "loyalty.png"), full_page=True)

    page.select_option("#months", "24")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#months")).to_have_value("24")
    assert len(page.evaluate(CHARTS)[0]["labels"]) == 24
