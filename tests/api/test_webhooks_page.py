"""The Integrations page's webhooks: an admin adds a URL and sees its signing secret once, a bad URL
is refused with the reason and nothing stored, the delivery log shows each try and resends one;
every form needs the session's CSRF token and other roles are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm import webhooks
from bot.crm.db import make_engine
from bot.crm.models import Customer, WebhookDelivery, WebhookStatus, WebhookSubscription
from bot.settings import Settings
from tests.console.logins import console_app, console_crm, console_settings, login

SECRET = re.compile(r'<code id="new-secret">(whsec_[A-Za-z0-9_-]+)</code>')


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    console_crm(url)
    return console_settings(url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with console_app(settings) as app:
        yield TestClient(app, follow_redirects=False)


def subscriptions(settings: Settings) -> list[WebhookSubscription]:
    with Session(make_engine(settings.database_url)) as session:
        return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def add(client: TestClient, csrf: str, url: str, events: list[str]) -> object:
    return client.post("/integrations/webhooks", data={"csrf_token": csrf, "url": url, "events": events})


@pytest.mark.parametrize("username", ["alex", "mo"])
def test_only_admins_may_add_webhooks_or_resend(
    client: TestClient, settings: Settings, username: str
) -> None:
    csrf = login(client, username)

    assert add(client, csrf, "https://shop.example/h", ["survey.rated"]).status_code == 403  # type: ignore[attr-defined]
    assert (
        client.post("/integrations/webhook-deliveries/1/resend", data={"csrf_token": csrf}).status_code == 403
    )
    assert subscriptions(settings) == []


def test_an_admin_adds_a_webhook_and_sees_its_secret_once(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "ada")

    made = add(client, csrf, "http://127.0.0.1:9/careloop", ["survey.rated", "complaint.opened"])
    location = made.headers["location"].removeprefix("http://testserver")  # type: ignore[attr-defined]
    page = client.get(location)
    reload = client.get(location)

    secret = SECRET.search(page.text).group(1)  # type: ignore[union-attr]
    (stored,) = subscriptions(settings)
    assert (stored.url, stored.events, stored.secret) == (
        "http://127.0.0.1:9/careloop",
        ["complaint.opened", "survey.rated"],
        secret,
    )
    assert page.headers["cache-control"] == "no-store"
    assert secret not in reload.text and "A signing secret is shown only once" in reload.text
    assert 'id="webhook-1"' in reload.text


def test_a_bad_url_or_a_missing_csrf_token_stores_nothing(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "ada")

    refused = add(client, csrf, 'ftp://shop.example/"><script>alert(1)</script>', ["survey.rated"])
    no_events = add(client, csrf, "https://shop.example/h", [])
    forged = add(client, "not-the-token", "https://shop.example/h", ["survey.rated"])

    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert "Please fix this: A webhook URL starts with https://" in refused.text  # type: ignore[attr-defined]
    assert "<script>alert(1)" not in refused.text and "&lt;script&gt;" in refused.text  # type: ignore[attr-defined]
    assert no_events.status_code == 422 and "Choose at least one event" in no_events.text  # type: ignore[attr-defined]
    assert forged.status_code == 403  # type: ignore[attr-defined]
    assert subscriptions(settings) == []


def test_the_delivery_log_shows_a_failed_delivery_and_resends_it(
    client: TestClient, settings: Settings
) -> None:
    csrf = login(client, "ada")
    add(client, csrf, "http://127.0.0.1:9/careloop", ["survey.rated"])
    engine = make_engine(settings.database_url)
    with Session(engine) as session, session.begin():
        customer = Customer(first_name="Rae", created_at=datetime.now(timezone.utc))
        session.add(customer)
        session.flush()
        webhooks.emit(session, "survey.rated", {"customer_id": customer.id, "score": 2})
        delivery = session.scalars(select(WebhookDelivery)).one()
        delivery.status, delivery.attempts, delivery.last_status = WebhookStatus.FAILED, 30, 503
        delivery_id, event_id = delivery.id, delivery.event_id

    page = client.get("/integrations")
    forged = client.post(f"/integrations/webhook-deliveries/{delivery_id}/resend", data={"csrf_token": "x"})
    resent = client.post(f"/integrations/webhook-deliveries/{delivery_id}/resend", data={"csrf_token": csrf})
    missing = client.post("/integrations/webhook-deliveries/999/resend", data={"csrf_token": csrf})

    assert "failed: gave up after a day" in page.text and "HTTP 503" in page.text
    assert f'aria-label="Resend survey.rated {event_id}"' in page.text
    assert forged.status_code == 403 and missing.status_code == 404
    assert resent.status_code == 303
    with Session(engine) as session:
        again = session.get_one(WebhookDelivery, delivery_id)
        assert (again.status, again.attempts) == (WebhookStatus.PENDING, 0)
    assert "Queued again" in client.get(resent.headers["location"].removeprefix("http://testserver")).text
    engine.dispose()
