"""Handing the conversation to a person: live when someone is at work, otherwise a callback case.

Live: the handoff is queued with a priority, the customer hears the expected wait, and
`action_pause_for_agent` (run after the bot's last words) pauses the bot; the gateway routes the
customer's messages to the agent until the agent hands back. Outside business hours or with nobody
online the bot says so honestly, files a callback case with a promised time, and keeps helping.
The promised time is the handoff's stored due time (bot/crm/handoffs.py), counted in opening hours
and stated in the customer's time zone with the zone named, so the chat and the queue agree.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.base import CRMAction, Turn, current_settings, latest_intent
from bot.actions.contact import parse_contact
from bot.crm.handoffs import (
    agents_online,
    callback_promise,
    callback_route,
    callback_words,
    complaint_severity,
    expected_wait_minutes,
    given_contact,
    handle_minutes,
    open_handoff,
    queue_position,
    record_given_contact,
)
from bot.crm.models import HANDOFF_CALLBACK, HANDOFF_LIVE, ConversationStatus, utcnow

# How the callback reaches the customer (bot/crm/handoffs.py: channel, email, phone or chat), for
# utter_handoff to say so.
CALLBACK_ROUTE_SLOT = "callback_route"
# Set when a guest with no known way back gets a callback: callback_form asks before the promise.
CALLBACK_ASK_SLOT = "callback_ask"
CHAT = "chat"
# What the bot gathered that a person needs first, in the words the queue shows: a complaint's
# category, order and description (kept when a form is left for a person) and a reason for leaving.
FACTS = {
    "complaint_category": "Complaint about",
    "complaint_order": "Order",
    "complaint_description": "What happened",
    "leave_reason": "Reason for leaving",
    "exit_answer": "What we could have done better",
}
MAX_FACT = 300  # characters of one fact: the transcript beside it has the rest
REASON_AFTER = {
    "utter_complaint_filed": "complaint",
    "utter_offer_human": "complaint",
    "utter_exit_thanks": "retention",
    "utter_clarify": "fallback",
    "utter_rating_thanks": "low_csat",
    "utter_case_reopened": "complaint",
    "utter_win_back": "retention",
}


def gathered_facts(tracker: Tracker) -> dict[str, str]:
    """The facts the conversation has gathered so far, labelled, each cut to MAX_FACT characters."""
    facts = {}
    for slot, label in FACTS.items():
        value = tracker.get_slot(slot)
        if value not in (None, "", "-"):
            text = " ".join(str(value).split())
            facts[label] = text if len(text) <= MAX_FACT else text[: MAX_FACT - 1] + "…"
    return facts


def bot_actions(turn: Turn) -> list[str]:
    """The bot's actions so far, oldest first (listening left out)."""
    return [
        e.get("name")
        for e in turn.tracker.events
        if e.get("event") == "action" and e.get("name") != "action_listen"
    ]


def may_ask_first(turn: Turn) -> bool:
    """Whether the rules let callback_form ask how to reach the customer before the promise: after a
    request for a person or a yes to the person offered (data/rules/handoff.yml, forms.yml). Other
    paths to a person (a win-back, a valuable customer's person before cancelling) promise at once."""
    intent, _ = latest_intent(turn.tracker)
    if intent == "request_human":
        return True
    done = bot_actions(turn)
    return intent == "affirm" and bool(done) and done[-1] == "utter_offer_human"


def reason_for(turn: Turn) -> str:
    """Why a person is needed, from what the bot said last."""
    for name in reversed(bot_actions(turn)[-3:]):
        if name in REASON_AFTER:
            return REASON_AFTER[name]
    intent, _ = latest_intent(turn.tracker)
    return "customer_request" if intent == "request_human" else "other"


class ActionHandoff(CRMAction):
    """Queue the conversation for a person with a reason and a priority; tell the customer what happens."""

    def name(self) -> str:
        return "action_handoff"

    def act(self, turn: Turn) -> list[EventType]:
        settings, now = current_settings(), utcnow()
        hours = settings.opening_hours()
        is_open = hours.is_open(now)
        online = agents_online(
            session=turn.session, now=now, within_seconds=settings.console_agent_online_seconds
        )
        live = is_open and online > 0
        callback_by = None if live else callback_promise(hours=hours, now=now)
        handoff, created = open_handoff(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            reason=reason_for(turn),
            severity=complaint_severity(session=turn.session, conversation=turn.conversation),
            mode=HANDOFF_LIVE if live else HANDOFF_CALLBACK,
            callback_by=callback_by,
            now=now,
            facts=gathered_facts(turn.tracker),
        )
        ahead = queue_position(session=turn.session, handoff=handoff)
        events: list[EventType] = [SlotSet("offer_human", False), SlotSet("queue_ahead", str(ahead))]
        if handoff.mode == HANDOFF_LIVE:
            wait = expected_wait_minutes(
                ahead=ahead, online=max(online, 1), handle=handle_minutes(session=turn.session, now=now)
            )
            state = "queued" if created else "already"
            events += [SlotSet("handoff_state", state), SlotSet("wait_minutes", str(wait))]
            if turn.tracker.get_slot(CALLBACK_ASK_SLOT):
                events.append(SlotSet(CALLBACK_ASK_SLOT, None))
            return events
        # The stored due time, which the queue shows: the promise and the queue cannot disagree.
        promise = callback_words(
            due=handoff.callback_by or callback_promise(hours=hours, now=now),
            customer_zone=turn.customer.timezone,
            business_zone=settings.business_timezone,
        )
        state = "callback_closed" if not is_open else "callback_busy"
        given = given_contact(session=turn.session, handoff_id=handoff.id)
        route = (
            given[0] if given else callback_route(customer=turn.customer, channel=turn.conversation.channel)
        )
        events += [
            SlotSet("handoff_state", state),
            SlotSet("callback_when", promise),
            SlotSet(CALLBACK_ROUTE_SLOT, route),
        ]
        # No way back but this chat, and none given yet: ask before promising (callback_form).
        if route == CHAT and given is None and may_ask_first(turn):
            events.append(SlotSet(CALLBACK_ASK_SLOT, True))
        elif turn.tracker.get_slot(CALLBACK_ASK_SLOT):
            events.append(SlotSet(CALLBACK_ASK_SLOT, None))
        return events


class ValidateCallbackForm(FormValidationAction):
    """Take an email address or a phone number (the contact form's own check), or "this chat";
    anything else is asked again once with an example, and a second miss keeps the answer in this
    chat, so nobody is held in the question."""

    def name(self) -> str:
        return "validate_callback_form"

    def validate_callback_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value == CHAT:
            return {"callback_contact": CHAT, "callback_hint": None}
        parsed = parse_contact(str(value or ""))
        if parsed is not None:
            return {"callback_contact": parsed[1], "callback_hint": None}
        if tracker.get_slot("callback_hint") == "invalid":
            return {"callback_contact": CHAT, "callback_hint": None}
        return {"callback_contact": None, "callback_hint": "invalid"}


class ActionSetCallbackRoute(CRMAction):
    """Note on the callback how the guest asked to be reached (what the queue shows), so that the
    promise that follows names it."""

    def name(self) -> str:
        return "action_set_callback_route"

    def act(self, turn: Turn) -> list[EventType]:
        parsed = parse_contact(turn.tracker.get_slot("callback_contact") or "") or (CHAT, CHAT)
        # "This chat" is noted too, so that asking for a person again does not ask again.
        noted = record_given_contact(
            session=turn.session, conversation=turn.conversation, kind=parsed[0], value=parsed[1]
        )
        route = parsed[0] if noted else CHAT
        return [
            SlotSet(CALLBACK_ROUTE_SLOT, route),
            SlotSet(CALLBACK_ASK_SLOT, None),
            SlotSet("callback_contact", None),
            SlotSet("callback_hint", None),
        ]

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet(CALLBACK_ASK_SLOT, None), SlotSet("callback_contact", None)]


class ActionPauseForAgent(CRMAction):
    """After the bot's last words: silence it while a person has the conversation (live handoffs only)."""

    def name(self) -> str:
        return "action_pause_for_agent"

    def act(self, turn: Turn) -> list[EventType]:
        # A callback promised without asking how to reach them (a path with no callback question)
        # answers in this chat: the question is no longer pending.
        reset = [SlotSet(CALLBACK_ASK_SLOT, None)] if turn.tracker.get_slot(CALLBACK_ASK_SLOT) else []
        if turn.conversation.status is ConversationStatus.HANDED_OFF:
            return [*reset, ConversationPaused()]
        return reset
