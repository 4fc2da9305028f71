"""Console login: roles, expiring signed sessions, CSRF, throttling, refusal of default secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bot.console.auth import SESSION_COOKIE, InsecureSecret, Sessions, check_secret
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, Role
from bot.crm.passwords import hash_password
from bot.settings import Settings
from tests.console.logins import add_console_users, console_app, console_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    with Session(make_engine(url)) as session:
        add_console_users(session)
        session.add(
            Agent(
                username="gone",
                display_name="Gone",
                role=Role.AGENT,
                password_hash=hash_password("gone-pw"),
                active=False,
            )
        )
        session.commit()
    return console_settings(url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    async def chats(request: Request) -> PlainTextResponse:
        await request.app.state.console.require(request, "chats")
        return PlainTextResponse("the queue")

    with console_app(settings, extra_routes=[Route("/queue", chats)]) as app:
        yield TestClient(app, follow_redirects=False)


def login(client: TestClient, username: str, password: str) -> int:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    ).status_code


def test_pages_need_a_login(client: TestClient) -> None:
    response = client.get("/queue")
    assert response.status_code == 303 and response.headers["location"].endswith("/login")


def test_agent_logs_in_and_reaches_the_queue(client: TestClient) -> None:
    assert login(client, "alex", "alex-pw") == 303
    assert client.get("/queue").text == "the queue"
    home = client.get("/").text
    assert "Queue" in home and "Campaigns" not in home


def test_a_marketer_cannot_read_chats(client: TestClient) -> None:
    assert login(client, "mo", "mo-pw") == 303
    assert client.get("/queue").status_code == 403
    assert "Campaigns" in client.get("/").text


@pytest.mark.parametrize(("username", "password"), [("alex", "wrong"), ("nobody", "x"), ("gone", "gone-pw")])
def test_wrong_credentials_get_one_message(client: TestClient, username: str, password: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 401 and "Wrong username or password." in response.text
    assert SESSION_COOKIE not in response.cookies


def test_login_without_the_form_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": "alex", "password": "alex-pw", "csrf_token": "forged"})
    assert response.status_code == 403 and SESSION_COOKIE not in response.cookies


def test_logout_needs_the_session_csrf_token(client: TestClient) -> None:
    login(client, "alex", "alex-pw")
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/queue").status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    client.cookies.clear()
    assert client.get("/queue").status_code == 303


def test_repeated_failures_are_throttled(client: TestClient) -> None:
    for _ in range(5):
        assert login(client, "alex", "wrong") == 401
    assert login(client, "alex", "alex-pw") == 429


def test_sessions_expire_and_cannot_be_forged(settings: Settings) -> None:
    with Session(make_engine(settings.database_url)) as session:
        agent = session.get(Agent, 2)
        assert agent is not None
        cookie, _ = Sessions(settings.secret_key).issue(agent, session=session)
        assert Sessions(settings.secret_key).read(cookie, session=session) is not None
        assert Sessions(settings.secret_key, max_age=-1).read(cookie, session=session) is None
        assert Sessions("another-secret-entirely-different").read(cookie, session=session) is None
        agent.role = Role.MARKETER  # a changed role ends the old session
        assert Sessions(settings.secret_key).read(cookie, session=session) is None


def test_console_refuses_default_secrets_outside_development() -> None:
    with pytest.raises(InsecureSecret):
        check_secret("change-me", "production")
    with pytest.raises(InsecureSecret):
        check_secret("short", "test")
    check_secret("change-me", "development")


def test_output_is_escaped(client: TestClient, settings: Settings) -> None:
    with Session(make_engine(settings.database_url)) as session:
        session.add(
            Agent(
                username="xss",
                display_name="<script>alert(1)</script>",
                role=Role.AGENT,
                password_hash=hash_password("xss-pw"),
            )
        )
        session.commit()
    login(client, "xss", "xss-pw")
    home = client.get("/").text
    assert "<script>alert(1)</script>" not in home and "&lt;script&gt;alert(1)&lt;/script&gt;" in home
