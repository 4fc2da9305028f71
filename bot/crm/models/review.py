"""Learning from live chats: customer messages the bot misread or was unsure about, and what an
admin decided each one meant (bot/crm/nlu_review.py fills and exports them)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow


class ReviewReason(str, enum.Enum):
    """Why a message is up for review (a message can have several)."""

    FALLBACK = "fallback"  # nlu_fallback, or the dialogue fell back (action_default_fallback)
    LOW_CONFIDENCE = "low_confidence"  # understood, but below NLU_REVIEW_CONFIDENCE
    BEFORE_HANDOFF = "before_handoff"  # the customer's next message asked for a person


REASON_LABELS = {
    ReviewReason.FALLBACK: "not understood",
    ReviewReason.LOW_CONFIDENCE: "unsure",
    ReviewReason.BEFORE_HANDOFF: "then asked for a person",
}


class ReviewDecision(str, enum.Enum):
    """What an admin decided about a message; only confirmed and corrected ones are exported."""

    CONFIRMED = "confirmed"  # the bot's reading was right
    CORRECTED = "corrected"  # another intent was right
    LEFT_OUT = "left_out"  # not fit for training (several requests at once, only personal data, …)


DECISION_LABELS = {
    ReviewDecision.CONFIRMED: "confirmed",
    ReviewDecision.CORRECTED: "corrected",
    ReviewDecision.LEFT_OUT: "left out",
}


class NluReview(Base):
    """One customer message up for review: Rasa's reading of it, then the admin's decision.

    The words stay in the transcript (`message.text`), never copied here, so erasing a customer
    also empties what this page shows and what a later export could write."""

    __tablename__ = "nlu_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), unique=True)
    reasons: Mapped[str] = mapped_column(String(80))  # ReviewReason values, comma separated
    intent: Mapped[str | None] = mapped_column(String(80))  # the classifier's best real intent
    confidence: Mapped[float | None] = mapped_column(Float)
    ranking: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{intent, confidence}]
    votes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # each classifier's own top intent
    read_at: Mapped[datetime] = mapped_column(default=utcnow)  # when Rasa read the message
    decision: Mapped[ReviewDecision | None] = mapped_column(enum_column(ReviewDecision), index=True)
    chosen_intent: Mapped[str | None] = mapped_column(String(80))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None]
    exported_at: Mapped[datetime | None]
    export_file: Mapped[str | None] = mapped_column(String(80))  # e.g. review-2026-12-04-1.yml


class NluReviewState(Base):
    """One row: how far Rasa's tracker store has been read. Updating it first serialises the
    readers and the exports of several console workers and gateways."""

    __tablename__ = "nlu_review_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    tracker_event_id: Mapped[int] = mapped_column(default=0)
    scanned_at: Mapped[datetime | None]
