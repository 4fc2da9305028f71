"""Known web visitors: a shop vouches for its logged-in customer with an HMAC of their external id.

The shop's server computes `user_hash = HMAC-SHA256(external_id, WIDGET_IDENTITY_SECRET)` and the
widget sends both with its hello; the gateway checks the hash in constant time and attaches the
visitor's web identity (and its conversation) to the CRM customer with that `external_id`, so the
actions, which find a customer through the channel identity, see that customer's orders, membership
and cases. A visitor who chatted anonymously and then logs in keeps the conversation: its identity
and conversation move to the known customer. The anonymous customer row stays behind, without
identities (its consents and anything an action recorded while the visitor was anonymous stay on
it). A web identity already attached to another known customer is never moved: a valid hash for
customer B does not hand B the chat of customer A who used the same browser before.

A visitor without a hash becomes the shop's customer another way: by confirming, through the link
mailed to it, an email address the shop gave for exactly one of its customers (`join_by_confirmed_email`).
An address typed in chat proves nothing until its link is opened, so it never joins anybody."""

from __future__ import annotations

import enum
import hashlib
import hmac
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm.models import Customer
from bot.crm.queries import find_identity, record_audit
from bot.crm.transcript import link_identity

MAX_USER_ID = 64  # Customer.external_id's length
HASH_LENGTH = 64  # hex digits of a SHA-256 HMAC


class Outcome(enum.Enum):
    """What became of a visitor's claim to be a shop customer (the value is what the log says)."""

    LINKED = "linked"
    ALREADY = "already"
    MISSING = "missing"
    MALFORMED = "malformed"
    FORGED = "forged"
    UNKNOWN_CUSTOMER = "unknown_customer"
    ANOTHER_CUSTOMER = "another_customer"

    @property
    def known(self) -> bool:
        return self in (Outcome.LINKED, Outcome.ALREADY)


def user_hash(secret: str, external_id: str) -> str:
    """The hash a shop's server sends with its customer's external id (hex HMAC-SHA256)."""
    return hmac.new(secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()


def check_claim(secret: str, external_id: object, claimed_hash: object) -> Outcome | None:
    """None if the hash proves `external_id`; else why not (missing, malformed or forged)."""
    if claimed_hash is None or claimed_hash == "":
        return Outcome.MISSING
    if not isinstance(external_id, str) or not isinstance(claimed_hash, str):
        return Outcome.MALFORMED
    if not 0 < len(external_id) <= MAX_USER_ID or not external_id.isprintable():
        return Outcome.MALFORMED
    if len(claimed_hash) != HASH_LENGTH:
        return Outcome.FORGED
    expected = user_hash(secret, external_id)
    if not hmac.compare_digest(expected.encode(), claimed_hash.lower().encode("utf-8", "replace")):
        return Outcome.FORGED
    return None


def attach_web_visitor(*, session: Session, sender_id: str, external_id: str) -> tuple[Outcome, int | None]:
    """Attach the web identity `sender_id` to the customer with the shop id `external_id` (already
    verified); return the outcome and that customer's id."""
    customer_id = session.scalar(select(Customer.id).where(Customer.external_id == external_id))
    if customer_id is None:
        return Outcome.UNKNOWN_CUSTOMER, None
    identity = find_identity(session=session, sender_id=sender_id)
    if identity is not None and identity.customer_id == customer_id:
        return Outcome.ALREADY, customer_id
    if identity is not None and identity.customer.external_id is not None:
        return Outcome.ANOTHER_CUSTOMER, identity.customer_id
    link_identity(session=session, sender_id=sender_id, customer_id=customer_id)
    return Outcome.LINKED, customer_id


def join_by_confirmed_email(*, session: Session, customer: Customer, now: datetime) -> int | None:
    """Attach a chat customer who just confirmed their email address to the shop's customer with
    that address: their channel identities and conversations move there, and the shop's copy of the
    address counts as confirmed. Return the shop customer's id; None (nothing moved) when the
    address is unconfirmed, the chat customer is a shop customer already, or the shop has no
    customer, or more than one, with that address."""
    if customer.external_id is not None or customer.email_verified_at is None or not customer.email:
        return None
    found = list(
        session.scalars(
            select(Customer)
            .where(
                func.lower(Customer.email) == customer.email.lower(),
                Customer.external_id.is_not(None),
                Customer.erased_at.is_(None),
                Customer.id != customer.id,
            )
            .limit(2)
        )
    )
    if len(found) != 1:
        return None
    shop_customer = found[0]
    for identity in list(customer.identities):
        link_identity(
            session=session,
            sender_id=f"{identity.channel.value}:{identity.external_id}",
            customer_id=shop_customer.id,
        )
    if shop_customer.email_verified_at is None:
        shop_customer.email_verified_at = now  # the person chatting opened a link sent to it
    record_audit(
        session=session,
        actor="customer",
        action="joined_by_confirmed_email",
        entity="customer",
        entity_id=shop_customer.id,
        details={"chat_customer_id": customer.id},
    )
    return shop_customer.id
