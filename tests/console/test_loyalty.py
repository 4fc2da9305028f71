"""The loyalty dashboard's page: who may read it, the filters, escaping, and a chart's CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm.db import make_engine
from bot.crm.models import Agent, Role, Segment, Survey
from bot.settings import Settings
from tests.console.logins import console_app, console_crm, console_settings, login
from tests.factories import make_complaint, make_customer, make_order

HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    console_crm(url)
    return console_settings(url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with console_app(settings) as app:
        yield TestClient(app, follow_redirects=False)


def seed(settings: Settings) -> None:
    """Two customers: one MVC who rated 5 and ordered again, one standard gone silent; an agent
    whose name is hostile owns a rated case."""
    now = datetime.now(timezone.utc)
    with Session(make_engine(settings.database_url)) as session:
        agent = Agent(username="hostile", display_name=HOSTILE, role=Role.AGENT, password_hash="x")
        session.add(agent)
        session.flush()
        happy = make_customer(session, segment=Segment.MVC, created_at=now - timedelta(days=200))
        quiet = make_customer(session, segment=Segment.STANDARD, created_at=now - timedelta(days=200))
        make_order(session, happy, days_ago=0.5, placed_at=now - timedelta(days=20), total="120.00")
        make_order(session, quiet, placed_at=now - timedelta(days=100), total="30.00")
        case = make_complaint(
            session,
            happy,
            created_at=now - timedelta(days=10),
            sla_due_at=now - timedelta(days=9),
            resolved_at=now - timedelta(days=9, hours=12),
            first_response_at=now - timedelta(days=10) + timedelta(hours=1),
            owner_id=agent.id,
        )
        session.add(
            Survey(customer_id=happy.id, complaint_id=case.id, score=5, created_at=now - timedelta(days=80))
        )
        session.commit()


@pytest.mark.parametrize("username", ["mo", "ada"])
def test_marketers_and_admins_see_the_charts(client: TestClient, settings: Settings, username: str) -> None:
    seed(settings)
    login(client, username)
    page = client.get("/loyalty")
    assert page.status_code == 200
    assert 'href="/loyalty"' in client.get("/").text or "/loyalty" in page.text  # in the menu
    assert (
        "Content-Security-Policy" in page.headers
        and "script-src 'self'" in page.headers["Content-Security-Policy"]
    )
    for key in ("churn", "cohorts", "revenue-share", "mvc", "save-rate", "csat", "repeat-by-rating", "sla"):
        assert f'data-testid="chart-{key}"' in page.text, key
    assert "NPS" in page.text and "not asked yet" in page.text
    data = json.loads(
        re.search(r'<script type="application/json" id="loyalty-data">(.*?)</script>', page.text, re.S).group(
            1
        )
    )  # type: ignore[union-attr]
    assert data["revenue-share"]["labels"][0] == "most valuable (MVC)"
    assert [s["name"] for s in data["churn"]["series"]][-1] == "Target: zero churn"
    assert ("csat-agents" in data) is (username == "ada")  # agents' rows for admins only
    assert "<script>alert" not in page.text  # the hostile agent name is escaped, in HTML and in JSON
    assert re.search(r"<script(?![^>]*(src=|application/json))", page.text) is None  # no inline script


def test_agents_are_refused_and_strangers_sent_to_log_in(client: TestClient) -> None:
    assert client.get("/loyalty").status_code == 303
    login(client, "alex")
    assert client.get("/loyalty").status_code == 403
    assert client.get("/loyalty/churn.csv").status_code == 403
    assert "/loyalty" not in client.get("/").text


def test_a_chart_downloads_as_csv(client: TestClient, settings: Settings) -> None:
    seed(settings)
    login(client, "mo")
    response = client.get("/loyalty/repeat-by-rating.csv?months=6")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="careloop-loyalty-repeat-by-rating-6m-' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["", "ordered again within 60 days", "customers"]
    assert rows[1] == ["rated 5", "100", "1"]
    assert client.get("/loyalty/nothing.csv").status_code == 404
    assert client.get("/loyalty/csat-agents.csv").status_code == 404  # admins only
    login(client, "ada")
    agents = list(csv.reader(io.StringIO(client.get("/loyalty/csat-agents.csv?months=6").text)))
    assert agents[1] == [HOSTILE, "5", "1"]  # plain text in a CSV; a formula would be quoted


@pytest.mark.parametrize("query", ["months=5", "months=x", "segment=gold", "channel=fax"])
def test_a_bad_filter_is_explained(client: TestClient, query: str) -> None:
    login(client, "mo")
    page = client.get(f"/loyalty?{query}")
    assert page.status_code == 400 and "not one we offer" in page.text
    assert client.get(f"/loyalty/churn.csv?{query}").status_code == 400


def test_filters_are_kept_in_the_links(client: TestClient, settings: Settings) -> None:
    seed(settings)
    login(client, "mo")
    page = client.get("/loyalty?months=24&segment=MVC&channel=web")
    assert page.status_code == 200
    assert "/loyalty/churn.csv?months=24&amp;segment=MVC&amp;channel=web" in page.text
    assert '<option value="MVC" selected>' in page.text
