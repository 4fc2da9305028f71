"""The real CareLoop stack (action server, Rasa, gateway) on free ports under the supervisor, with
its own CRM holding the demo data, and a headless Chromium driven by Playwright."""

from __future__ import annotations

import dataclasses
import io
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.demo import demo_day, load_demo_data
from bot.crm.migrate import upgrade
from bot.crm.models import Conversation, Message
from bot.gateway.tokens import visitor_of
from bot.ops.model import ensure_model
from bot.ops.services import careloop_services
from bot.ops.supervisor import Service, Supervisor
from bot.settings import Settings
from standins.servers import free_port
from tests.browser import CHROMIUM, CHROMIUM_ARGS, browser, page

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "browser", "page"]

STARTUP_UNDER_LOAD = 480.0  # s; Rasa loading its model on two cores shared with other suites takes minutes


@dataclass
class LiveStack:
    settings: Settings
    model: Path
    supervisor: Supervisor
    restarted: list[Supervisor] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.settings.gateway_url

    def crm(self) -> Session:
        return Session(make_engine(self.settings.database_url), expire_on_commit=False)

    def service(self, name: str) -> Service:
        return {s.name: s for s in careloop_services(self.settings, self.model)}[name]

    def stop(self, name: str) -> None:
        """Stop one service (as a crash or a deploy would)."""
        for supervisor in (self.supervisor, *self.restarted):
            for running in supervisor.running:
                if running.service.name == name:
                    running.stop(15)
                    supervisor.running.remove(running)
                    return
        raise AssertionError(f"{name} is not running")

    def start(self, name: str) -> None:
        """Start a stopped service again and wait until it is healthy."""
        supervisor = Supervisor([self.service(name)], self.settings.var_dir / "logs", io.StringIO())
        self.restarted.append(supervisor)
        supervisor.start()

    def sender_of(self, page: Page) -> str:
        """The conversation id of the visitor in `page` (from the token the widget keeps)."""
        key = page.evaluate("() => Object.keys(localStorage).find(k => k.endsWith(':token'))")
        token = page.evaluate("key => JSON.parse(localStorage.getItem(key))", key)
        visitor_id = visitor_of(self.settings.secret_key, token)
        assert visitor_id is not None
        return f"web:{visitor_id}"

    def messages(self, sender_id: str) -> list[Message]:
        with self.crm() as crm:
            conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
            if conversation is None:
                return []
            query = select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
            return list(crm.scalars(query))


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    var_dir = tmp_path_factory.mktemp("live-var")
    settings = Settings.from_env(
        {
            "CARELOOP_ENV": "test",
            "CARELOOP_VAR_DIR": str(var_dir),
            "RASA_URL": f"http://127.0.0.1:{free_port()}",
            "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}",
            "GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
            "SCHEDULER_URL": f"http://127.0.0.1:{free_port()}",
            "RASA_TOKEN": secrets.token_urlsafe(24),
            "SECRET_KEY": secrets.token_urlsafe(24),
            "GATEWAY_RASA_TIMEOUT": "30",
            "GATEWAY_RETRY_SECONDS": "1",
            "BUSINESS_HOURS": "mon-sun 00:00-24:00",  # people at work whenever the suite runs
        }
    )
    upgrade(settings.database_url)
    with Session(make_engine(settings.database_url)) as session:
        load_demo_data(session=session, today=demo_day(datetime.now(timezone.utc)), customers=60)
        session.commit()
    model = ensure_model(settings.models_dir)
    services = [
        dataclasses.replace(s, startup_timeout=max(s.startup_timeout, STARTUP_UNDER_LOAD))
        for s in careloop_services(settings, model)
    ]
    supervisor = Supervisor(services, var_dir / "logs", io.StringIO())
    try:
        supervisor.start()
    except Exception:
        print(supervisor.out.getvalue(), file=sys.stderr)  # type: ignore[attr-defined]
        raise
    stack = LiveStack(settings, model, supervisor)
    yield stack
    for restarted in stack.restarted:
        restarted.stop()
    supervisor.stop()
