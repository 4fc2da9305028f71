""" "What's happening with my complaint?": the customer's own cases, in words and in their time zone.

Only the customer's own cases are ever described: a case number typed by the customer that is not
theirs gets the same answer as a number that does not exist, so nothing about others leaks. The
action speaks for itself (a list of cases needs buttons made from the cases), through the domain's
`utter_case_*` responses.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.actions.base import CareLoopAction, Turn, context_slots, crm_session, latest_text, observe, open_turn
from bot.actions.checkin import CATEGORY_WORDS
from bot.actions.formatting import day, moment_in_zone
from bot.crm.cases import STATE_LABEL, team_label
from bot.crm.complaints import open_complaints
from bot.crm.models import Complaint, ComplaintStatus, utcnow
from bot.crm.queries import InvalidSenderId

log = logging.getLogger(__name__)

# "case 12", "complaint #12", "ticket no. 12", "#12"
CASE_NUMBER = re.compile(
    r"(?:#|\b(?:case|complaint|ticket)s?\s*(?:number|no\.?|nr\.?)?\s*#?)\s*(\d{1,9})\b", re.I
)
DONE = (ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED)
RESOLVED_WITHIN = timedelta(days=30)  # a resolution older than this is not "what's happening"
MAX_LISTED = 5
NO_RESOLUTION = "our team marked it as put right."
# The desk's state words (bot/crm/cases.py), said to the customer; waiting is on them, so say so.
STATE_FOR_CUSTOMER = {
    **STATE_LABEL,
    ComplaintStatus.OPEN: "received, and waiting for the team to pick it up",
    ComplaintStatus.WAITING_ON_CUSTOMER: "waiting for your answer to our question",
}


@dataclass
class Reply:
    """What to say: a response name, the values it is filled with, and buttons made from data."""

    kind: str
    response: str
    values: dict[str, str] = field(default_factory=dict)
    buttons: list[dict[str, str]] = field(default_factory=list)


def asked_case(turn: Turn) -> int | None:
    """The case number the customer chose with a button or typed, if any."""
    chosen = turn.chosen("complaint_id")
    if chosen is not None and chosen.isdigit():
        return int(chosen)
    match = CASE_NUMBER.search(latest_text(turn.tracker))
    return int(match.group(1)) if match else None


def own_case(*, session: Session, customer_id: int, number: int) -> Complaint | None:
    """The customer's own case with this number; someone else's case is never returned."""
    complaint = session.get(Complaint, number)
    return complaint if complaint is not None and complaint.customer_id == customer_id else None


def latest_resolved(*, session: Session, customer_id: int, now: datetime) -> Complaint | None:
    return session.scalar(
        select(Complaint)
        .where(
            Complaint.customer_id == customer_id,
            Complaint.status.in_(DONE),
            Complaint.resolved_at >= now - RESOLVED_WITHIN,
        )
        .order_by(Complaint.resolved_at.desc(), Complaint.id.desc())
        .limit(1)
    )


def describe(complaint: Complaint, *, tz: str | None, now: datetime) -> Reply:
    """One case: its resolution when resolved, else its state, team and promised time."""
    values = {"case_ref": str(complaint.id), "case_topic": CATEGORY_WORDS[complaint.category.value]}
    if complaint.status in DONE:
        resolved = complaint.resolved_at or now
        values |= {"case_due": day(resolved, tz), "case_resolution": complaint.resolution or NO_RESOLUTION}
        return Reply("resolved", "utter_case_resolved", values)
    values |= {
        "case_state": STATE_FOR_CUSTOMER[complaint.status],
        "case_team": team_label(complaint.team),
        "case_due": moment_in_zone(complaint.sla_due_at, tz),
    }
    if now >= complaint.sla_due_at:
        return Reply("overdue", "utter_case_overdue", values)
    return Reply("open", "utter_case_open", values)


def choices(cases: list[Complaint]) -> list[dict[str, str]]:
    """A button per open case (the newest first); its payload asks about that case."""
    return [
        {
            "title": f"#{c.id} {CATEGORY_WORDS[c.category.value]} ({STATE_LABEL[c.status]})",
            "payload": f'/case_status{{"complaint_id": "{c.id}"}}',
        }
        for c in sorted(cases, key=lambda c: (c.created_at, c.id), reverse=True)[:MAX_LISTED]
    ]


def answer_for(turn: Turn, now: datetime) -> Reply:
    """What to tell the customer about their cases."""
    customer, tz = turn.customer, turn.customer.timezone
    number = asked_case(turn)
    if number is not None:
        complaint = own_case(session=turn.session, customer_id=customer.id, number=number)
        if complaint is None:  # not theirs or not there: the same words either way
            return Reply("unknown", "utter_case_unknown", {"case_ref": str(number)})
        return describe(complaint, tz=tz, now=now)
    cases = open_complaints(session=turn.session, customer_id=customer.id)
    if len(cases) == 1:
        return describe(cases[0], tz=tz, now=now)
    if cases:
        return Reply("several", "utter_case_several", {"case_count": str(len(cases))}, choices(cases))
    resolved = latest_resolved(session=turn.session, customer_id=customer.id, now=now)
    return describe(resolved, tz=tz, now=now) if resolved else Reply("none", "utter_case_none")


class Answering(Protocol):
    def name(self) -> str: ...

    def _answer(self, tracker: Tracker) -> tuple[Reply, list[EventType]]: ...


async def speak(
    action: Answering,
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    trouble: Reply,
    *,
    unknown_sender_is_trouble: bool,
) -> list[EventType]:
    """Say the action's one reply, worked out in the CRM (in a worker thread); `trouble` when the CRM
    cannot be reached (system_trouble set) or the sender is not a customer's."""
    try:
        reply, events = await asyncio.to_thread(action._answer, tracker)
    except InvalidSenderId:
        log.warning("%s: sender id %r is not <channel>:<id>", action.name(), tracker.sender_id)
        reply, events = trouble, [SlotSet("system_trouble", True)] if unknown_sender_is_trouble else []
    except SQLAlchemyError:
        log.exception("%s: CRM unavailable for sender %s", action.name(), tracker.sender_id)
        reply, events = trouble, [SlotSet("system_trouble", True)]
    dispatcher.utter_message(response=reply.response, buttons=reply.buttons or None, **reply.values)
    return events


class ActionCaseStatus(CareLoopAction):
    """Tell the customer where their own case stands: state, team and promised time, or the resolution."""

    def name(self) -> str:
        return "action_case_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        trouble = Reply("none", "utter_case_trouble")
        return await speak(self, dispatcher, tracker, trouble, unknown_sender_is_trouble=True)

    def _answer(self, tracker: Tracker) -> tuple[Reply, list[EventType]]:
        with crm_session() as session:
            turn = open_turn(session, tracker)
            observe(turn)
            reply = answer_for(turn, utcnow())
            return reply, [*context_slots(turn), SlotSet("case_answer", reply.kind)]


def answer_acknowledged(turn: Turn) -> Reply:
    """What to say to an answer the gateway put on a case: its number, team and real promised time."""
    number = turn.entity("complaint_id")
    complaint = (
        own_case(session=turn.session, customer_id=turn.customer.id, number=int(number))
        if number is not None and number.isdigit()
        else None
    )
    if complaint is None or complaint.status in DONE:
        return Reply("noted", "utter_case_answer_noted")
    values = {
        "case_ref": str(complaint.id),
        "case_team": team_label(complaint.team),
        "case_due": moment_in_zone(complaint.sla_due_at, turn.customer.timezone),
    }
    return Reply("added", "utter_case_answer_added", values)


class ActionAcknowledgeCaseAnswer(CareLoopAction):
    """Thank the customer for answering the team's question: it is on the case, which team has it and
    by when they will hear back (the case's SLA due time, in the customer's zone, named)."""

    def name(self) -> str:
        return "action_acknowledge_case_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        # The gateway stored the answer on the case before Rasa saw it: only the details can be missing.
        trouble = Reply("noted", "utter_case_answer_noted")
        return await speak(self, dispatcher, tracker, trouble, unknown_sender_is_trouble=False)

    def _answer(self, tracker: Tracker) -> tuple[Reply, list[EventType]]:
        with crm_session() as session:
            turn = open_turn(session, tracker)
            return answer_acknowledged(turn), context_slots(turn)
