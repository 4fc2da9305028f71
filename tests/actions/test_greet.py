"""action_greet: personal for known customers, welcoming and remembering for strangers."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.actions.greet import ActionGreet
from bot.crm.models import ChannelIdentity, Consent, Customer, InteractionEvent, Segment
from tests.actions.conftest import context, make_tracker, run_action, use_database
from tests.factories import make_customer


async def test_known_customer_is_greeted_by_name_and_the_greeting_is_recorded(crm: Session) -> None:
    anna = make_customer(crm, first_name="Anna", web_id="anna-1", segment=Segment.MVC)
    crm.commit()

    events, dispatcher = await run_action(ActionGreet(), make_tracker("web:anna-1", confidence=0.91))

    assert events == [*context(anna), SlotSet("greeting", "known")]
    assert dispatcher.messages == []  # the rule speaks: utter_greet picks the variation from the slot
    greet = crm.scalars(select(InteractionEvent).where(InteractionEvent.kind == "greet")).one()
    assert (greet.customer_id, greet.intent, greet.confidence, greet.data) == (
        anna.id,
        "greet",
        0.91,
        {"new_customer": False},
    )
    crm.refresh(anna)
    assert anna.last_contact_at is not None
    assert crm.scalar(select(func.count(Customer.id))) == 1


async def test_stranger_is_welcomed_and_becomes_a_customer(crm: Session) -> None:
    events, _ = await run_action(ActionGreet(), make_tracker("telegram:424242"))

    customer = crm.scalars(select(Customer)).one()
    assert events == [*context(customer), SlotSet("greeting", "new")]
    identity = crm.scalars(select(ChannelIdentity)).one()
    assert (identity.channel.value, identity.external_id, identity.customer_id) == (
        "telegram",
        "424242",
        customer.id,
    )
    consents = {c.purpose.value: c.granted for c in crm.scalars(select(Consent))}
    assert consents == {"service": True, "marketing": False}
    greet = crm.scalars(select(InteractionEvent).where(InteractionEvent.kind == "greet")).one()
    assert greet.data == {"new_customer": True}


async def test_stranger_named_by_the_channel_is_welcomed_by_name(crm: Session) -> None:
    tracker = make_tracker(
        "telegram:5151",
        slots={
            "session_started_metadata": {
                "first_name": "  Mia<script> ",
                "last_name": "Kovač",
                "language": "hr",
            }
        },
    )
    events, _ = await run_action(ActionGreet(), tracker)

    customer = crm.scalars(select(Customer)).one()
    assert (customer.first_name, customer.last_name, customer.language) == ("Mia<script>", "Kovač", "hr")
    assert events[-1] == SlotSet("greeting", "new_named")
    assert SlotSet("customer_name", "Mia<script>") in events  # stored as given; escaped where shown


async def test_a_customer_the_gateway_just_created_is_welcomed_as_new(crm: Session) -> None:
    make_customer(crm, first_name=None, web_id="fresh-1")
    crm.commit()
    events, _ = await run_action(ActionGreet(), make_tracker("web:fresh-1", metadata={"first_contact": True}))
    assert events[-1] == SlotSet("greeting", "new")
    events, _ = await run_action(
        ActionGreet(), make_tracker("web:fresh-1", metadata={"first_contact": False})
    )
    assert events[-1] == SlotSet("greeting", "known_unnamed")


async def test_known_customer_without_a_name_is_welcomed_back(crm: Session) -> None:
    make_customer(crm, first_name=None, web_id="anon-1")
    crm.commit()
    events, _ = await run_action(ActionGreet(), make_tracker("web:anon-1"))
    assert events[-1] == SlotSet("greeting", "known_unnamed")


async def test_malformed_sender_is_greeted_without_touching_the_crm(crm: Session) -> None:
    events, dispatcher = await run_action(ActionGreet(), make_tracker("default"))
    assert events == [SlotSet("system_trouble", True), SlotSet("greeting", "new")]
    assert dispatcher.messages == []
    assert crm.scalar(select(func.count(Customer.id))) == 0


async def test_crm_outage_still_greets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_database(monkeypatch, "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none?connect_timeout=2")
    events, _ = await run_action(ActionGreet(), make_tracker("web:anna-1"))
    assert events == [SlotSet("system_trouble", True), SlotSet("greeting", "new")]
    assert "CRM unavailable" in caplog.text
