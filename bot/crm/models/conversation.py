"""Conversations, their transcript, and the business events actions log along the way."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Float, ForeignKey, Index, SQLColumnExpression, String, Text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, enum_column, utcnow
from .enums import Author, Channel, ConversationStatus, Direction, InboundStatus, OutboundStatus


class Conversation(Base):
    """One Rasa conversation (sender id `<channel>:<id>`) with one customer."""

    __tablename__ = "conversation"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(160), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    channel: Mapped[Channel] = mapped_column(enum_column(Channel))
    status: Mapped[ConversationStatus] = mapped_column(
        enum_column(ConversationStatus), default=ConversationStatus.BOT
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column(index=True)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", order_by="Message.id"
    )


class Message(Base):
    """One line of the transcript, inbound or outbound, with its status in its own lifecycle.

    Both lifecycles share the `delivery_status` column (the stored values are unchanged); the
    message's direction says which enum reads it back."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_status_direction", "delivery_status", "direction"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[Direction] = mapped_column(enum_column(Direction))
    author: Mapped[Author] = mapped_column(enum_column(Author))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # buttons, images, custom data
    external_id: Mapped[str | None] = mapped_column(String(64))  # the channel's own message id
    _status: Mapped[str] = mapped_column("delivery_status", String(24))
    error: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]

    conversation: Mapped[Conversation] = relationship(back_populates="messages")

    @hybrid_property
    def delivery_status(self) -> InboundStatus | OutboundStatus:
        """Where the message is: an inbound one in InboundStatus, an outbound one in OutboundStatus."""
        lifecycle = InboundStatus if self.direction is Direction.INBOUND else OutboundStatus
        return lifecycle(self._status)

    @delivery_status.inplace.setter
    def _set_delivery_status(self, value: InboundStatus | OutboundStatus) -> None:
        if value not in STORED_STATES:  # refused here with its name, not later by a reader
            raise ValueError(f"{value!r} is not a message state")
        self._status = str(value)

    @delivery_status.inplace.expression
    @classmethod
    def _delivery_status_column(cls) -> SQLColumnExpression[InboundStatus | OutboundStatus]:
        # In SQL the column holds the value, which compares equal to either lifecycle's member.
        return cast("SQLColumnExpression[InboundStatus | OutboundStatus]", cls._status)


STORED_STATES = frozenset(state.value for state in (*InboundStatus, *OutboundStatus))


class InteractionEvent(Base):
    """A business event an action logged: an intent understood, a greeting, a consent change, …"""

    __tablename__ = "interaction_event"
    __table_args__ = (Index("ix_interaction_event_kind_created_at", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    intent: Mapped[str | None] = mapped_column(String(60))
    confidence: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
