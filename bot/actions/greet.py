"""The personal greeting: known customers by name, strangers welcomed and remembered."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

from bot.actions.base import CRMAction, Turn, latest_intent
from bot.crm.queries import log_interaction


def is_first_contact(turn: Turn) -> bool:
    """New to us: created now, or created by the gateway for this very message (it says so)."""
    metadata = turn.tracker.latest_message.get("metadata") or {}
    return turn.created or metadata.get("first_contact") is True


class ActionGreet(CRMAction):
    """Look the sender up in the CRM (creating them on first contact) and choose the greeting."""

    def name(self) -> str:
        return "action_greet"

    def act(self, turn: Turn) -> list[EventType]:
        customer = turn.customer
        intent, confidence = latest_intent(turn.tracker)
        log_interaction(
            session=turn.session,
            customer=customer,
            conversation=turn.conversation,
            kind="greet",
            intent=intent,
            confidence=confidence,
            data={"new_customer": turn.created},
        )
        if is_first_contact(turn):
            greeting = "new_named" if customer.first_name else "new"
        else:
            greeting = "known" if customer.first_name else "known_unnamed"
        return [SlotSet("greeting", greeting)]

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("greeting", "new")]
