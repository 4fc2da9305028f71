"""Mail to customers: what each mail says, the outbox row that sends it once, and the confirmation
of an address given in chat.

Mails are queued in the same transaction as the change they confirm (a refund, a cancellation), so
a mail exists exactly when its reason does; the gateway's outbox sends it (bot/gateway/mailer.py)
behind the policy gate (scheduler/policy.py `decide_mail`). Only a confirmed address gets mail,
with one exception: the confirmation mail itself, which names no one and says nothing about the
customer, so that a mistyped address learns nothing.

A confirmation link's token is HMAC(SECRET_KEY, nonce): the row keeps the nonce and a SHA-256 of
the token, and the stored mail keeps a placeholder that the sender fills in. Neither a copy of the
database nor the console's Outbox page can confirm an address on a customer's behalf.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.crm import identity
from bot.crm.db import rows_changed
from bot.crm.models import (
    Customer,
    EmailVerification,
    MailPurpose,
    MailStatus,
    Order,
    OutboundMail,
    Refund,
    utcnow,
)
from bot.crm.queries import record_audit
from bot.crm.zones import zone_named

VERIFY_FOR = timedelta(hours=24)
# Links asked for per customer per day: the chat must not become a way to mail strangers.
LINKS_PER_DAY = 3
LINK_PLACEHOLDER = "[confirmation link]"
SIGNATURE = "\n\nBest wishes,\nCareLoop customer care"


class MailState(str, enum.Enum):
    """What the bot may say about a mail it wanted to send (the `email_state` slot)."""

    SENT = "sent"  # queued to the customer's confirmed address
    UNVERIFIED = "unverified"  # a link to confirm an address is out: nothing else goes there
    NONE = "none"  # no confirmed address, and no link waiting


def verified_email(customer: Customer) -> str | None:
    """The address the customer confirmed, or None."""
    if customer.erased_at is not None or not customer.email or customer.email_verified_at is None:
        return None
    return customer.email


def mask(address: str) -> str:
    """`a•••@example.com`: enough for the customer to recognise, not enough to read it out."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def state_without_mail(*, session: Session, customer: Customer, now: datetime) -> MailState:
    """Why no mail could be queued: a confirmation link is out, or there is no confirmed address."""
    pending = session.scalar(
        select(EmailVerification.id).where(
            EmailVerification.customer_id == customer.id,
            EmailVerification.confirmed_at.is_(None),
            EmailVerification.revoked_at.is_(None),
            EmailVerification.expires_at > now,
        )
    )
    return MailState.UNVERIFIED if pending is not None else MailState.NONE


def queue_mail(
    *,
    session: Session,
    customer: Customer,
    purpose: MailPurpose,
    key: str,
    subject: str,
    body: str,
    to: str,
    verification: EmailVerification | None = None,
    now: datetime | None = None,
) -> OutboundMail:
    """Put a mail in the outbox once: the same key returns the row queued before."""
    earlier = session.scalar(select(OutboundMail).where(OutboundMail.idempotency_key == key))
    if earlier is not None:
        return earlier
    now = now or utcnow()
    mail = OutboundMail(
        idempotency_key=key,
        customer_id=customer.id,
        verification_id=verification.id if verification else None,
        purpose=purpose,
        to_address=to,
        subject=subject[:200],
        body=body + SIGNATURE,
        status=MailStatus.QUEUED,
        attempts=0,
        created_at=now,
        send_after=now,
    )
    session.add(mail)
    session.flush()
    return mail


def queue_for_customer(
    *,
    session: Session,
    customer: Customer,
    purpose: MailPurpose,
    key: str,
    subject: str,
    body: str,
    now: datetime | None = None,
) -> MailState:
    """Queue a mail to the customer's confirmed address; say why not when there is none."""
    now = now or utcnow()
    address = verified_email(customer)
    if address is None:
        return state_without_mail(session=session, customer=customer, now=now)
    queue_mail(
        session=session,
        customer=customer,
        purpose=purpose,
        key=key,
        subject=subject,
        body=body,
        to=address,
        now=now,
    )
    return MailState.SENT


def greeting(customer: Customer) -> str:
    return f"Hello {customer.first_name}," if customer.first_name else "Hello,"


def queue_refund_confirmation(
    *, session: Session, customer: Customer, refund: Refund, order: Order, returns_address: str
) -> MailState:
    """The approved refund, with how to send the items back."""
    body = (
        f"{greeting(customer)}\n\n"
        f"your refund #{refund.id} of EUR {refund.amount:.2f} for order {order.number} is approved. "
        "The money goes back to your original payment method within 5-7 working days.\n\n"
        "How to send the items back:\n"
        f"1. Pack the items of order {order.number}.\n"
        f'2. Write "Refund #{refund.id}, order {order.number}" on the parcel.\n'
        f"3. Send it to:\n   {returns_address}"
    )
    return queue_for_customer(
        session=session,
        customer=customer,
        purpose=MailPurpose.REFUND_CONFIRMATION,
        key=f"refund:{refund.id}",
        subject=f"Your refund #{refund.id} for order {order.number}",
        body=body,
    )


def queue_cancellation_confirmation(
    *, session: Session, customer: Customer, plan: str | None, now: datetime, ends_at: datetime | None = None
) -> MailState:
    """The cancellation request, in writing: when it takes effect, and how to change their mind."""
    what = f"your {plan} membership" if plan else "your membership"
    on = f", on {_local_day(ends_at, customer.timezone)}" if ends_at is not None else ""
    body = (
        f"{greeting(customer)}\n\n"
        f"we have recorded your request to cancel {what}. It takes effect at the end of your current "
        f"billing month{on}; until then everything carries on as usual.\n\n"
        "If you change your mind, just write to us in the chat - your history stays with us."
    )
    return queue_for_customer(
        session=session,
        customer=customer,
        purpose=MailPurpose.CANCELLATION_CONFIRMATION,
        key=f"cancellation:customer:{customer.id}:{now.date().isoformat()}",
        subject="Your cancellation request",
        body=body,
        now=now,
    )


def _local_day(moment: datetime, tz: str | None) -> str:
    return moment.astimezone(zone_named(tz)).strftime("%A %-d %B %Y")


def queue_phone_changed(*, session: Session, customer: Customer, now: datetime) -> MailState:
    """Tell the customer, at their confirmed address, that their phone number was changed in chat."""
    body = (
        f"{greeting(customer)}\n\n"
        f"the phone number on your CareLoop account was changed in our chat to {customer.phone}.\n\n"
        "If that was not you, please tell us in the chat or reply to this mail."
    )
    return queue_for_customer(
        session=session,
        customer=customer,
        purpose=MailPurpose.PHONE_CHANGED,
        key=f"phone_changed:customer:{customer.id}:{now.isoformat(timespec='seconds')}",
        subject="Your phone number was changed",
        body=body,
        now=now,
    )


def queue_delivery_address_changed(
    *, session: Session, customer: Customer, address: str, now: datetime
) -> MailState:
    """Tell the customer, at their confirmed address, that their delivery address was changed in chat:
    a changed delivery address is how a stranger with the chat would divert parcels."""
    body = (
        f"{greeting(customer)}\n\n"
        f"the delivery address on your CareLoop account was changed in our chat to:\n{address}\n\n"
        "If that was not you, please tell us in the chat or reply to this mail."
    )
    return queue_for_customer(
        session=session,
        customer=customer,
        purpose=MailPurpose.DELIVERY_ADDRESS_CHANGED,
        key=f"delivery_address_changed:customer:{customer.id}:{now.isoformat(timespec='seconds')}",
        subject="Your delivery address was changed",
        body=body,
        now=now,
    )


def queue_case_resolved(
    *,
    session: Session,
    customer: Customer,
    case_id: int,
    resolution: str,
    event_id: int | None = None,
    now: datetime | None = None,
) -> MailState:
    """Tell the customer their case is resolved, and what was done (held in their quiet hours);
    once per resolution (`event_id`: the history line of this resolution)."""
    body = (
        f"{greeting(customer)}\n\n"
        f"your case #{case_id} is resolved: {resolution}\n\n"
        "If anything is still not right, just write to us in the chat and we will pick it up again."
    )
    return queue_for_customer(
        session=session,
        customer=customer,
        purpose=MailPurpose.CASE_RESOLVED,
        key=case_resolved_key(case_id, event_id),
        subject=f"Your case #{case_id} is resolved",
        body=body,
        now=now,
    )


def case_resolved_key(case_id: int, event_id: int | None) -> str:
    return f"case_resolved:{case_id}" + (f":resolved:{event_id}" if event_id is not None else "")


# Confirming an address given in chat.


def token_for(secret_key: str, nonce: str) -> str:
    """The link's token for a verification row (derived, never stored)."""
    return hmac.new(
        secret_key.encode(), f"careloop email verification {nonce}".encode(), "sha256"
    ).hexdigest()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def links_today(*, session: Session, customer_id: int, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(EmailVerification.id)).where(
                EmailVerification.customer_id == customer_id,
                EmailVerification.created_at > now - timedelta(days=1),
            )
        )
        or 0
    )


def start_verification(
    *, session: Session, customer: Customer, address: str, secret_key: str, now: datetime | None = None
) -> EmailVerification | None:
    """Ask the customer to confirm `address`: earlier unconfirmed requests stop working, and the
    one mail an unconfirmed address may get is queued. The customer's email stays as it was.
    None, and nothing sent, once the customer asked for LINKS_PER_DAY links in a day."""
    now = now or utcnow()
    if links_today(session=session, customer_id=customer.id, now=now) >= LINKS_PER_DAY:
        return None
    session.execute(
        update(EmailVerification)
        .where(
            EmailVerification.customer_id == customer.id,
            EmailVerification.confirmed_at.is_(None),
            EmailVerification.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    nonce = secrets.token_hex(16)
    verification = EmailVerification(
        customer_id=customer.id,
        address=address,
        nonce=nonce,
        token_hash=hash_token(token_for(secret_key, nonce)),
        created_at=now,
        expires_at=now + VERIFY_FOR,
    )
    session.add(verification)
    session.flush()
    queue_mail(
        session=session,
        customer=customer,
        purpose=MailPurpose.VERIFY_ADDRESS,
        key=f"verify:{verification.id}",
        subject="Please confirm your email address",
        # Nothing here may say who asked or anything about them: the address may be mistyped.
        body=(
            "Hello,\n\n"
            "someone asked the CareLoop shop's chat to send mail to this address. If that was you, "
            f"open this link within 24 hours to confirm it:\n\n{LINK_PLACEHOLDER}\n\n"
            "If it was not you, ignore this mail: nothing else will be sent to this address."
        ),
        to=address,
        verification=verification,
        now=now,
    )
    return verification


def fill_link(body: str, *, secret_key: str, public_url: str, nonce: str) -> str:
    """The verification mail's body with its link, made at the moment of sending."""
    link = f"{public_url.rstrip('/')}/verify-email?token={token_for(secret_key, nonce)}"
    return body.replace(LINK_PLACEHOLDER, link)


class Confirmation(str, enum.Enum):
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    USED = "used"  # already confirmed, or replaced by a newer request
    UNKNOWN = "unknown"


def look_up(*, session: Session, token: str, now: datetime) -> tuple[Confirmation, EmailVerification | None]:
    """What a link's token stands for, without changing anything."""
    if not token or len(token) > 128:
        return Confirmation.UNKNOWN, None
    verification = session.scalar(
        select(EmailVerification).where(EmailVerification.token_hash == hash_token(token))
    )
    if verification is None:
        return Confirmation.UNKNOWN, None
    if verification.confirmed_at is not None or verification.revoked_at is not None:
        return Confirmation.USED, verification
    if verification.expires_at <= now:
        return Confirmation.EXPIRED, verification
    return Confirmation.CONFIRMED, verification


def confirm_address(*, session: Session, token: str, now: datetime | None = None) -> Confirmation:
    """Confirm the address behind a link once: it becomes the customer's email, the old confirmed
    address is told it is no longer used, and the change is audited."""
    now = now or utcnow()
    state, verification = look_up(session=session, token=token, now=now)
    if state is not Confirmation.CONFIRMED or verification is None:
        return state
    claimed = session.execute(
        update(EmailVerification)
        .where(EmailVerification.id == verification.id, EmailVerification.confirmed_at.is_(None))
        .values(confirmed_at=now)
        .execution_options(synchronize_session=False)
    )
    if rows_changed(claimed) != 1:  # a second click at the same moment
        return Confirmation.USED
    customer = session.get_one(Customer, verification.customer_id)
    previous = verified_email(customer)
    customer.email, customer.email_verified_at = verification.address, now
    record_audit(
        session=session,
        actor="customer",
        action="email_confirmed",
        entity="customer",
        entity_id=customer.id,
        details={"verification_id": verification.id, "replaced_a_confirmed_address": previous is not None},
    )
    queue_mail(
        session=session,
        customer=customer,
        purpose=MailPurpose.ADDRESS_CONFIRMED,
        key=f"address_confirmed:{verification.id}",
        subject="Your email address is confirmed",
        body=f"{greeting(customer)}\n\nthis address is now the one we use for your CareLoop account.",
        to=verification.address,
        now=now,
    )
    if previous is not None and previous != verification.address:
        queue_mail(
            session=session,
            customer=customer,
            purpose=MailPurpose.ADDRESS_REPLACED,
            key=f"address_replaced:{verification.id}",
            subject="Your email address was changed",
            body=(
                f"{greeting(customer)}\n\nyour CareLoop account now uses {mask(verification.address)}; "
                "we will not send mail to this address any more.\n\n"
                "If that was not you, please tell us in the chat or reply to this mail."
            ),
            to=previous,
            now=now,
        )
    # Proof of the address is proof of being the shop's customer who has it (bot/crm/identity.py).
    identity.join_by_confirmed_email(session=session, customer=customer, now=now)
    return Confirmation.CONFIRMED
