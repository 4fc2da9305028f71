"""Handing the conversation to a person (the agent console completes the other side)."""

from __future__ import annotations

from rasa_sdk.events import EventType, SlotSet

from bot.actions.base import CRMAction, Turn, latest_intent
from bot.crm.handoffs import open_handoff, queue_position

REASON_AFTER = {
    "utter_complaint_filed": "complaint",
    "utter_offer_human": "complaint",
    "utter_exit_thanks": "retention",
    "utter_clarify": "fallback",
    "utter_rating_thanks": "low_csat",
}


def reason_for(turn: Turn) -> str:
    """Why a person is needed, from what the bot said last."""
    bot_actions = [
        e.get("name")
        for e in turn.tracker.events
        if e.get("event") == "action" and e.get("name") != "action_listen"
    ]
    for name in reversed(bot_actions[-3:]):
        if name in REASON_AFTER:
            return REASON_AFTER[name]
    intent, _ = latest_intent(turn.tracker)
    return "customer_request" if intent == "request_human" else "other"


class ActionHandoff(CRMAction):
    """Queue the conversation for a person with a reason and a priority; tell the customer the wait."""

    def name(self) -> str:
        return "action_handoff"

    def act(self, turn: Turn) -> list[EventType]:
        handoff, created = open_handoff(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            reason=reason_for(turn),
        )
        return [
            SlotSet("handoff_state", "queued" if created else "already"),
            SlotSet("queue_ahead", str(queue_position(session=turn.session, handoff=handoff))),
            SlotSet("offer_human", False),
        ]
