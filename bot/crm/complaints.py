"""Filing complaints: severity, the owning team, the SLA, and when to follow up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import churn, webhooks
from bot.crm.case_history import record_event
from bot.crm.models import (
    CaseEventKind,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Order,
    OutreachKind,
    Segment,
    Severity,
    Team,
    utcnow,
)
from bot.crm.queries import log_interaction
from bot.crm.sla import WALL_CLOCK, SlaRules

OPEN_STATUSES = (
    ComplaintStatus.OPEN,
    ComplaintStatus.IN_PROGRESS,
    ComplaintStatus.WAITING_ON_CUSTOMER,
    ComplaintStatus.REOPENED,
)
TOP_PRIORITY = 1  # a case whose fix did not hold comes before every other
REPEAT_WINDOW = timedelta(days=30)
FOLLOWUP_AFTER_RESOLUTION = timedelta(days=3)

TEAM_FOR = {
    ComplaintCategory.DELIVERY: Team.LOGISTICS.value,
    ComplaintCategory.BILLING: Team.BILLING.value,
    ComplaintCategory.PRODUCT_QUALITY: Team.QUALITY.value,
    ComplaintCategory.SERVICE: Team.CUSTOMER_CARE.value,
    ComplaintCategory.TECHNICAL: Team.TECH.value,
    ComplaintCategory.OTHER: Team.CUSTOMER_CARE.value,
}

# Hours until the customer hears back, by severity; valuable and growable customers are faster.
SLA_HOURS = {Severity.HIGH: 4, Severity.MEDIUM: 24, Severity.LOW: 72}
SLA_FACTOR = {Segment.MVC: 0.5, Segment.MCC: 0.75, Segment.STANDARD: 1.0, Segment.BZ: 1.0}


@dataclass(frozen=True)
class Harm:
    """What the customer's words say went wrong, beyond the category: the severity's cues."""

    damaged: bool = False  # something arrived broken, spilled, crushed
    money_lost: bool = False  # charged twice, a refund that never came
    problems: int = 1  # how many different things went wrong ("late and damaged" is two)

    def cues(self) -> list[str]:
        """The cues found, for the case's record."""
        return [
            cue
            for cue, found in (
                ("damage", self.damaged),
                ("money lost", self.money_lost),
                ("several problems", self.problems >= 2),
            )
            if found
        ]


NO_HARM = Harm()


@dataclass(frozen=True)
class Filed:
    complaint: Complaint
    repeat: bool  # a second complaint within 30 days
    escalate: bool  # offer a person right away


def severity_for(
    *,
    category: ComplaintCategory,
    angry: bool,
    repeat: bool,
    order_value: float | None,
    harm: Harm = NO_HARM,
) -> Severity:
    """Score the cues: anger counts double; a repeat, a billing matter, a big order, damage, money
    lost and several things going wrong at once count once each."""
    points = (
        2 * angry
        + repeat
        + (category is ComplaintCategory.BILLING)
        + ((order_value or 0) >= 150)
        + harm.damaged
        + harm.money_lost
        + (harm.problems >= 2)
    )
    if points >= 3:
        return Severity.HIGH
    return Severity.MEDIUM if points >= 1 else Severity.LOW


def sla_due(
    *, severity: Severity, segment: Segment, now: datetime, team: str = "", rules: SlaRules = WALL_CLOCK
) -> datetime:
    """When the customer must have heard back: severity sets the hours, the segment shortens them,
    a team that works office hours counts only those (the same count as the case's clock), and the
    time falls when someone is at work."""
    span = timedelta(hours=SLA_HOURS[severity] * SLA_FACTOR[segment])
    return rules.promise(team=team, start=now, span=span)


def recent_complaints(*, session: Session, customer_id: int, now: datetime) -> int:
    """How many complaints the customer filed in the last 30 days."""
    return int(
        session.scalar(
            select(func.count(Complaint.id)).where(
                Complaint.customer_id == customer_id, Complaint.created_at >= now - REPEAT_WINDOW
            )
        )
        or 0
    )


def open_complaints(*, session: Session, customer_id: int) -> list[Complaint]:
    """The customer's unresolved cases, oldest first."""
    return list(
        session.scalars(
            select(Complaint)
            .where(Complaint.customer_id == customer_id, Complaint.status.in_(OPEN_STATUSES))
            .order_by(Complaint.created_at)
        )
    )


def file_complaint(
    *,
    session: Session,
    customer: Customer,
    category: ComplaintCategory,
    description: str | None,
    order: Order | None,
    angry: bool,
    said_again: bool = False,
    conversation: Conversation | None = None,
    now: datetime | None = None,
    rules: SlaRules = WALL_CLOCK,
    harm: Harm = NO_HARM,
) -> Filed:
    """Create the case, route it, set its SLA, and log the business event.

    A repeat is a second complaint within 30 days, or a customer telling us it happened again.
    """
    now = now or utcnow()
    repeat = said_again or recent_complaints(session=session, customer_id=customer.id, now=now) > 0
    severity = severity_for(
        category=category,
        angry=angry,
        repeat=repeat,
        order_value=float(order.total) if order else None,
        harm=harm,
    )
    complaint = Complaint(
        customer_id=customer.id,
        conversation_id=conversation.id if conversation else None,
        order_id=order.id if order else None,
        category=category,
        severity=severity,
        team=TEAM_FOR[category],
        description=(description or "")[:4000] or None,
        status=ComplaintStatus.OPEN,
        sla_due_at=sla_due(
            severity=severity, segment=customer.segment, now=now, team=TEAM_FOR[category], rules=rules
        ),
        sla_started_at=now,
        created_at=now,
    )
    session.add(complaint)
    session.flush()
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.FILED,
        actor="customer",
        to_value=complaint.team,
        text=complaint.description,
        now=now,
    )
    escalate = severity is Severity.HIGH or customer.segment is Segment.MVC or repeat
    plan_followup(session=session, complaint=complaint, due=complaint.sla_due_at + FOLLOWUP_AFTER_RESOLUTION)
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="complaint_filed",
        intent="complain",
        data={
            "complaint_id": complaint.id,
            "severity": severity.value,
            "repeat": repeat,
            "cues": harm.cues(),
            "escalate": escalate,
        },
        now=now,
    )
    webhooks.emit(session, "complaint.opened", case_payload(customer, complaint), now=now)
    churn.refresh_customer(session=session, customer_id=customer.id, now=now)
    return Filed(complaint=complaint, repeat=repeat, escalate=escalate)


def resolve_complaint(
    *, session: Session, complaint: Complaint, resolution: str, now: datetime | None = None
) -> None:
    """Mark a case resolved and plan the revisit ("is everything fine now?")."""
    now = now or utcnow()
    complaint.status = ComplaintStatus.RESOLVED
    complaint.resolution = resolution
    complaint.resolved_at = now
    plan_followup(session=session, complaint=complaint, due=now + FOLLOWUP_AFTER_RESOLUTION)
    customer = session.get(Customer, complaint.customer_id)
    if customer is not None:
        webhooks.emit(session, "complaint.resolved", case_payload(customer, complaint), now=now)
    churn.refresh_customer(session=session, customer_id=complaint.customer_id, now=now)


def case_payload(customer: Customer, complaint: Complaint) -> dict[str, object]:
    """A case as a webhook tells it: ids and state, no description or resolution text."""
    return {
        **webhooks.customer_ref(customer),
        "complaint_id": complaint.id,
        "order_id": complaint.order_id,
        "category": complaint.category.value,
        "severity": complaint.severity.value,
        "team": complaint.team,
        "status": complaint.status.value,
        "remedy": complaint.remedy.value if complaint.remedy else None,
        "sla_due_at": webhooks.when(complaint.sla_due_at),
        "resolved_at": webhooks.when(complaint.resolved_at),
    }


def reopen_complaint(
    *,
    session: Session,
    complaint: Complaint,
    customer: Customer,
    conversation: Conversation | None = None,
    now: datetime | None = None,
    rules: SlaRules = WALL_CLOCK,
) -> None:
    """The fix did not hold: reopen to its owner at top priority, with high severity and a fresh SLA."""
    now = now or utcnow()
    was = complaint.status
    complaint.status = ComplaintStatus.REOPENED
    complaint.priority = TOP_PRIORITY
    complaint.severity = Severity.HIGH
    complaint.sla_due_at = sla_due(
        severity=Severity.HIGH, segment=customer.segment, now=now, team=complaint.team, rules=rules
    )
    complaint.sla_started_at = now
    complaint.followup_done_at = now
    complaint.resolved_at = None
    log_interaction(
        session=session,
        customer=customer,
        conversation=conversation,
        kind="complaint_reopened",
        data={"complaint_id": complaint.id},
        now=now,
    )
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.REOPENED,
        actor="customer",
        from_value=was.value,
        to_value=ComplaintStatus.REOPENED.value,
        text="The customer said the problem is not solved.",
        now=now,
    )
    session.flush()
    churn.refresh_customer(session=session, customer_id=customer.id, now=now)


def plan_followup(*, session: Session, complaint: Complaint, due: datetime) -> Delivery:
    """Queue (or move) the one revisit of this case; the scheduler sends it once it is resolved."""
    key = followup_key(complaint.id)
    delivery = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
    if delivery is None:
        delivery = Delivery(
            idempotency_key=key,
            kind=OutreachKind.COMPLAINT_FOLLOWUP,
            customer_id=complaint.customer_id,
            complaint_id=complaint.id,
            status=DeliveryStatus.QUEUED,
        )
        session.add(delivery)
    delivery.scheduled_for = due
    complaint.followup_due_at = due
    session.flush()
    return delivery


def followup_key(complaint_id: int) -> str:
    return f"complaint_followup:complaint:{complaint_id}"
