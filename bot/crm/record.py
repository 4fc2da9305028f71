"""A customer's whole record as an agent sees it beside a chat: profile and postal address (with its
changes from the audit log), value and temperament, orders, complaints, retention history, consent,
earlier conversations and handoffs, notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm.addresses import BY_CODE, PostalAddress, address_of
from bot.crm.labels import label
from bot.crm.models import (
    Agent,
    AgentNote,
    AuditLog,
    ChannelIdentity,
    Complaint,
    ComplaintStatus,
    Consent,
    Conversation,
    Customer,
    Handoff,
    Order,
    RetentionAttempt,
    Subscription,
    Survey,
)
from bot.crm.segments import RULE_WORDS, Since, segment_since

RECENT = 10
# Audit actions that may hold an address change: the customer's own (in chat, with the old address)
# and the shop's (through the inbound API: the fields it changed, not their old values).
ADDRESS_AUDIT_ACTIONS = ("address_changed", "api_created", "api_updated")
OPEN_COMPLAINTS = (
    ComplaintStatus.OPEN,
    ComplaintStatus.IN_PROGRESS,
    ComplaintStatus.WAITING_ON_CUSTOMER,
    ComplaintStatus.REOPENED,
)


@dataclass(frozen=True)
class Row:
    """One line of a record section: a title and its details, all plain text."""

    title: str
    detail: str = ""
    at: datetime | None = None


@dataclass
class CustomerRecord:
    customer_id: int
    name: str
    profile: list[tuple[str, str]]
    segment: str
    temperament: str
    churn_risk: str
    tags: list[str]
    segment_story: str = ""  # "since 12 March 2026; was MCC (spend rising)"
    churn_reasons: list[Row] = field(default_factory=list)  # strongest first, with their weights
    churn_scored: bool = False  # False: never computed yet (a new customer before the next refresh)
    consent: list[Row] = field(default_factory=list)
    channels: list[Row] = field(default_factory=list)
    orders: list[Row] = field(default_factory=list)
    order_count: int = 0
    subscriptions: list[Row] = field(default_factory=list)
    open_complaints: list[Row] = field(default_factory=list)
    past_complaints: list[Row] = field(default_factory=list)
    retention: list[Row] = field(default_factory=list)
    surveys: list[Row] = field(default_factory=list)
    conversations: list[Row] = field(default_factory=list)
    handoffs: list[Row] = field(default_factory=list)
    notes: list[Row] = field(default_factory=list)
    address_history: list[Row] = field(default_factory=list)  # newest first


def customer_record(
    *, session: Session, customer_id: int, conversation_id: int | None = None, handoff_id: int | None = None
) -> CustomerRecord:
    """The customer's record beside a chat: `conversation_id` and `handoff_id` are the current ones,
    left out of "other conversations" and "earlier handoffs"."""
    customer = session.get_one(Customer, customer_id)
    record = CustomerRecord(
        customer_id=customer.id,
        name=customer.display_name,
        profile=_profile(customer),
        segment=customer.segment.value,
        temperament=customer.temperament.value,
        churn_risk=f"{customer.churn_risk:.0%}" if customer.churn_scored_at else "not computed yet",
        tags=list(customer.tags or []),
        segment_story=segment_story(segment_since(session=session, customer_id=customer.id)),
        churn_reasons=[
            Row(str(r.get("text", "")), f"weight {float(r.get('weight', 0)):.2f}")
            for r in customer.churn_reasons or []
        ],
        churn_scored=customer.churn_scored_at is not None,
    )
    record.consent = [
        Row(label(c.purpose), f"{'yes' if c.granted else 'no'} ({c.source})", c.changed_at)
        for c in session.scalars(
            select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.purpose)
        )
    ]
    record.channels = [
        Row(
            i.sender_id,
            "reachable" if i.reachable else f"unreachable: {i.unreachable_reason or ''}",
            i.last_seen_at,
        )
        for i in session.scalars(select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id))
    ]
    record.address_history = address_history(session=session, customer_id=customer.id)
    _commerce(session, record)
    _care(session, record)
    _conversations(session, record, conversation_id, handoff_id)
    return record


def segment_story(since: Since) -> str:
    """Since when the customer is in their segment, what they were before, and why they moved."""
    if since.since is None:
        return ""
    day = f"{since.since.day} {since.since:%B %Y}"
    before = f"was {since.was.value}" if since.was else "first computed then"
    return f"since {day}; {before} ({RULE_WORDS.get(since.rule or '', since.rule)})"


def address_history(*, session: Session, customer_id: int) -> list[Row]:
    """The customer's address changes, newest first: who changed it, when, and what it was before."""
    entries = session.scalars(
        select(AuditLog)
        .where(
            AuditLog.entity == "customer",
            AuditLog.entity_id == customer_id,
            AuditLog.action.in_(ADDRESS_AUDIT_ACTIONS),
        )
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
    )
    rows = [_address_change(entry) for entry in entries]
    return [row for row in rows if row is not None][:RECENT]


def _address_change(entry: AuditLog) -> Row | None:
    """One audit entry as an address change, or None when it changed something else."""
    details = entry.details or {}
    if entry.action == "address_changed":
        source = str(details.get("source") or "")
        by = f"Changed by the customer in chat on {label(source, 'Channel')}" if source else "Changed in chat"
        old = details.get("old")
        return Row(by, f"before: {_address_words(old)}" if old else "no address before", entry.created_at)
    if "address" not in (details.get("fields") or []):
        return None
    if entry.action == "api_created":
        return Row(f"Set by the shop ({entry.actor})", "when it sent us the account", entry.created_at)
    # The shop's own systems keep the old value; the API records which fields it changed.
    return Row(f"Changed by the shop ({entry.actor})", "previous address not recorded here", entry.created_at)


def _address_words(old: object) -> str:
    """An address kept in the audit log, on one line as the bot says it; as stored if it is odd."""
    if not isinstance(old, dict):
        return str(old)
    try:
        address = PostalAddress(
            str(old["line1"]),
            old.get("line2"),
            str(old["postal_code"]),
            str(old["city"]),
            str(old["country"]),
        )
    except KeyError:
        return ", ".join(str(value) for value in old.values() if value)
    if address.country not in BY_CODE:
        return ", ".join(p for p in (address.line1, address.line2, address.postal_code, address.city) if p)
    return address.one_line()


def _profile(customer: Customer) -> list[tuple[str, str]]:
    address = address_of(customer)
    fields = [
        ("Email", customer.email),
        ("Phone", customer.phone),
        ("Address", address.one_line() if address else None),
        ("Language", customer.language),
        ("Time zone", customer.timezone),
        ("Birthday", customer.birthday.isoformat() if customer.birthday else None),
        ("Customer since", customer.created_at.date().isoformat()),
        (
            "Last contact",
            customer.last_contact_at.strftime("%Y-%m-%d %H:%M") if customer.last_contact_at else None,
        ),
    ]
    return [(name, value) for name, value in fields if value]


def _commerce(session: Session, record: CustomerRecord) -> None:
    customer_id = record.customer_id
    record.order_count = (
        session.scalar(select(func.count(Order.id)).where(Order.customer_id == customer_id)) or 0
    )
    orders = session.scalars(
        select(Order).where(Order.customer_id == customer_id).order_by(Order.placed_at.desc()).limit(RECENT)
    )
    record.orders = [Row(o.number, f"{label(o.status)}, €{_money(o.total)}", o.placed_at) for o in orders]
    subscriptions = session.scalars(select(Subscription).where(Subscription.customer_id == customer_id))
    record.subscriptions = [
        Row(s.product.name, f"{label(s.status)}, €{_money(s.monthly_price)}/month", s.started_at)
        for s in subscriptions
    ]


def _care(session: Session, record: CustomerRecord) -> None:
    customer_id = record.customer_id
    complaints = list(
        session.scalars(
            select(Complaint)
            .where(Complaint.customer_id == customer_id)
            .order_by(Complaint.created_at.desc())
        )
    )
    for complaint in complaints:
        row = Row(
            f"#{complaint.id} {label(complaint.category)} ({label(complaint.severity)})",
            f"{label(complaint.status)}, team {complaint.team}"
            + (f": {complaint.resolution}" if complaint.resolution else ""),
            complaint.created_at,
        )
        (record.open_complaints if complaint.status in OPEN_COMPLAINTS else record.past_complaints).append(
            row
        )
    record.past_complaints = record.past_complaints[:RECENT]
    attempts = session.scalars(
        select(RetentionAttempt)
        .where(RetentionAttempt.customer_id == customer_id)
        .order_by(RetentionAttempt.created_at.desc())
        .limit(RECENT)
    )
    record.retention = [
        Row(
            f"{label(a.reason) if a.reason else 'no reason given'}",
            f"{a.offer.title if a.offer else 'no offer'}: {label(a.outcome)}",
            a.created_at,
        )
        for a in attempts
    ]
    surveys = session.scalars(
        select(Survey).where(Survey.customer_id == customer_id).order_by(Survey.created_at.desc()).limit(5)
    )
    record.surveys = [
        Row(f"CSAT {s.score}/5" if s.score else "comment", s.comment or "", s.created_at) for s in surveys
    ]


def _conversations(
    session: Session, record: CustomerRecord, conversation_id: int | None, handoff_id: int | None
) -> None:
    customer_id = record.customer_id
    conversations = session.scalars(
        select(Conversation)
        .where(Conversation.customer_id == customer_id, Conversation.id != (conversation_id or -1))
        .order_by(Conversation.last_message_at.desc())
        .limit(RECENT)
    )
    record.conversations = [
        Row(c.sender_id, label(c.status), c.last_message_at or c.started_at) for c in conversations
    ]
    handoffs = session.execute(
        select(Handoff, Agent.display_name)
        .outerjoin(Agent, Agent.id == Handoff.agent_id)
        .where(Handoff.customer_id == customer_id, Handoff.id != (handoff_id or -1))
        .order_by(Handoff.requested_at.desc())
        .limit(RECENT)
    ).all()
    record.handoffs = [
        Row(
            f"{label(h.reason, 'handoff_reason')} ({label(h.mode, 'handoff_mode')}): {label(h.status)}",
            ", ".join(p for p in (agent, h.resolution) if p),
            h.requested_at,
        )
        for h, agent in handoffs
    ]
    notes = session.execute(
        select(AgentNote, Agent.display_name)
        .outerjoin(Agent, Agent.id == AgentNote.agent_id)
        .where(AgentNote.customer_id == customer_id)
        .order_by(AgentNote.created_at.desc(), AgentNote.id.desc())
        .limit(20)
    ).all()
    record.notes = [Row(note.text, agent or "", note.created_at) for note, agent in notes]


def _money(value: Decimal) -> str:
    return f"{value:.2f}"
