"""Issue 15, item 4: console sessions live on the server and end when they should.

A copied session cookie stops working after logout, a password reset, a role change (even one
changed back), a deactivation (even one undone) and an admin's "Sign out everywhere"; a session
also ends after CONSOLE_SESSION_IDLE_MINUTES without use and CONSOLE_SESSION_MAX_HOURS after the
login whatever its use. Every test runs the real console app on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bot.console.auth import SESSION_COOKIE
from bot.crm.db import make_engine
from bot.crm.models import Agent, ConsoleSession, utcnow
from bot.settings import Settings
from tests.console.logins import console_app, console_crm, console_settings, login


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("pg_scratch")
    console_crm(url)
    return console_settings(url)


@pytest.fixture
def app(settings: Settings) -> Iterator[Starlette]:
    async def chats(request: Request) -> PlainTextResponse:
        await request.app.state.console.require(request, "chats")
        return PlainTextResponse("the queue")

    with console_app(settings, extra_routes=[Route("/queue", chats)]) as app:
        yield app


@pytest.fixture
def crm(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def client(app: Starlette) -> TestClient:
    return TestClient(app, follow_redirects=False)


def copy_of(app: Starlette, victim: TestClient) -> TestClient:
    """Another browser holding the victim's session cookie (stolen, or a second tab)."""
    thief = client(app)
    thief.cookies.set(SESSION_COOKIE, victim.cookies[SESSION_COOKIE])
    return thief


def in_queue(browser: TestClient) -> bool:
    response = browser.get("/queue")
    assert response.status_code in (200, 303), response.text
    return response.status_code == 200


def agent_id(crm: Session, username: str) -> int:
    found = crm.scalar(select(Agent.id).where(Agent.username == username))
    assert found is not None
    return found


def admin(app: Starlette) -> tuple[TestClient, str]:
    ada = client(app)
    return ada, login(ada, "ada")


def test_logout_ends_the_session_for_every_copy_of_the_cookie(app: Starlette) -> None:
    alex = client(app)
    csrf = login(alex, "alex")
    thief = copy_of(app, alex)
    assert in_queue(thief)
    assert alex.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert not in_queue(thief)
    assert thief.get("/").status_code == 303  # the home page too: the session is gone, not its role


def test_logging_in_again_elsewhere_does_not_revive_a_logged_out_cookie(app: Starlette) -> None:
    alex = client(app)
    csrf = login(alex, "alex")
    thief = copy_of(app, alex)
    alex.post("/logout", data={"csrf_token": csrf})
    login(client(app), "alex")
    assert not in_queue(thief)


def test_the_store_holds_no_usable_token(app: Starlette, crm: Session) -> None:
    alex = client(app)
    login(alex, "alex")
    cookie = alex.cookies[SESSION_COOKIE]
    row = crm.scalars(select(ConsoleSession)).one()
    values = [str(getattr(row, column.key)) for column in ConsoleSession.__table__.columns]
    assert not any(cookie in value or value in cookie for value in values if len(value) > 8)


def test_a_password_reset_ends_the_users_sessions(app: Starlette, crm: Session) -> None:
    alex = client(app)
    login(alex, "alex")
    ada, csrf = admin(app)
    reset = ada.post(
        f"/users/{agent_id(crm, 'alex')}/password",
        data={
            "csrf_token": csrf,
            "password": "a-new-password-1",
            "confirmed": "yes",
        },  # asked first (issue 19)
    )
    assert reset.status_code == 303
    assert not in_queue(alex)
    assert in_queue(ada)  # the admin's own session goes on


def test_a_role_change_ends_the_sessions_even_when_changed_back(app: Starlette, crm: Session) -> None:
    alex = client(app)
    login(alex, "alex")
    ada, csrf = admin(app)
    alex_id = agent_id(crm, "alex")
    for role in ("marketer", "agent"):
        response = ada.post(f"/users/{alex_id}/role", data={"csrf_token": csrf, "role": role})
        assert response.status_code == 303
    assert not in_queue(alex)


def test_a_deactivation_ends_the_sessions_even_when_reactivated(app: Starlette, crm: Session) -> None:
    alex = client(app)
    login(alex, "alex")
    ada, csrf = admin(app)
    alex_id = agent_id(crm, "alex")
    for active in ("no", "yes"):
        data = {
            "csrf_token": csrf,
            "active": active,
            "confirmed": "yes",
        }  # a deactivation asks first (issue 19)
        response = ada.post(f"/users/{alex_id}/active", data=data)
        assert response.status_code == 303
    assert not in_queue(alex)
    login(alex, "alex")  # reactivated: a new login works
    assert in_queue(alex)


def test_an_admin_signs_a_user_out_everywhere(app: Starlette, crm: Session) -> None:
    laptop, phone = client(app), client(app)
    login(laptop, "alex")
    login(phone, "alex")
    ada, csrf = admin(app)
    users = ada.get("/users")
    assert "Sign out everywhere" in users.text
    response = ada.post(f"/users/{agent_id(crm, 'alex')}/sessions/end", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert not in_queue(laptop) and not in_queue(phone)
    assert in_queue(ada)
    assert "Signed out everywhere" in ada.get(response.headers["location"]).text


def test_signing_out_everywhere_needs_the_admins_csrf_token(app: Starlette, crm: Session) -> None:
    alex = client(app)
    login(alex, "alex")
    ada, _ = admin(app)
    response = ada.post(f"/users/{agent_id(crm, 'alex')}/sessions/end", data={"csrf_token": "forged"})
    assert response.status_code == 403
    assert in_queue(alex)


def test_an_idle_session_ends(app: Starlette, crm: Session, settings: Settings) -> None:
    alex = client(app)
    login(alex, "alex")
    row = crm.scalars(select(ConsoleSession)).one()
    idle = timedelta(minutes=settings.console_session_idle_minutes)
    assert abs(row.idle_expires_at - (row.last_seen_at + idle)) < timedelta(seconds=5)
    assert idle == timedelta(minutes=30)  # the default

    backdate(crm, minutes=29)  # used 29 minutes ago: still alive, and this use extends it
    assert in_queue(alex)
    crm.expire_all()
    assert crm.scalars(select(ConsoleSession)).one().idle_expires_at > utcnow() + idle - timedelta(minutes=1)

    backdate(crm, minutes=31)
    assert not in_queue(alex)


def test_a_session_ends_after_its_absolute_lifetime_however_busy(
    app: Starlette, crm: Session, settings: Settings
) -> None:
    alex = client(app)
    login(alex, "alex")
    row = crm.scalars(select(ConsoleSession)).one()
    assert settings.console_session_max_hours == 12  # the default
    assert abs(row.expires_at - (row.created_at + timedelta(hours=12))) < timedelta(seconds=5)
    crm.execute(
        update(ConsoleSession).values(
            created_at=utcnow() - timedelta(hours=11, minutes=59), expires_at=utcnow() + timedelta(minutes=1)
        )
    )
    crm.commit()
    assert in_queue(alex)
    crm.expire_all()
    assert crm.scalars(select(ConsoleSession)).one().idle_expires_at <= row.expires_at + timedelta(minutes=1)
    crm.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    crm.commit()
    assert not in_queue(alex)


def test_a_check_that_is_not_a_use_does_not_extend_the_session(
    app: Starlette, crm: Session, settings: Settings
) -> None:
    alex = client(app)
    login(alex, "alex")
    backdate(crm, minutes=20)
    sessions = app.state.console.sessions
    cookie = alex.cookies[SESSION_COOKIE]
    user = sessions.read(cookie, session=crm, touch=False)
    assert user is not None
    crm.commit()
    crm.expire_all()
    assert crm.scalars(select(ConsoleSession)).one().last_seen_at < utcnow() - timedelta(minutes=19)
    alex.post("/logout", data={"csrf_token": user.csrf})
    crm.expire_all()
    assert sessions.read(cookie, session=crm, touch=False) is None


def test_the_cookie_lives_no_longer_than_the_session(app: Starlette) -> None:
    alex = client(app)
    page = alex.get("/login").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = alex.post("/login", data={"username": "alex", "password": "alex-pw", "csrf_token": token})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=43200" in cookie


def backdate(crm: Session, *, minutes: int) -> None:
    """Pretend the only session was last used `minutes` ago."""
    then = utcnow() - timedelta(minutes=minutes)
    crm.execute(
        update(ConsoleSession).values(
            last_seen_at=then, idle_expires_at=then + timedelta(minutes=30), created_at=then
        )
    )
    crm.commit()
