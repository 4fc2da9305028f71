"""The SLA clock acts on open complaint cases, once per case, round and state.

- **at risk** (`SLA_AT_RISK_SHARE` of the promised time used): the owner, or the whole team when
  nobody owns the case, gets a console notice (the Cases page already highlights the row).
- **late** (`SLA_UPDATE_SHARE` used, before the promise passes): the customer is told honestly that
  we need longer, with a new time ("we said … by 14:00 (Europe/Berlin); we need until 18:00 because
  …"), the case's promise moves to that time (a history line), its priority goes up, and the team's
  leads (admins when the team has none) are notified. The message is a `case_update` delivery: the
  sender sends it through the policy gate (service consent, held in quiet hours, not capped). When
  the customer's quiet hours would hold it past the promise, it is queued before they begin.
- **breached** (the moved promise passes too): priority up again and the leads are notified again.
  The customer has had their one update of the round; the case is on top of the list. A promise
  first found passed by more than an hour (the scheduler was down, or the case is older than the
  clock) is breached at once, without a late update: the leads hear it was missed untold.

A round is the time from filing (round 0) or a reopening (round n) to the resolution. Each step is
one transaction that writes its `case_alert` row (unique key), its notices, history, the case's
changes and the customer's delivery together: a crash before the commit leaves nothing and the next
walk does the step; a crash after it leaves the delivery queued for the sender, whose claim and
idempotency key send it exactly once. Two walkers racing on a case: the second one's alert insert
or its UPDATE of the case (version column) fails, and it skips the case.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot.crm import churn
from bot.crm.case_history import record_event
from bot.crm.cases import STATE_LABEL, late_key, queue_case_update, team_label, team_members
from bot.crm.complaints import OPEN_STATUSES
from bot.crm.models import (
    Agent,
    AgentTeam,
    CaseAlert,
    CaseEvent,
    CaseEventKind,
    Complaint,
    ComplaintStatus,
    Customer,
    Notice,
    Role,
    Team,
)
from bot.crm.sla import SlaRules, alert_key
from scheduler.policy import Policy, quiet_until, zone_of

log = logging.getLogger(__name__)

AT_RISK, LATE, BREACHED = "at_risk", "late", "breached"
QUIET_MARGIN = timedelta(minutes=15)  # an update that must beat the quiet hours goes this much before
# A promise found passed by more than this (the scheduler was down, or the case predates the clock):
# "we said … by Monday" days later would confuse more than help; the leads are told instead.
TOO_LATE_TO_TELL = timedelta(hours=1)
S = ComplaintStatus
REASON = {  # why we need longer, honestly, by the case's state
    S.OPEN: "nobody in our {team} team has been able to start on it yet",
    S.IN_PROGRESS: "our {team} team is still working on it and wants to get it right",
    S.WAITING_ON_CUSTOMER: "we are still waiting for your answer to our question",
    S.REOPENED: "our {team} team is looking into it again after the first fix did not hold",
}


def walk(*, factory: sessionmaker[Session], now: datetime, rules: SlaRules, policy: Policy) -> Counter[str]:
    """Take every due step on every open case, each case in its own transaction."""
    with factory() as session:
        ids = list(session.scalars(select(Complaint.id).where(Complaint.status.in_(OPEN_STATUSES))))
    done: Counter[str] = Counter()
    for complaint_id in ids:
        try:
            with factory.begin() as session:
                done.update(
                    act_on(session=session, complaint_id=complaint_id, now=now, rules=rules, policy=policy)
                )
        except StaleDataError:  # a person changed the case meanwhile: look again next walk
            done["stale"] += 1
        except IntegrityError:  # another walker took this step first: it is done
            done["taken"] += 1
    return done


def act_on(
    *, session: Session, complaint_id: int, now: datetime, rules: SlaRules, policy: Policy
) -> list[str]:
    """The steps the clock takes on one case now (none, or some of at_risk, late, breached)."""
    complaint = session.get(Complaint, complaint_id)
    if complaint is None or complaint.status not in OPEN_STATUSES:
        return []
    customer = session.get_one(Customer, complaint.customer_id)
    round_ = round_of(session, complaint)
    taken = set(
        session.scalars(
            select(CaseAlert.state).where(CaseAlert.complaint_id == complaint.id, CaseAlert.round == round_)
        )
    )
    steps = []
    if AT_RISK not in taken and rules.share_used(complaint, now) >= rules.at_risk_share:
        steps += _at_risk(session, complaint, round_, now)
    too_late = now >= complaint.sla_due_at + TOO_LATE_TO_TELL
    if LATE not in taken and BREACHED not in taken and not too_late:
        if now >= update_moment(complaint, customer, rules, policy):
            steps += _late(session, complaint, customer, round_, now, rules, policy)
    elif BREACHED not in taken and now >= complaint.sla_due_at:
        steps += _breached(session, complaint, round_, now, told=LATE in taken)
    session.flush()
    return steps


def round_of(session: Session, complaint: Complaint) -> int:
    """0 from filing, one more for each time the customer said the fix did not hold."""
    return int(
        session.scalar(
            select(func.count(CaseEvent.id)).where(
                CaseEvent.complaint_id == complaint.id, CaseEvent.kind == CaseEventKind.REOPENED
            )
        )
        or 0
    )


def update_moment(complaint: Complaint, customer: Customer, rules: SlaRules, policy: Policy) -> datetime:
    """When the honest update is due: at the update share of the promised time, or before the
    customer's quiet hours begin when those would hold it until the promise has passed."""
    threshold = rules.moment_at(complaint, rules.update_share)
    zone = zone_of(customer)
    wake = quiet_until(threshold, zone, policy)
    if wake is None or wake < complaint.sla_due_at - QUIET_MARGIN:
        return threshold
    return min(threshold, quiet_began(threshold, zone, policy) - QUIET_MARGIN)


def quiet_began(moment: datetime, zone: ZoneInfo, policy: Policy) -> datetime:
    """When the quiet window that `moment` falls in began."""
    local = moment.astimezone(zone)
    began = datetime.combine(local.date(), policy.quiet_start, tzinfo=zone)
    if began > local:
        began = datetime.combine(local.date() - timedelta(days=1), policy.quiet_start, tzinfo=zone)
    return began.astimezone(moment.tzinfo)


# ---- the steps --------------------------------------------------------------------------------------


def _alert(session: Session, complaint: Complaint, round_: int, state: str, now: datetime) -> CaseAlert:
    """Claim the step by its unique key. When another walker took it first, the insert fails, and
    the case's whole transaction with it (no savepoint: pysqlite commits one when releasing it)."""
    alert = CaseAlert(
        key=alert_key(complaint.id, round_, state),
        complaint_id=complaint.id,
        round=round_,
        state=state,
        created_at=now,
    )
    session.add(alert)
    session.flush()
    return alert


def _at_risk(session: Session, complaint: Complaint, round_: int, now: datetime) -> list[str]:
    alert = _alert(session, complaint, round_, AT_RISK, now)
    owner = session.get(Agent, complaint.owner_id) if complaint.owner_id else None
    owned = owner is not None and owner.active
    people = [owner] if owner is not None and owned else team_members(session=session, team=complaint.team)
    people = people or _admins(session)
    text = (
        f"Case #{complaint.id} ({team_label(complaint.team)}) is at risk: most of the time promised to "
        f"the customer is used (promised by {_utc(complaint.sla_due_at)}); "
        f"{'you own it' if owned else 'nobody owns it yet'}."
    )
    _notify(session, people, complaint, alert, text, now)
    whom = "its owner is" if owned else f"{len(people)} people are"
    _clock_line(session, complaint, f"at risk; {whom} notified.", now)
    return [AT_RISK]


def _late(
    session: Session,
    complaint: Complaint,
    customer: Customer,
    round_: int,
    now: datetime,
    rules: SlaRules,
    policy: Policy,
) -> list[str]:
    alert = _alert(session, complaint, round_, LATE, now)
    read_at = quiet_until(now, zone_of(customer), policy) or now  # when the customer can read it
    before, after = complaint.sla_due_at, rules.extended(complaint, not_before=read_at)
    key = late_key(complaint.id, round_)
    text = honest_update(complaint, customer, before, after, now)
    queue_case_update(session=session, complaint=complaint, key=key, text=text, now=now)
    record_event(
        session=session,
        complaint=complaint,
        kind=CaseEventKind.PROMISE,
        actor="system",
        from_value=str(int(before.timestamp())),
        to_value=str(int(after.timestamp())),
        text=f"the promise moved from {_utc(before)} to {_utc(after)}; the customer is told why.",
        now=now,
    )
    complaint.sla_due_at, complaint.priority = after, complaint.priority + 1
    notice = (
        f"Case #{complaint.id} ({team_label(complaint.team)}) would miss its promise of {_utc(before)}: the "
        f"customer is told we need until {_utc(after)}, and the case's priority is raised."
    )
    _notify(session, _leads(session, complaint.team), complaint, alert, notice, now)
    log.info("case %s late: customer update %s queued, promise moved", complaint.id, key)
    return [LATE]


def _breached(session: Session, complaint: Complaint, round_: int, now: datetime, *, told: bool) -> list[str]:
    alert = _alert(session, complaint, round_, BREACHED, now)
    complaint.priority += 1
    missed = (
        "missed even its new promise" if told else "missed its promise, and the customer was not told in time"
    )
    text = (
        f"Case #{complaint.id} ({team_label(complaint.team)}) {missed} ({_utc(complaint.sla_due_at)}); "
        f"it is {STATE_LABEL[complaint.status]}, and its priority is raised."
    )
    _notify(session, _leads(session, complaint.team), complaint, alert, text, now)
    _clock_line(session, complaint, "breached; the team's leads are notified.", now)
    churn.refresh_customer(session=session, customer_id=complaint.customer_id, now=now)
    return [BREACHED]


def honest_update(
    complaint: Complaint, customer: Customer, before: datetime, after: datetime, now: datetime
) -> str:
    """The customer's message: what we promised, the new time, and why, in their time zone."""
    zone = zone_of(customer)
    reason = REASON.get(complaint.status, REASON[S.IN_PROGRESS]).format(
        team=team_label(complaint.team).lower()
    )
    return (
        f"An honest update on your complaint (case #{complaint.id}): we said you would hear back by "
        f"{_local(before, zone, now)} ({zone.key} time); we need until {_local(after, zone, now)} because "
        f"{reason}. We're sorry for the wait - you will hear from us by then."
    )


def _local(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%a %-d %b, %H:%M")


def _utc(moment: datetime) -> str:
    return moment.strftime("%a %-d %b %H:%M UTC")


def _notify(
    session: Session, people: list[Agent], complaint: Complaint, alert: CaseAlert, text: str, now: datetime
) -> None:
    for person in {p.id: p for p in people}.values():
        session.add(
            Notice(
                agent_id=person.id, complaint_id=complaint.id, alert_id=alert.id, text=text, created_at=now
            )
        )


def _clock_line(session: Session, complaint: Complaint, text: str, now: datetime) -> None:
    record_event(
        session=session, complaint=complaint, kind=CaseEventKind.CLOCK, actor="system", text=text, now=now
    )


def _leads(session: Session, team: str) -> list[Agent]:
    """The team's leads; the admins when it has none (somebody must hear of a missed promise)."""
    leads = list(
        session.scalars(
            select(Agent)
            .join(AgentTeam, AgentTeam.agent_id == Agent.id)
            .where(AgentTeam.team == Team(team), Agent.role == Role.LEAD, Agent.active.is_(True))
        )
    )
    return leads or _admins(session)


def _admins(session: Session) -> list[Agent]:
    return list(session.scalars(select(Agent).where(Agent.role == Role.ADMIN, Agent.active.is_(True))))
