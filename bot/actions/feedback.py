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

# "I'd like to give you some feedback" offers feedback without giving any: thanking for it would be
# thanking for nothing. A message is only an offer when every word is one of these (a short topic
# after "about", "on" or "of" does not count as the feedback itself).
OFFER_NOUNS = frozenset(
    "feedback review reviews opinion opinions thoughts suggestion suggestions comment comments "
    "compliment compliments rate rating input remark remarks testimonial".split()
)
OFFER_FILLER = frozenset(
    """i id im ive me my mine we our us you your u ya yall guys team careloop bean club bot chat
    want wanna wanted would like love could can may might how do does did where is are there any way
    here just please pls plz hi hello hey hiya ok okay so well actually also quick quickly short
    bit little few couple small some an a the of to it this that something what kind
    give leave share send submit provide write post make offer have got get tell let say know pass
    drop add put fill out in with for regarding an honest real genuine formal official star stars
    experience service purchase
    where's what's how's i'd i'm i've you're""".split()
)
TOPIC_WORDS = frozenset({"about", "on", "regarding", "concerning", "re", "of", "for"})
MAX_TOPIC_WORDS = 4


def parse_score(value: str | None) -> int | None:
    """1–5 from "5", "five", "4/5" or "4 stars"; None for anything else (10/10 is not on our scale)."""
    text = (value or "").strip().lower()
    if text in WORDS:
        return WORDS[text]
    match = re.fullmatch(r"([1-5])(?:\s*(?:/\s*5|stars?|out of 5))?", text)
    return int(match.group(1)) if match else None


def only_offers_feedback(text: str) -> bool:
    """True when the message says the customer wants to give feedback but not what it is."""
    if re.search(r"[:\u2013\u2014-]\s*\w", text or ""):
        return False  # "feedback: the app is slow" says it after the colon
    words = re.findall(r"[a-z']+", (text or "").lower().replace("\u2019", "'"))
    words = [word.strip("'") for word in words if word.strip("'")]
    if not words:
        return True  # a button or an empty message: nothing has been said yet
    first_noun = next((at for at, word in enumerate(words) if word in OFFER_NOUNS), len(words))
    for at in range(first_noun + 1, len(words)):
        if words[at] in TOPIC_WORDS and len(words) - at - 1 <= MAX_TOPIC_WORDS:
            words = words[:at]
            break
    return any(w in OFFER_NOUNS for w in words) and all(w in OFFER_NOUNS or w in OFFER_FILLER for w in words)


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
    """Keep the customer's words with their latest rating (or on their own); when they have only
    offered feedback, record nothing and let the rules ask for it."""

    def name(self) -> str:
        return "action_record_feedback"

    def act(self, turn: Turn) -> list[EventType]:
        asked = turn.tracker.get_slot("feedback_text")
        text = asked or latest_text(turn.tracker)
        if not asked and only_offers_feedback(text):
            return [SlotSet("feedback_state", "awaited")]
        record_comment(
            session=turn.session, customer=turn.customer, comment=text, conversation=turn.conversation
        )
        return [SlotSet("feedback_state", "recorded"), SlotSet("feedback_text", None)]
