"""The real CareLoop stack for proactive journeys: action server, Rasa (trained model), the gateway
with Telegram and web chat, and the scheduler service sweeping every second. Telegram is a stand-in
Bot API at the network boundary; every customer a test makes lives in a time zone where it is
early afternoon now, so the real quiet hours (21:00-09:00) do not hold anything back."""

from __future__ import annotations

import dataclasses
import io
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Channel, ChannelIdentity, Customer, Role
from bot.ops.model import ensure_model
from bot.ops.services import careloop_services
from bot.ops.supervisor import Supervisor
from bot.settings import Settings
from standins.servers import ServerThread, free_port
from standins.telegram_botapi import TOKEN, StandInBotApi
from tests.browser import browser
from tests.console.logins import add_console_users
from tests.gateway.harness import wait_until

__all__ = ["browser"]

LOGINS = {"mo": Role.MARKETER, "alex": Role.AGENT}  # password: <username>-pw
_chat_ids = count(910_000_001)


def afternoon_zone(now: datetime | None = None) -> str:
    """A fixed-offset zone where it is 13:xx now (Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3)."""
    hour = (now or datetime.now(timezone.utc)).hour
    offset = 13 - hour
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@dataclass
class OutreachStack:
    settings: Settings
    telegram: StandInBotApi
    zone: str

    @property
    def url(self) -> str:
        return self.settings.gateway_url

    def crm(self) -> Session:
        return Session(make_engine(self.settings.database_url), expire_on_commit=False)

    def web_visitor(self) -> tuple[str, str]:
        """A new widget visitor from the gateway (POST /webchat/session): (visitor id, token)."""
        response = httpx.post(f"{self.url}/webchat/session", timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return str(body["visitor_id"]), str(body["token"])

    def customer(self, session: Session, *, channel: Channel, external_id: str, **fields: Any) -> Customer:
        """A customer reachable on one channel, in the stack's afternoon zone."""
        customer = Customer(timezone=self.zone, **fields)
        customer.identities.append(ChannelIdentity(channel=channel, external_id=external_id))
        session.add(customer)
        session.flush()
        return customer

    @staticmethod
    def new_chat_id() -> int:
        return next(_chat_ids)


@pytest.fixture(scope="session")
def outreach(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutreachStack]:
    telegram = StandInBotApi()
    with ServerThread(telegram.app()) as botapi:
        telegram.url = botapi.url
        var_dir = tmp_path_factory.mktemp("outreach-var")
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
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_BASE_URL": telegram.url,
            }
        )
        upgrade(settings.database_url)
        with Session(make_engine(settings.database_url)) as session:
            add_console_users(session, LOGINS)
            session.commit()
        model = ensure_model(settings.models_dir)
        services = [
            dataclasses.replace(
                s, argv=[*s.argv, "--sweep-seconds", "1", "--send-seconds", "1"]
            )  # the real service and jobs, on a short interval
            if s.name == "scheduler"
            else s
            for s in careloop_services(settings, model)
        ]
        supervisor = Supervisor(services, var_dir / "logs", io.StringIO())
        try:
            supervisor.start()
        except Exception:
            print(supervisor.out.getvalue(), file=sys.stderr)  # type: ignore[attr-defined]
            raise
        try:
            wait_until(
                lambda: (
                    httpx.get(f"{settings.gateway_url}/health", timeout=5).json()["telegram"] == "running"
                ),
                timeout=60,
                what="the gateway's Telegram channel to connect to the stand-in Bot API",
            )
            yield OutreachStack(
                settings, telegram, afternoon_zone(datetime.now(timezone.utc) + timedelta(minutes=5))
            )
        finally:
            supervisor.stop()
