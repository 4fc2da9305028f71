"""The Outbox page: admins see every mail to customers with its state and text, shown as text;
other roles are refused, and the mailbox folder is named when no SMTP server is set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm import mail
from bot.crm.db import make_engine
from bot.crm.models import MailPurpose, MailStatus
from bot.settings import Settings
from standins.servers import ServerThread
from tests.browser import browser, page  # noqa: F401 - fixtures
from tests.console.logins import console_app, console_crm, console_settings, login
from tests.factories import make_customer

HOSTILE = "<img src=x onerror=alert(1)><script>alert('x')</script>"


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
    """A refund confirmation sent, and a mail whose text came from somewhere hostile, skipped."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        customer = make_customer(
            session, email="anna@example.com", email_verified_at=datetime(2026, 1, 1, tzinfo=timezone.utc)
        )
        sent = mail.queue_mail(
            session=session,
            customer=customer,
            purpose=MailPurpose.REFUND_CONFIRMATION,
            key="refund:1",
            subject="Your refund #1 for order CL-100001",
            body="your refund #1 of EUR 24.00 is approved.",
            to="anna@example.com",
        )
        sent.status, sent.transport = MailStatus.SENT, "mailbox"
        hostile = mail.queue_mail(
            session=session,
            customer=customer,
            purpose=MailPurpose.CASE_RESOLVED,
            key="case_resolved:9",
            subject=HOSTILE,
            body=f"resolution: {HOSTILE}",
            to="anna@example.com",
        )
        hostile.status, hostile.skip_reason = MailStatus.SKIPPED, "unverified_address"
        session.commit()
    engine.dispose()


def test_admins_see_each_mail_as_text(client: TestClient, settings: Settings) -> None:
    seed(settings)
    login(client, "ada")
    shown = client.get("/outbox")
    assert shown.status_code == 200
    assert 'href="/outbox">Outbox</a>' in shown.text  # in the console's navigation
    assert "Your refund #1 for order CL-100001" in shown.text and "sent (mailbox)" in shown.text
    assert "unverified_address" in shown.text
    assert HOSTILE not in shown.text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in shown.text
    assert "No SMTP server is set" in shown.text and str(settings.mail_dir) in shown.text


@pytest.mark.parametrize("username", ["alex", "mo"])
def test_agents_and_marketers_are_refused(client: TestClient, username: str) -> None:
    login(client, username)
    assert client.get("/outbox").status_code == 403
    assert 'href="/outbox"' not in client.get("/").text


def test_strangers_are_sent_to_log_in(client: TestClient) -> None:
    response = client.get("/outbox")
    assert (response.status_code, response.headers["location"]) == (303, "/login")


def test_the_page_in_a_browser_runs_nothing_from_a_mail(settings: Settings, page: Page) -> None:  # noqa: F811
    seed(settings)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    with console_app(settings) as app, ServerThread(app) as server:
        page.goto(f"{server.url}/login")
        page.fill("input[name=username]", "ada")
        page.fill("input[name=password]", "ada-pw")
        page.click("button[type=submit]")
        page.click("nav >> text=Outbox")
        row = page.locator("tr.mail.skipped")
        row.locator("summary").click()
        assert row.locator("summary").inner_text() == HOSTILE
        assert HOSTILE in row.locator("pre").inner_text()
        assert page.locator("tr.mail").count() == 2 and page.locator("main img").count() == 0
    assert dialogs == []
