"""The reports page: who may read it, the figures a marketer sees, the period choice, escaping,
an empty CRM, and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm.db import make_engine
from bot.crm.models import (
    ComplaintCategory,
    LeaveReason,
    Offer,
    OfferKind,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    Survey,
)
from bot.settings import Settings
from tests.console.conftest import ConsoleClient
from tests.console.logins import console_app, console_crm, console_settings, login
from tests.factories import make_complaint, make_customer

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


def seed(settings: Settings, offer_title: str = "Pause for a month") -> None:
    """Two customers asked to leave over price, one stayed; ratings 5 and 2; two complaints."""
    now = datetime.now(timezone.utc)
    with Session(make_engine(settings.database_url)) as session:
        anna = make_customer(
            session, first_name="Anna", segment=Segment.MVC, created_at=now - timedelta(days=60)
        )
        ben = make_customer(
            session, first_name="Ben", segment=Segment.BZ, created_at=now - timedelta(days=60)
        )
        offer = Offer(
            code="pause", title=offer_title, description="", kind=OfferKind.PAUSE, reason=LeaveReason.PRICE
        )
        session.add(offer)
        session.flush()
        for customer, outcome in ((anna, RetentionOutcome.ACCEPTED), (ben, RetentionOutcome.DECLINED)):
            session.add(
                RetentionAttempt(
                    customer_id=customer.id,
                    reason=LeaveReason.PRICE,
                    offer_id=offer.id,
                    outcome=outcome,
                    created_at=now - timedelta(days=2),
                )
            )
        for customer, score in ((anna, 5), (ben, 2)):
            session.add(Survey(customer_id=customer.id, score=score, created_at=now - timedelta(days=3)))
        created = now - timedelta(days=20)
        make_complaint(
            session,
            anna,
            created_at=created,
            sla_due_at=created + timedelta(hours=24),
            resolved_at=created + timedelta(hours=10),
        )
        make_complaint(
            session,
            ben,
            category=ComplaintCategory.BILLING,
            created_at=created,
            sla_due_at=created + timedelta(hours=24),
            resolved_at=created + timedelta(hours=50),
        )
        session.commit()


def text_of(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', html)
    assert match is not None, f"no {testid} on the page"
    return match.group(1).strip()


@pytest.mark.parametrize("username", ["mo", "ada"])
def test_marketers_and_admins_read_the_figures(client: TestClient, settings: Settings, username: str) -> None:
    seed(settings)
    login(client, username)
    page = client.get("/reports?days=30")
    assert page.status_code == 200
    html = page.text
    assert "Last 30 days:" in text_of(html, "period")
    assert text_of(html, "customers") == "2"
    assert text_of(html, "save-rate") == "50%"
    assert text_of(html, "csat-average") == "3.50"
    assert text_of(html, "csat-low") == "1"
    assert text_of(html, "sla-share") == "50%"
    assert text_of(html, "median-resolve") == "30.0"  # of 10 and 50 hours
    assert re.search(r"<th scope=\"row\">price</th><td class=\"num\">2</td><td class=\"num\">1</td>", html)
    assert re.search(r"<th scope=\"row\">MVC</th><td class=\"num\">1</td><td class=\"num\">50%</td>", html)
    assert "Pause for a month" in html


def test_the_home_page_links_a_marketer_to_reports(client: TestClient) -> None:
    login(client, "mo")
    assert 'href="/reports"' in client.get("/").text
    assert client.get("/reports").status_code == 200


def test_agents_are_refused_and_strangers_sent_to_log_in(client: TestClient) -> None:
    for path in ("/reports", "/reports?days=7", "/reports.csv"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].endswith("/login"), path
    login(client, "alex")
    for path in ("/reports", "/reports?days=7", "/reports.csv"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Your role does not allow this page." in response.text


def test_the_default_period_is_thirty_days_and_the_others_are_offered(client: TestClient) -> None:
    login(client, "mo")
    html = client.get("/reports").text
    assert '<strong aria-current="page">Last 30 days</strong>' in html
    assert 'href="/reports?days=7"' in html and 'href="/reports?days=90"' in html
    assert '<strong aria-current="page">Last 7 days</strong>' in client.get("/reports?days=7").text


@pytest.mark.parametrize("days", ["14", "abc", "-7", HOSTILE])
def test_a_bad_period_is_explained_not_guessed(client: TestClient, settings: Settings, days: str) -> None:
    seed(settings)
    login(client, "mo")
    response = client.get("/reports", params={"days": days})
    assert response.status_code == 400
    assert "is not a period we report on: choose a period of 7, 30 or 90 days." in response.text
    assert 'data-testid="save-rate"' not in response.text
    assert "<script>" not in response.text
    assert client.get("/reports.csv", params={"days": days}).status_code == 400


def test_free_text_from_the_crm_is_escaped(client: TestClient, settings: Settings) -> None:
    seed(settings, offer_title=HOSTILE)
    login(client, "mo")
    html = client.get("/reports").text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_an_empty_crm_says_there_is_no_data_yet(client: TestClient) -> None:
    login(client, "mo")
    response = client.get("/reports?days=90")
    assert response.status_code == 200
    assert "There is no data yet" in text_of(response.text, "no-data")
    assert 'data-testid="save-rate"' not in response.text


def test_the_csv_export_has_the_same_figures(client: TestClient, settings: Settings) -> None:
    seed(settings, offer_title='=HYPERLINK("http://evil")')
    login(client, "mo")
    response = client.get("/reports.csv?days=7")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(
        r'attachment; filename="careloop-report-7d-\d{4}-\d\d-\d\d\.csv"',
        response.headers["content-disposition"],
    )
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["section", "group", "figure", "value"]
    figures = {(s, g, f): v for s, g, f, v in rows[1:]}
    assert figures[("retention", "all", "save rate")] == "0.5"
    assert figures[("satisfaction", "all", "average")] == "3.5"
    assert figures[("complaints", "all", "opened")] == "0"  # opened 20 days ago, outside the week
    assert ("retention by offer", '\'=HYPERLINK("http://evil")', "saved") in figures


def test_the_gateway_serves_reports_under_console(console: dict[str, ConsoleClient]) -> None:
    page = console["mo"].http.get("/reports?days=7")
    assert page.status_code == 200 and 'href="/console/reports.csv?days=7"' in page.text
    assert console["alex"].http.get("/reports").status_code == 403
