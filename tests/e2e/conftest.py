"""The real CareLoop stack on free ports, with its own CRM, for end-to-end tests."""

from __future__ import annotations

import dataclasses
import io
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.demo import demo_day, load_demo_data
from bot.crm.migrate import upgrade
from bot.crm.models import Agent
from bot.gateway.rasa_client import CHANNEL_PATH, CHANNEL_SECRET_HEADER
from bot.ops.model import ensure_model
from bot.ops.services import careloop_services
from bot.ops.supervisor import Supervisor
from bot.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    settings: Settings

    def say(self, sender_id: str, text: str) -> list[dict[str, object]]:
        """Send one customer message as the gateway does (Rasa's channel for the gateway, with its
        shared secret) and return the bot's replies. Any sender: demo customers' journeys too."""
        response = httpx.post(
            f"{self.settings.rasa_url}{CHANNEL_PATH}",
            json={"sender": sender_id, "message": text},
            headers={CHANNEL_SECRET_HEADER: self.settings.rasa_channel_secret},
            timeout=60,
        )
        response.raise_for_status()
        replies: list[dict[str, object]] = response.json()
        return replies

    def trigger(
        self, sender_id: str, intent: str, entities: dict[str, object] | None = None
    ) -> list[dict[str, object]]:
        """Trigger an EXTERNAL_* intent as the scheduler does, and return the bot's replies."""
        response = httpx.post(
            f"{self.settings.rasa_url}/conversations/{sender_id}/trigger_intent",
            params={"token": self.settings.rasa_token},
            json={"name": intent, "entities": entities or {}},
            timeout=60,
        )
        response.raise_for_status()
        messages: list[dict[str, object]] = response.json()["messages"]
        return messages

    def crm(self) -> Session:
        return Session(make_engine(self.settings.database_url), expire_on_commit=False)

    def agents_seen(self, when: datetime | None) -> None:
        """Every demo agent had the console open at `when` (None: nobody has it open)."""
        with self.crm() as crm:
            crm.execute(update(Agent).values(last_seen_at=when))
            crm.commit()


def texts(replies: list[dict[str, object]]) -> str:
    """All reply texts as one string, for assertions about what the customer reads."""
    return "\n".join(str(r.get("text", "")) for r in replies)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var_dir = tmp_path_factory.mktemp("var")
    settings = Settings.from_env(
        {
            "CARELOOP_ENV": "test",
            "CARELOOP_VAR_DIR": str(var_dir),
            "RASA_URL": f"http://127.0.0.1:{free_port()}",
            "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}",
            "GATEWAY_URL": f"http://127.0.0.1:{free_port()}",  # careloop_services starts the gateway too
            "SCHEDULER_URL": f"http://127.0.0.1:{free_port()}",
            "RASA_TOKEN": secrets.token_urlsafe(24),
            "SECRET_KEY": secrets.token_urlsafe(24),
            "BUSINESS_HOURS": "mon-sun 00:00-24:00",  # people at work whenever the suite runs
        }
    )
    upgrade(settings.database_url)
    with Session(make_engine(settings.database_url)) as session:
        load_demo_data(session=session, today=demo_day(datetime.now(timezone.utc)), customers=60)
        session.commit()
    model = ensure_model(settings.models_dir)
    # Rasa loading its model on two cores shared with other suites can take minutes (as tests/webchat).
    services = [
        dataclasses.replace(s, startup_timeout=max(s.startup_timeout, 480.0))
        for s in careloop_services(settings, model)
    ]
    supervisor = Supervisor(services, var_dir / "logs", io.StringIO())
    try:
        supervisor.start()
    except Exception:
        print(supervisor.out.getvalue(), file=sys.stderr)  # type: ignore[attr-defined]
        raise
    yield Stack(settings)
    supervisor.stop()
