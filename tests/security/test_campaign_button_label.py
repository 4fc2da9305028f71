"""Issue 15, item 1: a campaign's button labels are also its payloads, so a label Rasa would read as
an intent (`/EXTERNAL_campaign{…}`, `/request_human`) is refused, in the campaign service and in the
console's form, with a message that says what to do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Campaign
from scheduler.audience import InvalidAudience
from scheduler.campaigns.lifecycle import create_campaign, update_campaign
from tests.console.logins import add_console_users, console_app, console_settings, login

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
REFUSED = "a button label may not begin with a slash (/)"
SLASHED = [
    "/request_human",
    '/EXTERNAL_campaign{"t": "http://x.eu"}',
    " /affirm",
    "\u3000/deny",  # a space Python's strip (and so Rasa's) removes
    "//",
]


def fields(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Spring beans",
        "message": "Hi {first_name}, spring beans are in!",
        "audience": {},
        "schedule": {"date": (NOW + timedelta(days=1)).date().isoformat(), "time": "10:00"},
        "buttons": ["Tell me more"],
        **overrides,
    }


@pytest.mark.parametrize("label", SLASHED)
def test_the_service_refuses_a_label_beginning_with_a_slash(session: Session, label: str) -> None:
    with pytest.raises(InvalidAudience, match=re.escape(REFUSED)):
        create_campaign(session=session, **fields(buttons=["Tell me more", label]), now=NOW)
    assert session.scalar(select(func.count(Campaign.id))) == 0


def test_an_edit_cannot_bring_a_slash_in(session: Session) -> None:
    campaign = create_campaign(session=session, **fields(), now=NOW)

    with pytest.raises(InvalidAudience, match=re.escape(REFUSED)):
        update_campaign(
            session=session, campaign=campaign, **fields(buttons=["/deny"]), actor="test", now=NOW
        )
    session.refresh(campaign)
    assert campaign.buttons == [{"title": "Tell me more"}]


def test_labels_with_a_slash_inside_are_words(session: Session) -> None:
    campaign = create_campaign(session=session, **fields(buttons=["Yes / no", "50% off/now"]), now=NOW)
    assert campaign.buttons == [{"title": "Yes / no"}, {"title": "50% off/now"}]


# ----- the console's form -----


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        add_console_users(session)
        session.commit()
    engine.dispose()
    with console_app(console_settings(url)) as app:
        yield TestClient(app, follow_redirects=False)


def form(csrf: str, intent: str, button: str) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "intent": intent,
        "name": "Spring beans",
        "message": "Hi {first_name}, spring beans are in!",
        "date": (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat(),
        "time": "10:00",
        "every": "once",
        "button_1": "Tell me more",
        "button_2": button,
    }


@pytest.mark.parametrize("intent", ["preview", "schedule", "draft"])
def test_the_form_shows_the_refusal_and_keeps_what_was_typed(client: TestClient, intent: str) -> None:
    csrf = login(client, "mo")

    response = client.post("/campaigns/new", data=form(csrf, intent, "/EXTERNAL_campaign"))

    assert response.status_code == 422
    # Issue 19: the refusal stands beside the field it is about (the form lists every mistake at once).
    shown = re.search(r'<p class="field-error" id="err-button_2">(.*?)</p>', response.text, re.S)
    assert shown is not None and REFUSED in shown.group(1).lower()
    assert 'value="/EXTERNAL_campaign"' in response.text
    assert client.get("/campaigns").text.count("Spring beans") == 0
