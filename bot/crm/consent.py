"""Consent changes: immediate, confirmed, stored with time and source, and audited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import webhooks
from bot.crm.models import Consent, ConsentPurpose, Conversation, Customer, utcnow
from bot.crm.queries import log_interaction, record_audit


def set_consent(
    *,
    session: Session,
    customer: Customer,
    purpose: ConsentPurpose,
    granted: bool,
    source: str,
    conversation: Conversation | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the customer's choice; return whether it changed anything."""
    now = now or utcnow()
    consent = session.scalar(
        select(Consent).where(Consent.customer_id == customer.id, Consent.purpose == purpose)
    )
    changed = consent is None or consent.granted != granted
    if consent is None:
        consent = Consent(
            customer_id=customer.id, purpose=purpose, granted=granted, source=source, changed_at=now
        )
        session.add(consent)
    elif changed:
        consent.granted, consent.source, consent.changed_at = granted, source, now
    if changed:
        record_audit(
            session=session,
            actor="customer",
            action="consent_granted" if granted else "consent_withdrawn",
            entity="customer",
            entity_id=customer.id,
            details={"purpose": purpose.value, "source": source},
        )
        changed_to = {
            **webhooks.customer_ref(customer),
            "purpose": purpose.value,
            "granted": granted,
            "source": source,
            "changed_at": webhooks.when(now),
        }
        webhooks.emit(session, "consent.changed", changed_to, now=now)
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="consent_change",
        intent="opt_in" if granted else "opt_out",
        data={"purpose": purpose.value, "granted": granted, "changed": changed},
        now=now,
    )
    session.flush()
    return changed
