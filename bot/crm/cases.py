"""Working complaint cases: who may see and change which case, the lifecycle, the history, the
remedy, and the messages to the customer.

Lifecycle (`MOVES`): a case is filed `open`; a person takes it (`in_progress`), may ask the customer
a question (`waiting_on_customer`, until their next message lands on the case and it is
`in_progress` again), and resolves it (`resolved`): the customer is told through their channel and
the existing revisit is planned; a "no" to the revisit makes it `reopened` (its owner keeps it, at
top priority), a "yes" `closed`.

Who: an agent sees and works the cases of their teams (`agent_team`); an agent takes an unowned case
before working it and works only the cases they own; a lead works every case of their teams; an
admin works every case. Everyone who sees a case may add an internal note.

Every change but a note names the case version it was made from: a form shown before someone
else's change is refused (`StaleCase`) with what changed since. Every refusal happens before
anything is written, so a refused form changes nothing.

Messages to the customer are deliveries of kind `case_update` (scheduler/policy.py): the scheduler
sends them through the gateway's proactive path and the policy gate, as service messages (service
consent, quiet hours respected, not counted against the weekly cap), exactly once per key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.crm import churn, mail, refunds
from bot.crm.case_history import record_event
from bot.crm.complaints import OPEN_STATUSES, resolve_complaint
from bot.crm.mail import verified_email
from bot.crm.models import (
    Agent,
    AgentTeam,
    CaseEvent,
    CaseEventKind,
    Complaint,
    ComplaintStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    Order,
    OutreachKind,
    Remedy,
    Role,
    Segment,
    Severity,
    Team,
    utcnow,
)
from bot.crm.reachability import reachable
from bot.crm.sla import WALL_CLOCK, SlaRules

S = ComplaintStatus
STATE_LABEL = {
    S.OPEN: "open",
    S.IN_PROGRESS: "in progress",
    S.WAITING_ON_CUSTOMER: "waiting on customer",
    S.RESOLVED: "resolved",
    S.REOPENED: "reopened",
    S.CLOSED: "closed",
}
TEAM_LABEL = {
    Team.LOGISTICS: "Logistics",
    Team.BILLING: "Billing",
    Team.QUALITY: "Quality",
    Team.CUSTOMER_CARE: "Customer care",
    Team.TECH: "Tech",
}
REMEDY_LABEL = {
    Remedy.REFUND: "refund (by the refund policy)",
    Remedy.REPLACEMENT: "replacement",
    Remedy.CREDIT: "store credit",
    Remedy.NONE: "none",
}
# Where a state may go. Waiting on the customer is reached only by asking a question, resolved
# only by resolving (with a resolution), reopened and closed only by the customer's revisit answer.
MOVES: dict[ComplaintStatus, frozenset[ComplaintStatus]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.RESOLVED}),
    S.REOPENED: frozenset({S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.RESOLVED}),
    S.IN_PROGRESS: frozenset({S.OPEN, S.WAITING_ON_CUSTOMER, S.RESOLVED}),
    S.WAITING_ON_CUSTOMER: frozenset({S.IN_PROGRESS, S.RESOLVED}),
    S.RESOLVED: frozenset({S.REOPENED, S.CLOSED}),
    S.CLOSED: frozenset(),
}
MOVABLE_BY_HAND = frozenset({S.OPEN, S.IN_PROGRESS})  # the "move to" form's choices
CREDIT_UP_TO = Decimal("50.00")  # more than this is a refund, decided by the refund policy
MAX_RESOLUTION, MAX_NOTE, MAX_QUESTION = 2000, 2000, 1000
REFUND_REFUSED = {
    refunds.Eligibility.NOT_DELIVERED: "the order has not been delivered yet",
    refunds.Eligibility.CANCELLED: "the order was cancelled and never charged",
    refunds.Eligibility.TOO_LATE: "the order was delivered more than 30 days ago",
    refunds.Eligibility.ALREADY: "the order is already refunded or returned",
}


class CaseError(Exception):
    """The change is not allowed; the message says why, in words for the agent."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class NoSuchCase(CaseError):
    def __init__(self, complaint_id: int) -> None:
        super().__init__(f"There is no case #{complaint_id}.", 404)


class NotYourTeam(CaseError):
    def __init__(self, team: str) -> None:
        super().__init__(f"This case belongs to the {team_label(team)} team, which you are not in.", 403)


class StaleCase(CaseError):
    """The form was shown before someone else changed the case."""

    def __init__(self, changes: list[str]) -> None:
        super().__init__(
            "Someone changed this case after you opened it, so nothing was saved. "
            "Here is what changed; check it and try again.",
            409,
        )
        self.changes = changes


class Clock(str, enum.Enum):
    """Where a case stands against the time promised to the customer."""

    ON_TIME = "on_time"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    STOPPED = "stopped"  # resolved or closed


@dataclass(frozen=True)
class Viewer:
    """A console user as the case desk sees them: their role and teams."""

    id: int
    role: Role
    teams: frozenset[str]

    def sees(self, complaint: Complaint) -> bool:
        return self.role is Role.ADMIN or complaint.team in self.teams

    def leads(self, complaint: Complaint) -> bool:
        return self.role is Role.ADMIN or (self.role is Role.LEAD and complaint.team in self.teams)


@dataclass(frozen=True)
class Filters:
    """The Cases page's filters, as typed in its query string (unknown values are ignored)."""

    team: str = ""
    state: str = ""
    severity: str = ""
    segment: str = ""
    clock: str = ""  # at_risk | breached
    mine: bool = False

    @classmethod
    def parse(cls, query: dict[str, str]) -> Filters:
        def pick(name: str, allowed: set[str]) -> str:
            value = query.get(name, "")
            return value if value in allowed else ""

        return cls(
            team=pick("team", {t.value for t in Team}),
            state=pick("state", {s.value for s in S}),
            severity=pick("severity", {s.value for s in Severity}),
            segment=pick("segment", {s.value for s in Segment}),
            clock=pick("clock", {Clock.AT_RISK.value, Clock.BREACHED.value}),
            mine=query.get("mine", "") == "yes",
        )


@dataclass
class CaseRow:
    id: int
    customer: str
    segment: str
    team: str
    state: str
    severity: str
    owner: str | None
    owner_id: int | None
    priority: int
    sla_due_at: datetime
    clock: str
    created_at: datetime
    summary: str
    category: str

    def view(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "sla_due_at": self.sla_due_at.isoformat(),
            "created_at": self.created_at.isoformat(),
        }


@dataclass
class Change:
    """What a successful change did: the case's new version and the deliveries it queued."""

    version: int
    queued: list[str] = field(default_factory=list)


def team_label(team: str) -> str:
    try:
        return TEAM_LABEL[Team(team)]
    except ValueError:
        return team


def clock_of(complaint: Complaint, now: datetime, rules: SlaRules = WALL_CLOCK) -> Clock:
    """On time, at risk (most of the promised time used, counted the team's way) or breached;
    stopped once resolved."""
    if complaint.status not in OPEN_STATUSES:
        return Clock.STOPPED
    if now >= complaint.sla_due_at:
        return Clock.BREACHED
    return Clock.AT_RISK if rules.share_used(complaint, now) >= rules.at_risk_share else Clock.ON_TIME


# ---- who ----------------------------------------------------------------------------------------


def teams_of(*, session: Session, agent_id: int) -> frozenset[str]:
    return frozenset(
        t.value for t in session.scalars(select(AgentTeam.team).where(AgentTeam.agent_id == agent_id))
    )


def viewer_of(*, session: Session, agent_id: int, role: Role) -> Viewer:
    return Viewer(agent_id, role, teams_of(session=session, agent_id=agent_id))


def all_teams(*, session: Session) -> dict[int, list[str]]:
    """Every agent's teams, by agent id."""
    teams: dict[int, list[str]] = {}
    for agent_id, team in session.execute(
        select(AgentTeam.agent_id, AgentTeam.team).order_by(AgentTeam.team)
    ):
        teams.setdefault(agent_id, []).append(team.value)
    return teams


def set_teams(*, session: Session, agent_id: int, teams: list[str]) -> list[str]:
    """Put an agent in exactly these teams; return the teams as stored. Unknown names are refused."""
    chosen = []
    for name in teams:
        try:
            chosen.append(Team(name))
        except ValueError:
            raise CaseError(f"There is no team {name!r}.") from None
    session.execute(delete(AgentTeam).where(AgentTeam.agent_id == agent_id))
    for team in sorted(set(chosen), key=lambda t: t.value):
        session.add(AgentTeam(agent_id=agent_id, team=team))
    session.flush()
    return sorted(t.value for t in set(chosen))


def team_members(*, session: Session, team: str) -> list[Agent]:
    """Active people who work cases of `team`."""
    return list(
        session.scalars(
            select(Agent)
            .join(AgentTeam, AgentTeam.agent_id == Agent.id)
            .where(AgentTeam.team == Team(team), Agent.active.is_(True))
            .where(Agent.role.in_((Role.AGENT, Role.LEAD, Role.ADMIN)))
            .order_by(Agent.display_name)
        )
    )


# ---- reading ------------------------------------------------------------------------------------


def open_cases(
    *, session: Session, viewer: Viewer, filters: Filters, now: datetime, rules: SlaRules = WALL_CLOCK
) -> list[CaseRow]:
    """The cases the viewer's teams own (all for an admin), most urgent first: reopened cases on
    top, then by the time promised to the customer."""
    query = select(Complaint, Customer).join(Customer, Customer.id == Complaint.customer_id)
    if viewer.role is not Role.ADMIN:
        query = query.where(Complaint.team.in_(sorted(viewer.teams)))
    if filters.team:
        query = query.where(Complaint.team == filters.team)
    if filters.state:
        query = query.where(Complaint.status == S(filters.state))
    else:
        query = query.where(Complaint.status.in_(OPEN_STATUSES))
    if filters.severity:
        query = query.where(Complaint.severity == Severity(filters.severity))
    if filters.segment:
        query = query.where(Customer.segment == Segment(filters.segment))
    if filters.mine:
        query = query.where(Complaint.owner_id == viewer.id)
    query = query.order_by(Complaint.priority.desc(), Complaint.sla_due_at, Complaint.id).limit(500)
    names = agent_names(session)
    rows = [_row(c, customer, names, now, rules) for c, customer in session.execute(query).tuples()]
    if filters.clock:
        rows = [r for r in rows if r.clock == filters.clock]
    return rows


def _row(
    complaint: Complaint, customer: Customer, names: dict[int, str], now: datetime, rules: SlaRules
) -> CaseRow:
    return CaseRow(
        id=complaint.id,
        customer=customer.display_name,
        segment=customer.segment.value,
        team=complaint.team,
        state=complaint.status.value,
        severity=complaint.severity.value,
        owner=names.get(complaint.owner_id) if complaint.owner_id else None,
        owner_id=complaint.owner_id,
        priority=complaint.priority,
        sla_due_at=complaint.sla_due_at,
        clock=clock_of(complaint, now, rules).value,
        created_at=complaint.created_at,
        summary=(complaint.description or "")[:140],
        category=complaint.category.value,
    )


def agent_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Agent.id, Agent.display_name)).tuples().all())


def visible_case(*, session: Session, viewer: Viewer, complaint_id: int) -> Complaint:
    """The case, if it exists and the viewer's teams own it (NoSuchCase, NotYourTeam)."""
    complaint = session.get(Complaint, complaint_id)
    if complaint is None:
        raise NoSuchCase(complaint_id)
    if not viewer.sees(complaint):
        raise NotYourTeam(complaint.team)
    return complaint


def history(*, session: Session, complaint_id: int, after: int = 0) -> list[CaseEvent]:
    return list(
        session.scalars(
            select(CaseEvent)
            .where(CaseEvent.complaint_id == complaint_id, CaseEvent.id > after)
            .order_by(CaseEvent.id)
        )
    )


def describe(event: CaseEvent, names: dict[int, str]) -> str:
    """One history line in words (plain text: the page escapes it)."""
    who = names.get(event.agent_id or 0) or {"customer": "The customer", "bot": "The bot"}.get(
        event.actor, event.actor
    )
    k = CaseEventKind
    if event.kind is k.FILED:
        return f"Filed by the customer for the {team_label(event.to_value or '')} team"
    if event.kind is k.STATE:
        return f"{who}: {_state_words(event.from_value)} → {_state_words(event.to_value)}"
    if event.kind is k.OWNER:
        before = (
            names.get(int(event.from_value), "nobody")
            if event.from_value and event.from_value.isdigit()
            else "nobody"
        )
        after = (
            names.get(int(event.to_value), "nobody")
            if event.to_value and event.to_value.isdigit()
            else "nobody"
        )
        return f"{who}: owner {before} → {after}"
    if event.kind is k.TEAM:
        return f"{who}: team {team_label(event.from_value or '')} → {team_label(event.to_value or '')}"
    if event.kind is k.NOTE:
        return f"{who} noted: {event.text or ''}"
    if event.kind is k.QUESTION:
        return f"{who} asked the customer: {event.text or ''}"
    if event.kind is k.ANSWER:
        return f"The customer answered: {event.text or ''}"
    if event.kind is k.RESOLVED:
        return f"{who} resolved it ({event.to_value or 'no remedy'}): {event.text or ''}"
    if event.kind in (k.PROMISE, k.CLOCK):
        return f"SLA clock: {event.text or ''}"
    return f"Reopened: {event.text or ''}"


def _state_words(value: str | None) -> str:
    try:
        return STATE_LABEL[S(value or "")]
    except ValueError:
        return value or "?"


# ---- changing -----------------------------------------------------------------------------------


def _check_version(session: Session, complaint: Complaint, version: int | None, seen: int) -> None:
    """Refuse a form made from an older version of the case, saying what changed since."""
    if version is None or version == complaint.version:
        return
    names = agent_names(session)
    changes = [describe(e, names) for e in history(session=session, complaint_id=complaint.id, after=seen)]
    raise StaleCase(changes or ["The case was changed (its details, not its history)."])


def _may_work(viewer: Viewer, complaint: Complaint) -> None:
    if viewer.leads(complaint) or complaint.owner_id == viewer.id:
        return
    if complaint.owner_id is None:
        raise CaseError("Take the case first: nobody owns it yet.", 409)
    raise CaseError(
        "Another person owns this case: only they, their team's lead or an admin may change it.", 403
    )


def _set_state(
    session: Session,
    complaint: Complaint,
    to: ComplaintStatus,
    actor: str,
    agent_id: int | None,
    now: datetime,
) -> None:
    if to is complaint.status:
        return
    if to not in MOVES[complaint.status]:
        raise CaseError(
            f"A case that is {STATE_LABEL[complaint.status]} cannot become {STATE_LABEL[to]}.", 409
        )
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.STATE,
        actor=actor,
        agent_id=agent_id,
        from_value=complaint.status.value,
        to_value=to.value,
        now=now,
    )
    complaint.status = to
    churn.refresh_customer(session=session, customer_id=complaint.customer_id, now=now)


def _responded(complaint: Complaint, now: datetime) -> None:
    if complaint.first_response_at is None:
        complaint.first_response_at = now


def take(
    *,
    session: Session,
    viewer: Viewer,
    complaint_id: int,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> Change:
    """Become the case's owner; an open or reopened case is in progress from now on. Taking a case
    someone else owns is for their lead or an admin (that is a reassignment)."""
    now = now or utcnow()
    complaint = visible_case(session=session, viewer=viewer, complaint_id=complaint_id)
    _check_version(session, complaint, version, seen)
    if complaint.status not in OPEN_STATUSES:
        raise CaseError(f"The case is {STATE_LABEL[complaint.status]}: there is nothing to take.", 409)
    if complaint.owner_id not in (None, viewer.id) and not viewer.leads(complaint):
        raise CaseError("Another person owns this case: ask them or your team's lead to pass it on.", 409)
    actor = f"agent:{viewer.id}"
    if complaint.owner_id != viewer.id:
        _set_owner(session, complaint, viewer.id, actor, viewer.id, now)
    if complaint.status in (S.OPEN, S.REOPENED):
        _set_state(session, complaint, S.IN_PROGRESS, actor, viewer.id, now)
    _responded(complaint, now)
    session.flush()
    return Change(complaint.version)


def _set_owner(
    session: Session, complaint: Complaint, owner_id: int | None, actor: str, agent_id: int, now: datetime
) -> None:
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.OWNER,
        actor=actor,
        agent_id=agent_id,
        from_value=str(complaint.owner_id) if complaint.owner_id else None,
        to_value=str(owner_id) if owner_id else None,
        now=now,
    )
    complaint.owner_id = owner_id


def move(
    *,
    session: Session,
    viewer: Viewer,
    complaint_id: int,
    state: str,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> Change:
    """Move the case to open or in progress (asking and resolving have their own forms)."""
    now = now or utcnow()
    complaint = visible_case(session=session, viewer=viewer, complaint_id=complaint_id)
    try:
        to = S(state)
    except ValueError:
        raise CaseError("Choose the state to move the case to.") from None
    if to is S.WAITING_ON_CUSTOMER:
        raise CaseError("To wait on the customer, ask them a question: it says what you wait for.")
    if to is S.RESOLVED:
        raise CaseError("To resolve the case, use Resolve: the customer is told what was done.")
    if to not in MOVABLE_BY_HAND:
        raise CaseError(f"A case cannot be moved to {STATE_LABEL[to]} by hand.")
    _check_version(session, complaint, version, seen)
    _may_work(viewer, complaint)
    _set_state(session, complaint, to, f"agent:{viewer.id}", viewer.id, now)
    session.flush()
    return Change(complaint.version)


def reassign(
    *,
    session: Session,
    viewer: Viewer,
    complaint_id: int,
    owner_id: int | None,
    team: str,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> Change:
    """Give the case to another person of its team, or to another team (with one of its people,
    or to nobody there yet). The owner, the team's lead or an admin may."""
    now = now or utcnow()
    complaint = visible_case(session=session, viewer=viewer, complaint_id=complaint_id)
    team = team or complaint.team
    if team not in {t.value for t in Team}:
        raise CaseError("Choose one of the teams.")
    if complaint.status not in OPEN_STATUSES:
        raise CaseError(f"The case is {STATE_LABEL[complaint.status]}: it cannot be reassigned.", 409)
    _check_version(session, complaint, version, seen)
    _may_work(viewer, complaint)
    if owner_id is not None and owner_id not in {a.id for a in team_members(session=session, team=team)}:
        raise CaseError(f"That person is not in the {team_label(team)} team.")
    actor = f"agent:{viewer.id}"
    if team != complaint.team:
        record_event(
            session=session,
            complaint=complaint,
            kind=CaseEventKind.TEAM,
            actor=actor,
            agent_id=viewer.id,
            from_value=complaint.team,
            to_value=team,
            now=now,
        )
        complaint.team = team
    if owner_id != complaint.owner_id:
        _set_owner(session, complaint, owner_id, actor, viewer.id, now)
        if owner_id is None and complaint.status is S.IN_PROGRESS:
            _set_state(session, complaint, S.OPEN, actor, viewer.id, now)  # nobody works it now
    session.flush()
    return Change(complaint.version)


def add_note(
    *, session: Session, viewer: Viewer, complaint_id: int, text: str, now: datetime | None = None
) -> int:
    """An internal note on the case (never sent to the customer); anyone who sees the case may."""
    complaint = visible_case(session=session, viewer=viewer, complaint_id=complaint_id)
    text = text.strip()
    if not text:
        raise CaseError("Write the note first.")
    if len(text) > MAX_NOTE:
        raise CaseError(f"A note has at most {MAX_NOTE} characters.")
    event = record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.NOTE,
        actor=f"agent:{viewer.id}",
        agent_id=viewer.id,
        text=text,
        now=now,
    )
    return event.id


def ask_customer(
    *,
    session: Session,
    viewer: Viewer,
    complaint_id: int,
    question: str,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> Change:
    """Send the customer a question in their channel and wait for their answer."""
    now = now or utcnow()
    complaint = visible_case(session=session, viewer=viewer, complaint_id=complaint_id)
    question = " ".join(question.split())
    if not question:
        raise CaseError("Write the question for the customer.")
    if len(question) > MAX_QUESTION:
        raise CaseError(f"A question has at most {MAX_QUESTION} characters.")
    if complaint.status not in OPEN_STATUSES:
        raise CaseError(f"The case is {STATE_LABEL[complaint.status]}: reopen it before asking.", 409)
    _check_version(session, complaint, version, seen)
    _may_work(viewer, complaint)
    actor = f"agent:{viewer.id}"
    _set_state(session, complaint, S.WAITING_ON_CUSTOMER, actor, viewer.id, now)
    event = record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.QUESTION,
        actor=actor,
        agent_id=viewer.id,
        text=question,
        now=now,
    )
    _responded(complaint, now)
    key = question_key(complaint.id, event.id)
    text = (
        f"A question from our team about your complaint (case #{complaint.id}): {question} Just reply here."
    )
    queue_case_update(session=session, complaint=complaint, key=key, text=text, now=now)
    session.flush()
    return Change(complaint.version, [key])


@dataclass(frozen=True)
class Resolution:
    """The resolve form as typed."""

    text: str
    remedy: str
    credit: str = ""


def resolve(
    *,
    session: Session,
    viewer: Viewer,
    complaint_id: int,
    resolution: Resolution,
    version: int | None,
    seen: int = 0,
    now: datetime | None = None,
) -> Change:
    """Resolve the case with a resolution the customer reads and a remedy from the policy; tell
    the customer, and plan the revisit ("is everything fine now?")."""
    now = now or utcnow()
    complaint = visible_case(session=session, viewer=viewer, complaint_id=complaint_id)
    text = resolution.text.strip()
    if not text:
        raise CaseError("Write the resolution: it is what the customer will read.")
    if len(text) > MAX_RESOLUTION:
        raise CaseError(f"A resolution has at most {MAX_RESOLUTION} characters.")
    try:
        remedy = Remedy(resolution.remedy)
    except ValueError:
        raise CaseError("Choose a remedy: refund, replacement, credit or none.") from None
    if complaint.status not in OPEN_STATUSES:
        raise CaseError(f"The case is already {STATE_LABEL[complaint.status]}.", 409)
    _check_version(session, complaint, version, seen)
    _may_work(viewer, complaint)
    order = session.get(Order, complaint.order_id) if complaint.order_id else None
    credit = _credit(resolution.credit) if remedy is Remedy.CREDIT else None
    if remedy in (Remedy.REFUND, Remedy.REPLACEMENT) and order is None:
        raise CaseError(f"A {remedy.value} needs the order concerned, and this case names none.")
    if remedy is Remedy.REFUND and order is not None:
        allowed = refunds.check(session=session, order=order, now=now)
        if allowed in REFUND_REFUSED:
            why = REFUND_REFUSED[allowed]
            raise CaseError(f"The refund policy does not allow a refund of order {order.number}: {why}.")
    actor = f"agent:{viewer.id}"
    told = _remedy_words(session, complaint, remedy, order, credit, text, now)
    _set_state(session, complaint, S.RESOLVED, actor, viewer.id, now)
    complaint.remedy, complaint.credit_amount, complaint.priority = remedy, credit, 0
    if complaint.owner_id is None:
        complaint.owner_id = viewer.id
    _responded(complaint, now)
    resolve_complaint(session=session, complaint=complaint, resolution=text, now=now)
    event = record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.RESOLVED,
        actor=actor,
        agent_id=viewer.id,
        to_value=remedy.value,
        text=text,
        now=now,
    )
    key = _tell_resolved(session, complaint, event.id, told, now)
    session.flush()
    return Change(complaint.version, [key])


def _tell_resolved(session: Session, complaint: Complaint, event_id: int, told: str, now: datetime) -> str:
    """Tell the customer in their chat; a customer with no chat channel left but a confirmed email
    address gets the resolution by mail instead. Returns the key of what was queued."""
    customer = session.get_one(Customer, complaint.customer_id)
    if not reachable(session=session, customer=customer) and verified_email(customer) is not None:
        what = told.removeprefix(f"Update on your complaint (case #{complaint.id}): ")
        mail.queue_case_resolved(
            session=session,
            customer=customer,
            case_id=complaint.id,
            resolution=what,
            event_id=event_id,
            now=now,
        )
        return mail.case_resolved_key(complaint.id, event_id)
    key = resolution_key(complaint.id, event_id)
    queue_case_update(session=session, complaint=complaint, key=key, text=told, now=now)
    return key


def _credit(typed: str) -> Decimal:
    try:
        amount = Decimal(typed.strip().replace(",", ".").lstrip("€"))
    except InvalidOperation:
        raise CaseError("Write the credit as an amount in euros, e.g. 15.00.") from None
    if not amount.is_finite() or amount <= 0 or amount > CREDIT_UP_TO:
        raise CaseError(f"A credit is more than €0 and at most €{CREDIT_UP_TO}; more is a refund.")
    return amount.quantize(Decimal("0.01"))


def _remedy_words(
    session: Session,
    complaint: Complaint,
    remedy: Remedy,
    order: Order | None,
    credit: Decimal | None,
    text: str,
    now: datetime,
) -> str:
    """The customer's message: the resolution and what they get (a refund is requested here)."""
    opening = f"Update on your complaint (case #{complaint.id}): {text}"
    if remedy is Remedy.REFUND and order is not None:
        customer = session.get_one(Customer, complaint.customer_id)
        decision = refunds.request_refund(
            session=session, customer=customer, order=order, reason=f"complaint #{complaint.id}", now=now
        )
        refund = decision.refund
        assert refund is not None  # checked above, under the same transaction
        complaint.refund_id = refund.id
        if decision.eligibility is refunds.Eligibility.ELIGIBLE:
            return f"{opening} Your refund of €{refund.amount} for order {order.number} is approved."
        return (
            f"{opening} We've opened a refund of €{refund.amount} for order {order.number}; because of the "
            "amount a colleague checks it first, and you'll hear from us within one working day."
        )
    if remedy is Remedy.REPLACEMENT and order is not None:
        return f"{opening} We're sending you a replacement for order {order.number}."
    if remedy is Remedy.CREDIT:
        return f"{opening} We've added a credit of €{credit} to your account."
    return opening


def queue_case_update(*, session: Session, complaint: Complaint, key: str, text: str, now: datetime) -> None:
    """Queue a message about the customer's own case; the scheduler sends it through the policy gate."""
    queue_personal_message(
        session=session,
        customer_id=complaint.customer_id,
        complaint_id=complaint.id,
        key=key,
        text=text,
        now=now,
    )


def queue_personal_message(
    *, session: Session, customer_id: int, complaint_id: int | None, key: str, text: str, now: datetime
) -> Delivery:
    """Queue a service message a person wrote to this customer (about their case, or what changed
    after their feedback); the scheduler sends it once through the policy gate."""
    delivery = Delivery(
        idempotency_key=key,
        kind=OutreachKind.CASE_UPDATE,
        customer_id=customer_id,
        complaint_id=complaint_id,
        status=DeliveryStatus.QUEUED,
        scheduled_for=now,
        # The entities of the intent that carries a message written by a person (policy.py).
        payload={"campaign_text": text, "campaign_button_1": "", "campaign_button_2": ""},
    )
    session.add(delivery)
    return delivery


def question_key(complaint_id: int, event_id: int) -> str:
    return f"case_update:complaint:{complaint_id}:question:{event_id}"


def resolution_key(complaint_id: int, event_id: int) -> str:
    return f"case_update:complaint:{complaint_id}:resolved:{event_id}"


def late_key(complaint_id: int, round_: int) -> str:
    """The SLA clock's honest update of a round (scheduler/sla.py): at most one per round."""
    return f"case_update:complaint:{complaint_id}:late:{round_}"


# ---- the customer's side --------------------------------------------------------------------------


def customer_answered(
    *, session: Session, customer_id: int, text: str, now: datetime | None = None
) -> list[int]:
    """The customer wrote: a case waiting for their answer to a question they have received gets
    the message in its history and is in progress again. Returns the ids of those cases."""
    now = now or utcnow()
    answered = []
    waiting = session.scalars(
        select(Complaint).where(
            Complaint.customer_id == customer_id, Complaint.status == S.WAITING_ON_CUSTOMER
        )
    ).all()
    for complaint in waiting:
        if not _question_delivered(session, complaint):
            continue  # they wrote before our question reached them: not an answer to it
        record_event(
            session=session,
            complaint=complaint,
            kind=CaseEventKind.ANSWER,
            actor="customer",
            text=text[:4000],
            now=now,
        )
        _set_state(session, complaint, S.IN_PROGRESS, "customer", None, now)
        answered.append(complaint.id)
    session.flush()
    return answered


def _question_delivered(session: Session, complaint: Complaint) -> bool:
    asked = session.scalar(
        select(CaseEvent.id)
        .where(CaseEvent.complaint_id == complaint.id, CaseEvent.kind == CaseEventKind.QUESTION)
        .order_by(CaseEvent.id.desc())
        .limit(1)
    )
    if asked is None:
        return False
    status = session.scalar(
        select(Delivery.status).where(Delivery.idempotency_key == question_key(complaint.id, asked))
    )
    return status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
