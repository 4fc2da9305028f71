"""A campaign scheduled in the pages is sent by a scheduler service that was already running:
the service finds it in the CRM at its next sweep (a real process, the gateway stood in for)."""

from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm.consent import set_consent
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, Channel, ChannelIdentity, ConsentPurpose, Customer, Role
from bot.crm.passwords import hash_password
from bot.settings import Settings
from tests.console.logins import console_app
from tests.scheduler.standin_gateway import StandInGateway
from tests.scheduler.test_service import Service

pytestmark = pytest.mark.e2e


def test_a_campaign_scheduled_in_the_pages_is_sent_by_the_running_service(tmp_path: Path) -> None:
    with StandInGateway(token=secrets.token_urlsafe(16)) as gateway:
        service = Service(tmp_path, gateway)
        upgrade(service.crm_url)
        with Session(make_engine(service.crm_url)) as session:
            session.add(
                Agent(username="mo", display_name="Mo", role=Role.MARKETER, password_hash=hash_password("p"))
            )
            for n in range(3):
                customer = Customer(first_name=f"Zed{n}", timezone="Pacific/Kiritimati")  # UTC+14
                customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=f"zed-{n}"))
                session.add(customer)
                session.flush()
                set_consent(
                    session=session,
                    customer=customer,
                    purpose=ConsentPurpose.MARKETING,
                    granted=n < 2,
                    source="test",
                )
            session.commit()
        try:
            service.start()
            service.wait_healthy()
            time.sleep(2)  # it has swept with no campaign in the CRM
            assert gateway.calls == []

            settings = Settings.from_env(
                {
                    "DATABASE_URL": service.crm_url,
                    "RASA_TOKEN": "t" * 32,
                    "SECRET_KEY": secrets.token_urlsafe(32),
                    "CARELOOP_ENV": "test",
                }
            )
            with console_app(settings) as app:
                client = TestClient(app, follow_redirects=False)
                page = client.get("/login")
                token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
                client.post("/login", data={"username": "mo", "password": "p", "csrf_token": token})
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]
                # Ten minutes ago on Kiritimati (UTC+14): due there now, still ahead in the rest of the world.
                local = datetime.now(timezone(timedelta(hours=14))) - timedelta(minutes=10)
                response = client.post(
                    "/campaigns/new",
                    data={
                        "csrf_token": csrf,
                        "intent": "schedule",
                        "name": "Dawn roast",
                        "message": "Morning {first_name}!",
                        "date": local.date().isoformat(),
                        "time": local.strftime("%H:%M"),
                        "every": "once",
                        "button_1": "Tell me more",
                    },
                )
                assert response.status_code == 303, response.text
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if 'data-testid="campaign-status">done<' in client.get("/campaigns/1").text:
                        break  # a one-off campaign is done once nothing of it is left to send
                    time.sleep(0.5)
                page_text = client.get("/campaigns/1").text
        finally:
            service.stop_all()
    assert "3 of 3 handled (100%)" in page_text
    assert re.search(r'data-figure="sent">2<', page_text) and "— no consent" in page_text
    assert 'data-testid="campaign-status">done<' in page_text
    texts = sorted(body["entities"]["campaign_text"] for body in gateway.delivered.values())
    assert texts == ["Morning Zed0!", "Morning Zed1!"]
    assert all(body["entities"]["campaign_button_1"] == "Tell me more" for body in gateway.delivered.values())
