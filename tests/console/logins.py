"""Console users and settings for tests: one user per role, each with the password
`<username>-pw`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.testclient import TestClient

from bot.console.app import Console, create_console_app
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, Role
from bot.crm.passwords import hash_password
from bot.gateway.store import Crm
from bot.settings import Settings

ROLES = {"ada": Role.ADMIN, "alex": Role.AGENT, "mo": Role.MARKETER}


def add_console_users(session: Session, roles: Mapping[str, Role] = ROLES) -> None:
    for username, role in roles.items():
        session.add(
            Agent(
                username=username,
                display_name=username.title(),
                role=role,
                password_hash=hash_password(f"{username}-pw"),
            )
        )


def console_settings(database_url: str) -> Settings:
    """Settings for a console app on `database_url`, with a fresh secret."""
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "RASA_TOKEN": "t" * 32,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "CARELOOP_ENV": "test",
        }
    )


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: TestClient) -> str:
    """The session's CSRF token, as the console's home page carries it."""
    return CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]


def login(client: TestClient, username: str, password: str | None = None) -> str:
    """Log in through the login form (password `<username>-pw` by default); return the CSRF token."""
    token = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/login",
        data={"username": username, "password": password or f"{username}-pw", "csrf_token": token},
    )
    assert response.status_code == 303, response.text
    return csrf_of(client)


def console_crm(database_url: str) -> None:
    """A migrated CRM at `database_url` with the test users."""
    upgrade(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        add_console_users(session)
        session.commit()
    engine.dispose()


@contextmanager
def console_app(settings: Settings, extra_routes: Sequence[BaseRoute] = ()) -> Iterator[Starlette]:
    """The console on its own, with the CRM workers the gateway starts and closes for it."""
    crm = Crm(settings.database_url, workers=2, name="crm-console")
    crm.start()
    try:
        yield create_console_app(Console(settings, crm), extra_routes)
    finally:
        crm.close()
