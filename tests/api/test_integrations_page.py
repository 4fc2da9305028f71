"""The Integrations page: an admin makes a key, sees its secret once, and revokes it after a
confirmation; other roles are refused; forms need the session's CSRF token; the secret is stored
only as a hash and never reaches a log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm.db import make_engine
from bot.crm.integrations import digest, holder_of
from bot.crm.models import ApiKey, AuditLog
from bot.settings import Settings
from tests.console.logins import console_app, console_crm, console_settings, login

KEY = re.compile(r'<code id="new-key">(clk_[A-Za-z0-9_-]+)</code>')


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    console_crm(url)
    return console_settings(url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with console_app(settings) as app:
        yield TestClient(app, follow_redirects=False)


def make_key(client: TestClient, csrf: str, name: str = "shop backend", scope: str = "write") -> str:
    made = client.post("/integrations/keys", data={"csrf_token": csrf, "name": name, "scope": scope})
    assert made.status_code == 303, made.text
    shown = client.get(made.headers["location"].removeprefix("http://testserver"))
    match = KEY.search(shown.text)
    assert match is not None, shown.text
    return match.group(1)


def keys(settings: Settings) -> list[ApiKey]:
    with Session(make_engine(settings.database_url)) as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


@pytest.mark.parametrize("username", ["alex", "mo"])
def test_only_admins_may_open_the_page_or_make_keys(client: TestClient, username: str) -> None:
    csrf = login(client, username)

    assert client.get("/integrations").status_code == 403
    made = client.post("/integrations/keys", data={"csrf_token": csrf, "name": "x", "scope": "write"})
    assert made.status_code == 403
    assert "Integrations" not in client.get("/").text


def test_a_key_is_shown_once_stored_as_a_hash_and_works(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    csrf = login(client, "ada")
    assert 'href="/integrations">Integrations</a>' in client.get("/").text

    made = client.post(
        "/integrations/keys", data={"csrf_token": csrf, "name": "shop backend", "scope": "read"}
    )
    page = client.get(made.headers["location"].removeprefix("http://testserver"))
    secret = KEY.search(page.text).group(1)  # type: ignore[union-attr]
    reload = client.get(made.headers["location"].removeprefix("http://testserver"))

    assert page.headers["cache-control"] == "no-store"
    assert "shown only this once" in page.text
    assert secret not in reload.text and "A key is shown only once" in reload.text
    (key,) = keys(settings)
    assert (key.name, key.scope.value, key.token_hash) == ("shop backend", "read", digest(secret))
    assert key.prefix == secret[:12] and secret not in str(vars(key))
    with Session(make_engine(settings.database_url)) as session:
        holder = holder_of(session=session, secret=secret)
        assert holder is not None and (holder.name, holder.may_write()) == ("shop backend", False)
        session.commit()
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "api_key_created")).one()
        assert secret not in str(audit.details)
    listed = client.get("/integrations").text
    assert secret not in listed and secret[:12] in listed
    assert "never" not in listed.split('id="key-')[1]  # its last use is shown now
    assert secret not in caplog.text


def test_a_form_without_the_session_csrf_token_makes_no_key(client: TestClient, settings: Settings) -> None:
    login(client, "ada")

    refused = client.post("/integrations/keys", data={"csrf_token": "forged", "name": "x", "scope": "write"})

    assert refused.status_code == 403
    assert keys(settings) == []


@pytest.mark.parametrize(
    ("name", "scope", "message"),
    [
        ("", "write", "Give the key a name"),
        ("x" * 41, "write", "at most 40 characters"),
        ("two\nlines", "write", "one line of visible characters"),
        ("ok", "admin", "Choose whether the key may read or also write."),
    ],
)
def test_a_bad_form_is_shown_again_with_the_reason(
    client: TestClient, settings: Settings, name: str, scope: str, message: str
) -> None:
    csrf = login(client, "ada")

    refused = client.post("/integrations/keys", data={"csrf_token": csrf, "name": name, "scope": scope})

    assert refused.status_code == 422
    assert message in refused.text
    assert keys(settings) == []


def test_a_name_in_use_by_a_live_key_is_refused(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "ada")
    make_key(client, csrf)

    again = client.post(
        "/integrations/keys", data={"csrf_token": csrf, "name": "shop backend", "scope": "write"}
    )

    assert again.status_code == 422 and "in use" in again.text
    assert len(keys(settings)) == 1


def test_a_hostile_name_is_shown_as_text(client: TestClient) -> None:
    csrf = login(client, "ada")
    make_key(client, csrf, name="<img src=x onerror=alert(1)>")

    page = client.get("/integrations").text

    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_revoking_asks_first_then_the_key_stops_working(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "ada")
    secret = make_key(client, csrf)
    (key,) = keys(settings)

    asked = client.post(f"/integrations/keys/{key.id}/revoke", data={"csrf_token": csrf})
    assert asked.status_code == 200
    assert "Revoke the key &#39;shop backend&#39;?" in asked.text
    assert keys(settings)[0].revoked_at is None

    done = client.post(f"/integrations/keys/{key.id}/revoke", data={"csrf_token": csrf, "confirmed": "yes"})

    assert done.status_code == 303
    assert keys(settings)[0].revoked_at is not None
    with Session(make_engine(settings.database_url)) as session:
        assert holder_of(session=session, secret=secret) is None
        actions = list(session.scalars(select(AuditLog.action).where(AuditLog.entity == "api_key")))
    assert actions == ["api_key_created", "api_key_revoked"]
    assert "revoked" in client.get("/integrations").text
    missing = client.post("/integrations/keys/999/revoke", data={"csrf_token": csrf, "confirmed": "yes"})
    assert missing.status_code == 404
