"""Handing the conversation to a person: live when someone is at work, otherwise a callback case.

Live: the handoff is queued with a priority, the customer hears the expected wait, and
`action_pause_for_agent` (run after the bot's last words) pauses the bot; the gateway routes the
customer's messages to the agent until the agent hands back. Outside business hours or with nobody
online the bot says so honestly, files a callback case with a promised time, and keeps helping.
The promised time is the handoff's stored due time (bot/crm/handoffs.py), counted in opening hours
and stated in the customer's time zone with the zone named, so the chat and the queue agree.
"""

from __future__ import annotations

from rasa_sdk.events import ConversationPaused, EventType, SlotSet

from bot.actions.base import CRMAction, Turn, current_settings, latest_intent
from bot.crm.handoffs import (
    agents_online,
    callback_promise,
    callback_route,
    callback_words,
    complaint_severity,
    expected_wait_minutes,
    handle_minutes,
    open_handoff,
    queue_position,
)
from bot.crm.models import HANDOFF_CALLBACK, HANDOFF_LIVE, ConversationStatus, utcnow

# How the callback reaches the customer (bot/crm/handoffs.py: channel, email, phone or chat), for
# utter_handoff to say so; set once the domain declares the slot.
CALLBACK_ROUTE_SLOT = "callback_route"
REASON_AFTER = {
    "utter_complaint_filed": "complaint",
    "utter_offer_human": "complaint",
    "utter_exit_thanks": "retention",
    "utter_clarify": "fallback",
    "utter_rating_thanks": "low_csat",
    "utter_case_reopened": "complaint",
    "utter_win_back": "retention",
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
    """Queue the conversation for a person with a reason and a priority; tell the customer what happens."""

    def name(self) -> str:
        return "action_handoff"

    def act(self, turn: Turn) -> list[EventType]:
        settings, now = current_settings(), utcnow()
        hours = settings.opening_hours()
        is_open = hours.is_open(now)
        online = agents_online(session=turn.session, now=now, within_seconds=settings.agent_online_seconds)
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
        )
        ahead = queue_position(session=turn.session, handoff=handoff)
        events: list[EventType] = [SlotSet("offer_human", False), SlotSet("queue_ahead", str(ahead))]
        if handoff.mode == HANDOFF_LIVE:
            wait = expected_wait_minutes(
                ahead=ahead, online=max(online, 1), handle=handle_minutes(session=turn.session, now=now)
            )
            state = "queued" if created else "already"
            return [*events, SlotSet("handoff_state", state), SlotSet("wait_minutes", str(wait))]
        # The stored due time, which the queue shows: the promise and the queue cannot disagree.
        promise = callback_words(
            due=handoff.callback_by or callback_promise(hours=hours, now=now),
            customer_zone=turn.customer.timezone,
            business_zone=settings.business_timezone,
        )
        state = "callback_closed" if not is_open else "callback_busy"
        events += [SlotSet("handoff_state", state), SlotSet("callback_when", promise)]
        if CALLBACK_ROUTE_SLOT in turn.tracker.slots:  # the tracker carries only the domain's slots
            route = callback_route(customer=turn.customer, channel=turn.conversation.channel)
            events.append(SlotSet(CALLBACK_ROUTE_SLOT, route))
        return events


class ActionPauseForAgent(CRMAction):
    """After the bot's last words: silence it while a person has the conversation (live handoffs only)."""

    def name(self) -> str:
        return "action_pause_for_agent"

    def act(self, turn: Turn) -> list[EventType]:
        if turn.conversation.status is ConversationStatus.HANDED_OFF:
            return [ConversationPaused()]
        return []
