"""CSAT ratings and free feedback; a low score starts recovery."""

from __future__ import annotations

import re

from rasa_sdk.events import EventType, SlotSet

from bot.actions.base import CRMAction, Turn, latest_text
from bot.actions.checkin import the_complaint
from bot.crm.handoffs import just_ended
from bot.crm.models import ComplaintStatus, utcnow
from bot.crm.surveys import LOW_SCORE, record_comment, record_rating

WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def parse_score(value: str | None) -> int | None:
    """1–5 from "5", "five", "4/5" or "4 stars"; None for anything else (10/10 is not on our scale)."""
    text = (value or "").strip().lower()
    if text in WORDS:
        return WORDS[text]
    match = re.fullmatch(r"([1-5])(?:\s*(?:/\s*5|stars?|out of 5))?", text)
    return int(match.group(1)) if match else None


def rated_complaint(turn: Turn) -> int | None:
    """The customer's resolved case this rating is about (the revisit asks after a fix held)."""
    complaint = the_complaint(turn)
    done = (ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED)
    return complaint.id if complaint is not None and complaint.status in done else None


class ActionRecordRating(CRMAction):
    """Store the 1–5 score, about the person who just helped or the case just put right; 1–2 opens
    a recovery case that a person follows up."""

    def name(self) -> str:
        return "action_record_rating"

    def act(self, turn: Turn) -> list[EventType]:
        score = parse_score(turn.entity("rating") or turn.tracker.get_slot("rating"))
        if score is None:
            return [SlotSet("rating_band", "invalid"), SlotSet("rating", None)]
        handoff_id = just_ended(session=turn.session, conversation=turn.conversation, now=utcnow())
        rated = record_rating(
            session=turn.session,
            customer=turn.customer,
            score=score,
            conversation=turn.conversation,
            handoff_id=handoff_id,
            complaint_id=None if handoff_id else rated_complaint(turn),
        )
        band = "low" if score <= LOW_SCORE else "mid" if score == 3 else "high"
        case = rated.recovery_case
        return [
            SlotSet("rating", str(score)),
            SlotSet("rating_band", band),
            SlotSet("recovery_case", str(case.id) if case else None),
        ]


class ActionRecordFeedback(CRMAction):
    """Keep the customer's words with their latest rating (or on their own)."""

    def name(self) -> str:
        return "action_record_feedback"

    def act(self, turn: Turn) -> list[EventType]:
        text = latest_text(turn.tracker)
        if text:
            record_comment(
                session=turn.session, customer=turn.customer, comment=text, conversation=turn.conversation
            )
        return []
