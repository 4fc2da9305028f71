"""Handing over to a person: live with the wait when someone is at work, a callback case otherwise."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions import handoff as handoff_module
from bot.actions.base import current_settings
from bot.actions.feedback import ActionRecordRating
from bot.actions.handoff import (
    ActionHandoff,
    ActionPauseForAgent,
    ActionSetCallbackRoute,
    ValidateCallbackForm,
)
from bot.console import desk as console_desk
from bot.crm.models import (
    Agent,
    Channel,
    ChannelIdentity,
    ComplaintStatus,
    Conversation,
    ConversationStatus,
    Customer,
    Handoff,
    HandoffStatus,
    Role,
    Severity,
    Survey,
)
from tests.actions.conftest import make_tracker, run_action
from tests.factories import make_complaint, make_customer

SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def dana(crm: Session) -> Customer:
    customer = make_customer(crm, first_name="Dana", web_id="dana", timezone="Europe/Berlin")
    crm.commit()
    return customer


def at_work(crm: Session, monkeypatch: pytest.MonkeyPatch, *, now: datetime, seen_ago: float | None) -> None:
    """Office hours Mon–Fri 09:00–17:00 Berlin; one agent last seen `seen_ago` seconds before `now`."""
    monkeypatch.setenv("BUSINESS_HOURS", "mon-fri 09:00-17:00")
    monkeypatch.setenv("BUSINESS_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("CONSOLE_AGENT_ONLINE_SECONDS", "60")
    current_settings.cache_clear()
    monkeypatch.setattr(handoff_module, "utcnow", lambda: now)
    crm.add(
        Agent(
            username="ana",
            display_name="Ana",
            password_hash="x",
            role=Role.AGENT,
            last_seen_at=None if seen_ago is None else now - timedelta(seconds=seen_ago),
        )
    )
    crm.commit()


def slots(events: list[dict[str, object]]) -> dict[str, object]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def test_live_handoff_tells_the_wait_and_pauses_the_bot(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=10)
    events, _ = await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    assert {k: slots(events)[k] for k in ("handoff_state", "queue_ahead", "wait_minutes")} == {
        "handoff_state": "queued",
        "queue_ahead": "0",
        "wait_minutes": "4",  # one chat, one agent, the default handling time
    }
    handoff = crm.scalars(select(Handoff)).one()
    assert (handoff.reason, handoff.status, handoff.mode) == (
        "customer_request",
        HandoffStatus.QUEUED,
        "live",
    )
    assert crm.scalars(select(Conversation)).one().status is ConversationStatus.HANDED_OFF

    paused, _ = await run_action(ActionPauseForAgent(), make_tracker("web:dana", intent="request_human"))
    assert paused[-1] == ConversationPaused()

    again, _ = await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    assert slots(again)["handoff_state"] == "already"
    assert len(crm.scalars(select(Handoff)).all()) == 1


async def test_nobody_online_files_a_callback_and_the_bot_goes_on(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=300)  # the console was closed 5 minutes ago
    events, _ = await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    assert slots(events)["handoff_state"] == "callback_busy"
    # Two hours of opening time, stated in Dana's zone with the zone named (13:00 Berlin + 2 h).
    assert slots(events)["callback_when"] == "by Tuesday 24 November, 15:00 Berlin time"
    handoff = crm.scalars(select(Handoff)).one()
    assert (handoff.mode, handoff.callback_by) == ("callback", TUESDAY_NOON + timedelta(hours=2))
    assert crm.scalars(select(Conversation)).one().status is ConversationStatus.BOT

    paused, _ = await run_action(ActionPauseForAgent(), make_tracker("web:dana", intent="request_human"))
    assert not any(e.get("event") == "pause" for e in paused)


async def test_outside_business_hours_the_callback_is_after_opening(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=SATURDAY_NOON, seen_ago=10)  # someone is online, but it is the weekend
    events, _ = await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    assert slots(events)["handoff_state"] == "callback_closed"
    monday_eleven_berlin = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
    assert crm.scalars(select(Handoff)).one().callback_by == monday_eleven_berlin
    assert slots(events)["callback_when"] == "by Monday 30 November, 11:00 Berlin time"


async def test_a_callback_near_closing_counts_only_opening_hours_and_the_queue_shows_the_same_promise(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tuesday_half_past_four_berlin = datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc)
    at_work(crm, monkeypatch, now=tuesday_half_past_four_berlin, seen_ago=None)  # nobody at the console
    events, _ = await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))

    # 30 minutes before closing at 17:00, the other 90 after opening at 09:00 on Wednesday.
    handoff = crm.scalars(select(Handoff)).one()
    assert handoff.callback_by == datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)
    promise = "by Wednesday 25 November, 10:30 Berlin time"
    assert slots(events)["callback_when"] == promise
    queue = console_desk._queue(crm, now=tuesday_half_past_four_berlin, zone="Europe/Berlin")
    assert [(e["handoff_id"], e["promised"]) for e in queue] == [(handoff.id, promise)]
    assert queue[0]["contact_text"] == "answer in this chat (they read it when they come back)"


@pytest.mark.parametrize(
    ("zone", "promise"),
    [
        ("America/New_York", "by Tuesday 24 November, 09:00 New York time"),
        ("UTC", "by Tuesday 24 November, 15:00 Berlin time"),  # unknown (the default): the shop's zone
    ],
)
async def test_the_callback_promise_names_the_customers_zone(
    crm: Session, monkeypatch: pytest.MonkeyPatch, zone: str, promise: str
) -> None:
    make_customer(crm, web_id="zoned", timezone=zone, email="z@example.com")
    crm.commit()
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=None)
    events, _ = await run_action(ActionHandoff(), make_tracker("web:zoned", intent="request_human"))
    assert slots(events)["callback_when"] == promise
    queue = console_desk._queue(crm, now=TUESDAY_NOON, zone="Europe/Berlin")
    assert queue[0]["promised"] == promise
    assert queue[0]["contact"] == [
        "email (not confirmed yet)",
        "answer in this chat (they read it when they come back)",
    ]


def close_open_handoffs(crm: Session) -> None:
    for handoff in crm.scalars(select(Handoff).where(Handoff.status == HandoffStatus.QUEUED)):
        handoff.status = HandoffStatus.CLOSED
    crm.commit()


async def test_the_callback_says_how_it_reaches_the_customer_and_asks_a_guest_first(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=None)
    tracker = make_tracker("web:dana", intent="request_human")
    guest, _ = await run_action(ActionHandoff(), tracker)
    # A web guest with no address or phone: the answer would wait in this chat, so ask first.
    assert (slots(guest)["callback_route"], slots(guest)["callback_ask"]) == ("chat", True)
    close_open_handoffs(crm)
    dana.email, dana.email_verified_at = "dana@example.com", TUESDAY_NOON
    crm.commit()
    known, _ = await run_action(ActionHandoff(), tracker)
    assert slots(known)["callback_route"] == "email" and "callback_ask" not in slots(known)
    close_open_handoffs(crm)
    telegram = make_customer(crm, first_name="Tom")
    telegram.identities.append(ChannelIdentity(channel=Channel.TELEGRAM, external_id="777"))
    crm.commit()
    on_telegram, _ = await run_action(ActionHandoff(), make_tracker("telegram:777", intent="request_human"))
    assert slots(on_telegram)["callback_route"] == "channel" and "callback_ask" not in slots(on_telegram)


async def test_a_live_handoff_drops_a_pending_callback_question(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=10)
    tracker = make_tracker("web:dana", intent="request_human", slots={"callback_ask": True})
    events, _ = await run_action(ActionHandoff(), tracker)
    assert slots(events)["handoff_state"] == "queued" and slots(events)["callback_ask"] is None


@pytest.mark.parametrize(
    ("said", "hint_before", "taken"),
    [
        ("anna.berg@example.com", None, {"callback_contact": "anna.berg@example.com", "callback_hint": None}),
        ("call me on +44 7700 900123", None, {"callback_contact": "+447700900123", "callback_hint": None}),
        ("chat", None, {"callback_contact": "chat", "callback_hint": None}),
        ("tomorrow maybe", None, {"callback_contact": None, "callback_hint": "invalid"}),
        # Twice nothing usable: the answer comes in this chat, nobody is held in the question.
        ("dunno", "invalid", {"callback_contact": "chat", "callback_hint": None}),
    ],
)
async def test_the_callback_question_takes_an_email_a_phone_or_this_chat(
    said: str, hint_before: str | None, taken: dict[str, object]
) -> None:
    tracker = make_tracker(
        "web:x", text=said, intent="update_contact_details", slots={"callback_hint": hint_before}
    )
    assert (
        ValidateCallbackForm().validate_callback_contact(said, CollectingDispatcher(), tracker, {}) == taken
    )


async def test_the_contact_given_is_on_the_callback_the_promise_and_the_queue(
    crm_both: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = crm_both
    make_customer(crm, first_name="Gail", web_id="gail", timezone="America/New_York")
    crm.commit()
    at_work(crm, monkeypatch, now=SATURDAY_NOON, seen_ago=None)
    asked, _ = await run_action(ActionHandoff(), make_tracker("web:gail", intent="request_human"))
    assert slots(asked)["handoff_state"] == "callback_closed" and slots(asked)["callback_ask"] is True
    promise = slots(asked)["callback_when"]
    assert str(promise).endswith("New York time")

    answered = make_tracker(
        "web:gail", text="gail@example.com", slots={"callback_contact": "gail@example.com"}
    )
    events, _ = await run_action(ActionSetCallbackRoute(), answered)
    assert {k: slots(events)[k] for k in ("callback_route", "callback_ask", "callback_contact")} == {
        "callback_route": "email",
        "callback_ask": None,
        "callback_contact": None,
    }
    queue = console_desk._queue(crm, now=SATURDAY_NOON, zone="Europe/Berlin")
    assert queue[0]["contact"][0] == "email given in chat: gail@example.com (not confirmed)"
    assert queue[0]["promised"] == promise
    # Asking again later does not ask how to reach them again: the callback knows.
    again, _ = await run_action(ActionHandoff(), make_tracker("web:gail", intent="request_human"))
    assert slots(again)["callback_route"] == "email" and "callback_ask" not in slots(again)


async def test_staying_in_this_chat_promises_this_chat_and_is_not_asked_again(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=SATURDAY_NOON, seen_ago=None)
    await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    events, _ = await run_action(
        ActionSetCallbackRoute(), make_tracker("web:dana", intent="deny", slots={"callback_contact": "chat"})
    )
    assert slots(events)["callback_route"] == "chat"
    queue = console_desk._queue(crm, now=SATURDAY_NOON, zone="Europe/Berlin")
    assert not any("given in chat" in route for route in queue[0]["contact"])
    again, _ = await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    assert slots(again)["callback_route"] == "chat" and "callback_ask" not in slots(again)  # not asked twice


async def test_the_bot_going_quiet_after_the_promise_drops_the_callback_question(
    crm: Session, dana: Customer
) -> None:
    tracker = make_tracker("web:dana", intent="request_human", slots={"callback_ask": True})
    events, _ = await run_action(ActionPauseForAgent(), tracker)
    assert slots(events) == {**slots(events), "callback_ask": None}


async def test_an_open_severe_complaint_raises_the_priority(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=10)
    calm = make_customer(crm, web_id="calm")
    make_complaint(crm, dana, severity=Severity.HIGH, status=ComplaintStatus.OPEN)
    crm.commit()
    await run_action(ActionHandoff(), make_tracker("web:calm", intent="request_human"))
    monkeypatch.setattr(handoff_module, "utcnow", lambda: TUESDAY_NOON + timedelta(minutes=1))
    events, _ = await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    assert slots(events)["queue_ahead"] == "0"  # asked second, served first
    by_customer = {h.customer_id: h.priority for h in crm.scalars(select(Handoff))}
    assert by_customer[dana.id] > by_customer[calm.id]


async def test_a_rating_after_a_handback_belongs_to_that_handoff(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=10)
    await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human"))
    handoff = crm.scalars(select(Handoff)).one()
    handoff.status, handoff.closed_at = HandoffStatus.RETURNED, datetime.now(timezone.utc)
    crm.commit()
    rating = [{"entity": "rating", "value": "5"}]
    await run_action(ActionRecordRating(), make_tracker("web:dana", intent="rate", entities=rating))
    assert crm.scalars(select(Survey)).one().handoff_id == handoff.id


async def test_the_handoff_carries_what_the_complaint_had_gathered(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_work(crm, monkeypatch, now=TUESDAY_NOON, seen_ago=10)
    gathered = {
        "complaint_category": "delivery",
        "complaint_order": "CL-100200",
        "complaint_description": "the parcel\narrived   soaked " + "x" * 400,
        "complaint_id": "12",  # not a fact of this hand-over
    }
    await run_action(ActionHandoff(), make_tracker("web:dana", intent="request_human", slots=gathered))

    (entry,) = console_desk._queue(crm, now=TUESDAY_NOON, zone="Europe/Berlin")
    about, order, words = entry["facts_text"].split(" · ")
    assert (about, order) == ("Complaint about: delivery", "Order: CL-100200")
    assert words.startswith("What happened: the parcel arrived soaked xxx") and words.endswith("…")
    assert len(words) == len("What happened: ") + handoff_module.MAX_FACT


@pytest.mark.parametrize(
    ("said_last", "intent", "asks"),
    [
        ("utter_offer_human", "affirm", True),  # data/rules/handoff.yml has the callback question
        ("utter_win_back", "affirm", False),  # no callback question on this path: promised at once
        ("utter_retention_person", "affirm", False),
    ],
)
async def test_only_paths_with_a_callback_question_ask_it(
    crm: Session, dana: Customer, monkeypatch: pytest.MonkeyPatch, said_last: str, intent: str, asks: bool
) -> None:
    at_work(crm, monkeypatch, now=SATURDAY_NOON, seen_ago=None)
    tracker = make_tracker("web:dana", intent=intent)
    tracker.events = [{"event": "action", "name": said_last}, {"event": "action", "name": "action_listen"}]
    events, _ = await run_action(ActionHandoff(), tracker)
    assert slots(events)["callback_route"] == "chat"
    assert slots(events).get("callback_ask") is (True if asks else None)
