"""Drifting valuable customers on the Cases page, in a real browser (Chromium) against the real
gateway: the customer care team sees the task with its reasons (a hostile name shown as text),
marks it done with a note; another team does not see it, and a form without the CSRF token changes
nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.crm.clock import utcnow
from bot.crm.models import Agent, Customer, DriftEpisode, Segment, Team
from scheduler.checkins import drift as drift_step
from tests.browser import browser, page
from tests.console.conftest import ConsoleClient, desk_stack
from tests.console.test_cases import in_team
from tests.factories import make_order
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["browser", "crm_template", "page", "rasa"]

pytestmark = pytest.mark.timeout(120)

HOSTILE = '<img src=x onerror="window.__pwned=1">Mira'


@pytest.fixture
def stack(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> Iterator[RunningGateway]:
    with desk_stack(tmp_path, crm_template, rasa) as running:
        yield running


def drifting_mvc(stack: RunningGateway) -> int:
    """An MVC customer who ordered every 30 days and has not for 65: the nightly step files a task."""
    now = utcnow()
    with stack.crm() as crm:
        customer = Customer(
            first_name=HOSTILE,
            last_name="Drift",
            segment=Segment.MVC,
            created_at=now - timedelta(days=700),
            last_contact_at=now - timedelta(days=65),
        )
        crm.add(customer)
        crm.flush()
        for n in range(5):
            make_order(crm, customer, placed_at=now - timedelta(days=65 + 30 * n))
        drift_step(session=crm, now=now)
        episode = crm.scalars(select(DriftEpisode).where(DriftEpisode.customer_id == customer.id)).one()
        assert episode.action == "task"
        crm.commit()
        return episode.id


def the_episode(stack: RunningGateway, episode_id: int) -> DriftEpisode:
    with stack.crm() as crm:
        episode = crm.get(DriftEpisode, episode_id)
        assert episode is not None
        crm.expunge(episode)
        return episode


def test_the_team_calls_a_drifting_mvc_and_marks_the_task_done(stack: RunningGateway, page: Page) -> None:
    alex_id = in_team(stack, "alex", Team.CUSTOMER_CARE)
    in_team(stack, "sam", Team.LOGISTICS)
    episode_id = drifting_mvc(stack)

    sam, alex = ConsoleClient(stack, "sam").login(), ConsoleClient(stack, "alex").login()
    try:
        assert "Drifting customers to call" not in sam.http.get("/cases").text
        other_team = sam.post(f"/cases/drift/{episode_id}/done", {"note": "x"}, as_json=False)
        forged = alex.post(f"/cases/drift/{episode_id}/done", {"note": "x"}, as_json=False, csrf="forged")
    finally:
        sam.http.close()
        alex.http.close()
    assert other_team.status_code == 403 and "customer care team" in other_team.text
    assert forged.status_code == 403
    assert the_episode(stack, episode_id).task_done_at is None

    page.goto(f"{stack.url}/console/login")
    page.get_by_label("Username").fill("alex")
    page.get_by_label("Password").fill("alex-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()
    page.get_by_role("link", name="Cases").click()

    task = page.locator(f"#drift-{episode_id}")
    expect(page.get_by_role("heading", name="Drifting customers to call (1)")).to_be_visible()
    expect(task.locator("strong")).to_have_text(f"{HOSTILE} Drift")
    expect(task).to_contain_text("no order for 65 days, usually every 30")
    task.get_by_label("How it went").fill("Called: the grinder broke, sending a new one")
    task.get_by_role("button", name="Called: done").click()

    expect(page.get_by_role("status").filter(has_text="Task done")).to_be_visible()
    expect(page.locator(f"#drift-{episode_id}")).to_have_count(0)
    assert page.evaluate("() => window.__pwned") is None
    done = the_episode(stack, episode_id)
    assert done.task_done_at is not None and done.task_agent_id == alex_id
    assert done.task_note == "Called: the grinder broke, sending a new one"
    with stack.crm() as crm:
        assert crm.scalar(select(Agent.username).where(Agent.id == done.task_agent_id)) == "alex"
