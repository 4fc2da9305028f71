"""The SLA clock's notices in the console, in a real browser (Chromium) against the real gateway:
the scheduler's walk writes them into the CRM; the header counts them on whatever page is open (and
picks up a new one without a reload), the Cases page lists them, they survive a reload, and "Mark
read" (with the session's CSRF token) clears only the reader's own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from bot.crm.models import Complaint, Notice, Team, utcnow
from bot.crm.sla import WALL_CLOCK
from scheduler import sla
from scheduler.policy import Policy
from tests.browser import browser, page
from tests.console.conftest import ConsoleClient, desk_stack
from tests.console.test_cases import file_case, in_team
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)
NEVER_QUIET = Policy.parse("00:00-00:00", 3)


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def case_at_risk(stack: RunningGateway, team: Team = Team.LOGISTICS) -> int:
    """A case filed 3 h 10 min ago with four hours promised (the clock counted from then)."""
    case_id = file_case(stack)
    filed = utcnow() - timedelta(hours=3, minutes=10)
    with stack.crm() as crm:
        crm.execute(
            update(Complaint)
            .where(Complaint.id == case_id)
            .values(
                team=team.value, created_at=filed, sla_started_at=filed, sla_due_at=filed + timedelta(hours=4)
            )
        )
        crm.commit()
    return case_id


def walk_the_clock(stack: RunningGateway) -> dict[str, int]:
    with stack.crm() as crm:
        factory = sessionmaker(bind=crm.get_bind(), expire_on_commit=False)
        return dict(sla.walk(factory=factory, now=utcnow(), rules=WALL_CLOCK, policy=NEVER_QUIET))


def log_in(page: Page, stack: RunningGateway, username: str) -> None:
    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()


def test_a_case_at_risk_is_a_notice_that_survives_a_reload_until_marked_read(
    stack: RunningGateway, page: Page
) -> None:
    in_team(stack, "alex", Team.LOGISTICS)
    in_team(stack, "sam", Team.BILLING)
    first = case_at_risk(stack)
    assert walk_the_clock(stack) == {"at_risk": 1}

    log_in(page, stack, "alex")
    badge = page.locator("#notice-badge")
    expect(badge).to_have_text("1 notice")  # on the home page, from the header
    page.get_by_role("link", name="Cases").click()
    notices = page.get_by_role("region", name="Your notices")
    expect(notices).to_contain_text(f"Case #{first} (Logistics) is at risk")
    expect(page.locator(f'tr[data-case="{first}"]')).to_have_class(re.compile("clock-at_risk"))
    page.reload()
    expect(notices).to_contain_text(f"Case #{first} (Logistics) is at risk")

    # a second case runs late while the page is open: the header picks it up without a reload
    second = case_at_risk(stack)
    assert walk_the_clock(stack) == {"at_risk": 1}
    expect(badge).to_have_text("2 notices", timeout=30_000)

    notices.get_by_role("listitem").filter(has_text=f"Case #{first} ").get_by_role(
        "button", name="Mark read"
    ).click()
    expect(page).to_have_url(re.compile(r"/console/cases$"))
    expect(notices).not_to_contain_text(f"Case #{first} ")
    expect(notices).to_contain_text(f"Case #{second} (Logistics) is at risk")
    expect(badge).to_have_text("1 notice")

    page.get_by_role("link", name="1 notice").click()
    expect(page.get_by_role("heading", name="Notices")).to_be_visible()
    page.get_by_role("button", name="Mark all read").click()
    expect(page.locator(".notice-list li.unread")).to_have_count(0)
    expect(page.locator(".notice-list li.read")).to_have_count(2)  # kept, read
    expect(badge).to_be_hidden()


def test_marking_read_needs_the_csrf_token_and_touches_only_ones_own(stack: RunningGateway) -> None:
    in_team(stack, "alex", Team.LOGISTICS)
    sam_id = in_team(stack, "sam", Team.LOGISTICS)
    case_at_risk(stack)
    assert walk_the_clock(stack) == {"at_risk": 1}
    with stack.crm() as crm:
        sams_notice = crm.scalars(select(Notice.id).where(Notice.agent_id == sam_id)).one()
    alex, sam = ConsoleClient(stack, "alex").login(), ConsoleClient(stack, "sam").login()
    try:
        assert alex.http.get("/notices.json").json() == {"unread": 1}
        assert alex.post("/notices/read", {}, as_json=False, csrf="forged").status_code == 403
        assert alex.http.get("/notices.json").json() == {"unread": 1}
        assert alex.post("/notices/read", {"notice": str(sams_notice)}, as_json=False).status_code == 303
        assert alex.http.get("/notices.json").json() == sam.http.get("/notices.json").json() == {"unread": 1}
        assert alex.post("/notices/read", {"notice": "1; drop"}, as_json=False).status_code == 400
        assert alex.post("/notices/read", {}, as_json=False).status_code == 303
        assert alex.http.get("/notices.json").json() == {"unread": 0}
        assert sam.http.get("/notices.json").json() == {"unread": 1}
        marketer = ConsoleClient(stack, "mo").login()
        assert marketer.http.get("/notices.json").status_code == 403
        marketer.close()
    finally:
        alex.close()
        sam.close()
