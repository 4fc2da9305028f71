"""The case desk's demo: teams for the demo logins, and a dozen recent cases in every state, a few
at risk and a few breached, with their history, so that the Cases page shows its work on first run.
A breached case has had its honest update already (its promise moved once, the customer told), so
the scheduler's first walk of the SLA clock (at its start) escalates it to the team's lead, and
warns the owner or team of each case at risk: the console shows notices from the first minute.

Built after the rest of the demo, on customers the personas leave alone, from a random stream of
its own: the rest of the demo stays as it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.case_history import record_event
from bot.crm.cases import late_key, question_key, queue_case_update, resolution_key
from bot.crm.complaints import TEAM_FOR, TOP_PRIORITY, plan_followup
from bot.crm.models import (
    Agent,
    AgentTeam,
    CaseAlert,
    CaseEventKind,
    Channel,
    ChannelIdentity,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    Order,
    Remedy,
    Severity,
    Team,
)
from bot.crm.sla import alert_key

S, C = ComplaintStatus, ComplaintCategory
TEAMS_OF = {  # demo username: teams
    "agent": (Team.LOGISTICS, Team.QUALITY),
    "agent2": (Team.BILLING, Team.CUSTOMER_CARE, Team.TECH),
    "lead": (Team.LOGISTICS, Team.BILLING),
}
AT_RISK, BREACHED, ON_TIME = "at_risk", "breached", "on_time"


@dataclass(frozen=True)
class DemoCase:
    category: ComplaintCategory
    state: ComplaintStatus
    owner: str | None  # demo username
    clock: str
    words: str


CASES = (
    DemoCase(C.DELIVERY, S.OPEN, None, BREACHED, "My parcel is a week late and tracking has not moved."),
    DemoCase(C.DELIVERY, S.OPEN, None, AT_RISK, "The box arrived soaked and the beans are ruined."),
    DemoCase(C.BILLING, S.OPEN, None, ON_TIME, "I was charged for two months at once."),
    DemoCase(C.PRODUCT_QUALITY, S.IN_PROGRESS, "agent", AT_RISK, "The grinder stopped working after a week."),
    DemoCase(C.TECHNICAL, S.IN_PROGRESS, "agent2", BREACHED, "The app crashes when I open my orders."),
    DemoCase(C.BILLING, S.IN_PROGRESS, "lead", ON_TIME, "My discount code was not applied."),
    DemoCase(C.DELIVERY, S.WAITING_ON_CUSTOMER, "agent", ON_TIME, "One bag was missing from my order."),
    DemoCase(C.SERVICE, S.WAITING_ON_CUSTOMER, "agent2", AT_RISK, "Nobody called me back as promised."),
    DemoCase(C.DELIVERY, S.REOPENED, "agent", ON_TIME, "The replacement was crushed too."),
    DemoCase(C.PRODUCT_QUALITY, S.RESOLVED, "agent", ON_TIME, "The milk frother leaks."),
    DemoCase(C.BILLING, S.RESOLVED, "agent2", ON_TIME, "I was charged after cancelling."),
    DemoCase(C.TECHNICAL, S.CLOSED, "agent2", ON_TIME, "I could not reset my password."),
)


def add_demo_cases(*, session: Session, rng: random.Random, now: datetime, spare: frozenset[str]) -> None:
    """Put the demo logins in teams and file CASES on customers outside `spare`, with history."""
    agents = {a.username: a for a in session.scalars(select(Agent))}
    for username, teams in TEAMS_OF.items():
        for team in teams:
            session.add(AgentTeam(agent_id=agents[username].id, team=team))
    candidates = list(
        session.execute(
            select(Customer.id, ChannelIdentity.external_id)
            .join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
            .where(ChannelIdentity.channel == Channel.WEB)
            .order_by(Customer.id)
        ).tuples()
    )
    free = [cid for cid, external in candidates if external not in spare]
    chosen = rng.sample(free, min(len(CASES), len(free)))  # a small demo (tests) gets fewer cases
    for number, (case, customer_id) in enumerate(zip(CASES, chosen, strict=False)):
        owner = agents[case.owner] if case.owner else None
        _file(session, case, customer_id, owner, now - timedelta(minutes=7 * number))


def _file(session: Session, case: DemoCase, customer_id: int, owner: Agent | None, now: datetime) -> None:
    hours = {ON_TIME: 24, AT_RISK: 24, BREACHED: 24}[case.clock]
    used = {ON_TIME: 0.25, AT_RISK: 0.85, BREACHED: 1.25}[case.clock]
    created = now - timedelta(hours=hours * used)
    order = session.scalar(
        select(Order).where(Order.customer_id == customer_id).order_by(Order.placed_at.desc()).limit(1)
    )
    complaint = Complaint(
        customer_id=customer_id,
        order_id=order.id if order and case.category is not C.TECHNICAL else None,
        category=case.category,
        severity=Severity.HIGH if case.state is S.REOPENED else Severity.MEDIUM,
        team=TEAM_FOR[case.category],
        description=case.words,
        status=S.OPEN,
        sla_due_at=created + timedelta(hours=hours),
        sla_started_at=created,
        created_at=created,
    )
    session.add(complaint)
    session.flush()
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.FILED,
        actor="customer",
        to_value=complaint.team,
        text=case.words,
        now=created,
    )
    if case.clock == BREACHED:
        _promise_moved(session, complaint, created)
    if owner is None:
        return
    step = created + timedelta(hours=hours * used * 0.2)
    actor = f"agent:{owner.id}"
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.OWNER,
        actor=actor,
        agent_id=owner.id,
        to_value=str(owner.id),
        now=step,
    )
    _move(session, complaint, S.IN_PROGRESS, actor, owner.id, step)
    complaint.owner_id, complaint.first_response_at = owner.id, step
    if case.state is S.WAITING_ON_CUSTOMER:
        _ask(session, complaint, owner, step + timedelta(minutes=20))
    elif case.state in (S.RESOLVED, S.REOPENED, S.CLOSED):
        _resolve(session, complaint, owner, case.state, step + timedelta(hours=1), now)


def _move(
    session: Session,
    complaint: Complaint,
    to: ComplaintStatus,
    actor: str,
    agent_id: int | None,
    at: datetime,
) -> None:
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.STATE,
        actor=actor,
        agent_id=agent_id,
        from_value=complaint.status.value,
        to_value=to.value,
        now=at,
    )
    complaint.status = to


def _ask(session: Session, complaint: Complaint, owner: Agent, at: datetime) -> None:
    question = "Could you send us a photo, please?"
    _move(session, complaint, S.WAITING_ON_CUSTOMER, f"agent:{owner.id}", owner.id, at)
    event = record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.QUESTION,
        actor=f"agent:{owner.id}",
        agent_id=owner.id,
        text=question,
        now=at,
    )
    key = question_key(complaint.id, event.id)
    queue_case_update(session=session, complaint=complaint, key=key, text=question, now=at)
    _sent(session, key, at)


def _resolve(
    session: Session, complaint: Complaint, owner: Agent, state: ComplaintStatus, at: datetime, now: datetime
) -> None:
    text = "We found the cause and fixed it; sorry for the trouble."
    _move(session, complaint, S.RESOLVED, f"agent:{owner.id}", owner.id, at)
    complaint.resolution, complaint.resolved_at = text, at
    complaint.remedy = Remedy.REPLACEMENT if complaint.order_id else Remedy.NONE
    event = record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.RESOLVED,
        actor=f"agent:{owner.id}",
        agent_id=owner.id,
        to_value=complaint.remedy.value,
        text=text,
        now=at,
    )
    key = resolution_key(complaint.id, event.id)
    queue_case_update(session=session, complaint=complaint, key=key, text=text, now=at)
    _sent(session, key, at)
    # The revisit: still to come for a resolved case; answered for a reopened or closed one.
    answered = at + timedelta(minutes=30)
    plan_followup(session=session, complaint=complaint, due=now + timedelta(days=3))
    if state is S.RESOLVED:
        return
    complaint.followup_done_at = answered
    if state is S.CLOSED:
        _move(session, complaint, S.CLOSED, "customer", None, answered)
        complaint.customer_told = True
        return
    _move(session, complaint, S.REOPENED, "customer", None, answered)
    complaint.priority, complaint.resolved_at = TOP_PRIORITY, None
    # a fresh promise from the reopening, still on time at the demo's "now"
    complaint.sla_due_at, complaint.sla_started_at = now + timedelta(hours=2), answered
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.REOPENED,
        actor="customer",
        from_value=S.RESOLVED.value,
        to_value=S.REOPENED.value,
        text="The customer said the problem is not solved.",
        now=answered,
    )


def _promise_moved(session: Session, complaint: Complaint, created: datetime) -> None:
    """The clock's earlier steps on a breached case: warned at risk, and the customer told that we
    need until the (now passed) promise, which was two thirds as far off at filing."""
    first = created + (complaint.sla_due_at - created) * 2 / 3
    told = created + (first - created) * 0.9
    for state, at in (("at_risk", created + (first - created) * 0.75), ("late", told)):
        session.add(
            CaseAlert(
                key=alert_key(complaint.id, 0, state),
                complaint_id=complaint.id,
                round=0,
                state=state,
                created_at=at,
            )
        )
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.PROMISE,
        actor="system",
        from_value=str(int(first.timestamp())),
        to_value=str(int(complaint.sla_due_at.timestamp())),
        text="the promise moved; the customer is told why.",
        now=told,
    )
    key = late_key(complaint.id, 0)
    text = "An honest update on your complaint: we need a little longer than we said. Sorry for the wait."
    queue_case_update(session=session, complaint=complaint, key=key, text=text, now=told)
    session.flush()
    _sent(session, key, told)
    complaint.priority = 1


def _sent(session: Session, key: str, at: datetime) -> None:
    delivery = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
    assert delivery is not None
    delivery.status, delivery.sent_at, delivery.attempts = DeliveryStatus.SENT, at, 1
