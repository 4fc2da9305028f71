"""Feedback that reaches someone: customers' own words (free feedback, comments on a rating, the
answer of a customer who left), each a worked item with a theme, an owner and a state, and the
history of who did what to it (bot/crm/feedback.py fills and works them)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow


class FeedbackSource(str, enum.Enum):
    """Where the customer's words came from."""

    FEEDBACK = "feedback"  # given on its own (give_feedback)
    RATING_COMMENT = "rating_comment"  # added to a 1–5 rating
    EXIT_ANSWER = "exit_answer"  # a leaving customer's answer to the exit question


class FeedbackState(str, enum.Enum):
    """An item's lifecycle: read by nobody yet, being looked into, dealt with."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class FeedbackTheme(str, enum.Enum):
    """What the words are about, as the text analysis reads them (bot/nlp/analysis.py)."""

    DELIVERY = "delivery"
    BILLING = "billing"
    PRODUCT_QUALITY = "product_quality"
    SERVICE = "service"
    TECHNICAL = "technical"
    PRICE = "price"
    COMPETITOR = "competitor"
    NO_LONGER_NEEDED = "no_longer_needed"
    MOVING = "moving"
    OTHER = "other"


class FeedbackEventKind(str, enum.Enum):
    FILED = "filed"
    STATE = "state"
    OWNER = "owner"
    TOLD = "told"  # the customer was sent what we changed


class FeedbackItem(Base):
    """One piece of feedback on the Feedback page.

    `version` counts every change (SQLAlchemy refuses an UPDATE of a row changed since it was
    read), and a console form carries the version it was shown with: a stale form is refused.
    `theme` is None only for rows the migration copied, until the page reads them."""

    __tablename__ = "feedback_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="SET NULL"))
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("survey.id", ondelete="SET NULL"), unique=True)
    retention_attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("retention_attempt.id", ondelete="SET NULL")
    )
    source: Mapped[FeedbackSource] = mapped_column(enum_column(FeedbackSource))
    text: Mapped[str] = mapped_column(Text)
    score: Mapped[int | None] = mapped_column(Integer)  # the rating the words came with
    theme: Mapped[FeedbackTheme | None] = mapped_column(enum_column(FeedbackTheme), index=True)
    product: Mapped[str | None] = mapped_column(String(120))  # from the catalogue, as analysed
    competitor: Mapped[str | None] = mapped_column(String(60))
    state: Mapped[FeedbackState] = mapped_column(enum_column(FeedbackState), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"), index=True)
    customer_told_at: Mapped[datetime | None]
    customer_told_by: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class FeedbackEvent(Base):
    """One line of an item's history: who did what, when, from which value to which."""

    __tablename__ = "feedback_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("feedback_item.id", ondelete="CASCADE"), index=True)
    kind: Mapped[FeedbackEventKind] = mapped_column(enum_column(FeedbackEventKind))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    from_value: Mapped[str | None] = mapped_column(String(60))
    to_value: Mapped[str | None] = mapped_column(String(60))
    text: Mapped[str | None] = mapped_column(Text)  # the message sent to the customer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
