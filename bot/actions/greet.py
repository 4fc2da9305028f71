"""The personal greeting: known customers by name, strangers welcomed and remembered."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from bot.actions.base import CareLoopAction, crm_session, latest_intent
from bot.crm.queries import InvalidSenderId, ensure_conversation, get_or_create_customer, log_interaction

log = logging.getLogger(__name__)


class ActionGreet(CareLoopAction):
    """Look the sender up in the CRM (creating them on first contact) and set the greeting slots."""

    def name(self) -> str:
        return "action_greet"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        metadata = tracker.get_slot("session_started_metadata") or {}
        intent, confidence = latest_intent(tracker)
        try:
            with crm_session() as session:
                customer, created = get_or_create_customer(
                    session=session,
                    sender_id=tracker.sender_id,
                    first_name=_clean_name(metadata.get("first_name")),
                    last_name=_clean_name(metadata.get("last_name")),
                    language=metadata.get("language"),
                )
                conversation = ensure_conversation(
                    session=session, sender_id=tracker.sender_id, customer=customer
                )
                log_interaction(
                    session=session,
                    customer=customer,
                    conversation=conversation,
                    kind="greet",
                    intent=intent,
                    confidence=confidence,
                    data={"new_customer": created},
                )
                customer_id, name, segment = customer.id, customer.first_name, customer.segment.value
        except InvalidSenderId:
            log.warning("greeting a sender with a malformed id; not recorded in the CRM")
            return [SlotSet("greeting", "new")]
        except SQLAlchemyError:
            log.exception("CRM unavailable while greeting sender %s", tracker.sender_id)
            return [SlotSet("greeting", "new")]
        if created:
            greeting = "new_named" if name else "new"
        else:
            greeting = "known" if name else "known_unnamed"
        return [
            SlotSet("customer_id", float(customer_id)),
            SlotSet("customer_name", name),
            SlotSet("segment", segment),
            SlotSet("greeting", greeting),
        ]


def _clean_name(value: object) -> str | None:
    """A display name from channel metadata, trimmed to something safe to store and show."""
    if not isinstance(value, str):
        return None
    name = "".join(ch for ch in value.strip() if ch.isprintable())[:80]
    return name or None
