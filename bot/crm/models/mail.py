"""Email: the outbox of every mail to a customer, and the confirmation of an address given in chat."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow


class MailStatus(str, enum.Enum):
    QUEUED = "queued"  # waiting for its time (or a retry)
    SENDING = "sending"  # claimed by one gateway; a claim older than a few minutes is taken over
    SENT = "sent"  # the SMTP server accepted it, or it was written to the local mailbox
    FAILED = "failed"  # refused for good, or still failing after every retry
    SKIPPED = "skipped"  # the policy gate said no (unconfirmed address, erased, no longer needed)


class MailPurpose(str, enum.Enum):
    """Why a mail is sent; the policy gate reads what each purpose needs (scheduler/policy.py)."""

    VERIFY_ADDRESS = "verify_address"  # the only mail an unconfirmed address ever gets
    ADDRESS_CONFIRMED = "address_confirmed"  # to the address just confirmed
    ADDRESS_REPLACED = "address_replaced"  # to the previous confirmed address: it is no longer used
    PHONE_CHANGED = "phone_changed"
    DELIVERY_ADDRESS_CHANGED = "delivery_address_changed"  # to the confirmed address: was it you?
    REFUND_CONFIRMATION = "refund_confirmation"  # with the return instructions
    CANCELLATION_CONFIRMATION = "cancellation_confirmation"
    CASE_RESOLVED = "case_resolved"  # not asked for at that moment: held in quiet hours


class OutboundMail(Base):
    """One mail to one address; the idempotency key makes queueing and sending it exactly-once."""

    __tablename__ = "outbound_mail"
    __table_args__ = (Index("ix_outbound_mail_status_send_after", "status", "send_after"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    verification_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_verification.id", ondelete="CASCADE")
    )
    purpose: Mapped[MailPurpose] = mapped_column(enum_column(MailPurpose, length=32))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # a verification link is added when sending, never stored
    status: Mapped[MailStatus] = mapped_column(enum_column(MailStatus), default=MailStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    skip_reason: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(String(300))
    transport: Mapped[str | None] = mapped_column(String(16))  # smtp | mailbox
    message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    send_after: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class EmailVerification(Base):
    """An address a customer gave in chat, waiting for them to open the link mailed to it.

    Only a hash of the link's token is stored; the token itself is derived from SECRET_KEY and
    the row's nonce when the mail is sent (bot/crm/mail.py), so the database alone opens nothing."""

    __tablename__ = "email_verification"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(254))
    nonce: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]  # a newer address was asked for before this one was confirmed
