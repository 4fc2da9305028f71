"""A real gateway with its console for the security tests: uvicorn on a free port, a stand-in Rasa,
and a migrated CRM on SQLite or PostgreSQL holding the console users alex and sam (agents), mo
(marketer) and ada (admin), each with the password `<username>-pw`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette

from bot.crm.db import engine_for, make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Agent
from bot.crm.passwords import hash_password
from bot.gateway.app import Gateway, create_app
from bot.settings import Settings
from standins.servers import ServerThread
from tests.console.conftest import HANDBACK, USERS
from tests.gateway.harness import RunningGateway, gateway_settings
from tests.gateway.standin_rasa import StandInRasa


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated CRM with the console users, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("pg_scratch")
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        for username, (name, role) in USERS.items():
            password_hash = hash_password(f"{username}-pw")
            session.add(Agent(username=username, display_name=name, role=role, password_hash=password_hash))
        session.commit()
    engine.dispose()
    return url


class Stack(RunningGateway):
    """The running gateway; the test's own CRM sessions share one engine, closed at the end (on
    PostgreSQL an engine dropped with open connections warns)."""

    def __init__(self, settings: Settings, server: ServerThread, gateway: Gateway) -> None:
        super().__init__(settings, server, gateway)
        self.engine = make_engine(settings.database_url)

    def crm(self) -> Session:
        return Session(self.engine)


@contextmanager
def gateway_with_console(tmp_path: Path, url: str, rasa: StandInRasa) -> Iterator[tuple[Stack, Starlette]]:
    """The gateway app (its console at /console) served on a free port, and the app itself."""
    settings = gateway_settings(tmp_path / "var", rasa.url, DATABASE_URL=url)
    rasa.intents["EXTERNAL_handback"] = HANDBACK
    app = create_app(settings)
    try:
        with ServerThread(app, port=settings.gateway_port) as server:
            stack = Stack(settings, server, app.state.gateway)
            try:
                yield stack, app
            finally:
                stack.engine.dispose()
    finally:
        engine_for(url).dispose()  # the gateway's own connections


def the_one(gateway: RunningGateway, model: Any, **where: Any) -> Any:
    """The newest row of `model` matching `where` (the test fails if there is none)."""
    with gateway.crm() as crm:
        row = crm.scalar(select(model).filter_by(**where).order_by(model.id.desc()))
        assert row is not None, f"no {model.__name__} {where}"
        return row
