"""Low confidence: ask with the likely intent as a button; a second miss in a row offers a person.

An irritable customer is offered a person at the first miss: the bot could not help, and making
them rephrase again costs more goodwill than a person's time.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.base import CareLoopAction

CLARIFIABLE = {
    "complain",
    "check_order_status",
    "request_refund",
    "cancel_subscription",
    "update_contact_details",
    "opt_out",
}
IGNORED = {"nlu_fallback", "out_of_scope", "greet", "goodbye", "thank", "affirm", "deny"}


def user_intents(tracker: Tracker) -> list[str]:
    return [
        str((e.get("parse_data") or {}).get("intent", {}).get("name"))
        for e in tracker.events
        if e.get("event") == "user"
    ]


def likely_intent(tracker: Tracker) -> str:
    """The best-ranked real intent of the latest message, as one of the clarify options."""
    ranking: list[dict[str, Any]] = tracker.latest_message.get("intent_ranking") or []
    for candidate in ranking:
        name = candidate.get("name")
        if name not in IGNORED:
            return name if name in CLARIFIABLE else "other"
    return "other"


class ActionClarify(CareLoopAction):
    """Choose the clarifying question; no CRM work, so it answers even when the CRM is down."""

    def name(self) -> str:
        return "action_clarify"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intents = user_intents(tracker)
        missed_twice = len(intents) >= 2 and intents[-1] == intents[-2] == "nlu_fallback"
        impatient = tracker.get_slot("temperament") == "irritable" and intents[-1:] == ["nlu_fallback"]
        return [SlotSet("clarify_top", "handoff" if missed_twice or impatient else likely_intent(tracker))]
