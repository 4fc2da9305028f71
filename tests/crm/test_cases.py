"""Complaint cases in the CRM: who sees and works which case, the lifecycle and its history, the
remedy by the refund policy, the messages queued for the customer, the customer's answer, the
revisit's "no", and a stale or concurrent change refused (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from bot.crm import cases
from bot.crm.cases import CaseError, Filters, Resolution, StaleCase, Viewer
from bot.crm.complaints import file_complaint, reopen_complaint
from bot.crm.db import make_engine
from bot.crm.models import (
    Agent,
    CaseEvent,
    CaseEventKind,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Customer,
    Delivery,
    DeliveryStatus,
    OutreachKind,
    Refund,
    RefundStatus,
    Remedy,
    Role,
    Segment,
    Severity,
)
from scheduler.policy import KIND_OF_INTENT, UNCAPPED_KINDS, purpose_of
from tests.factories import NOW, make_customer, make_order

_ids = count(1)


def make_person(session: Session, role: Role = Role.AGENT, teams: tuple[str, ...] = ("logistics",)) -> Viewer:
    agent = Agent(
        username=f"person{next(_ids)}", display_name=f"Person {next(_ids)}", role=role, password_hash="x"
    )
    session.add(agent)
    session.flush()
    cases.set_teams(session=session, agent_id=agent.id, teams=list(teams))
    return cases.viewer_of(session=session, agent_id=agent.id, role=role)


def make_case(
    session: Session,
    *,
    category: ComplaintCategory = ComplaintCategory.DELIVERY,
    order: bool = True,
    **fields,
) -> Complaint:
    customer = make_customer(session, web_id=f"case-{next(_ids)}", **fields)
    bought = make_order(session, customer, delivered_at=NOW - timedelta(days=3)) if order else None
    filed = file_complaint(
        session=session,
        customer=customer,
        category=category,
        description="The parcel arrived crushed <b>twice</b>",
        order=bought,
        angry=False,
        now=NOW - timedelta(hours=1),
    )
    return filed.complaint


def kinds(session: Session, complaint: Complaint) -> list[str]:
    events = cases.history(session=session, complaint_id=complaint.id)
    return [f"{e.kind.value}:{e.from_value or ''}>{e.to_value or ''}" for e in events]


def test_a_filed_case_goes_to_its_team_and_starts_its_history(session: Session) -> None:
    complaint = make_case(session, category=ComplaintCategory.TECHNICAL)
    assert (complaint.team, complaint.status) == ("tech", ComplaintStatus.OPEN)
    assert kinds(session, complaint) == ["filed:>tech"]


def test_agents_see_their_teams_cases_leads_the_team_admins_all(session: Session) -> None:
    logistics, billing = make_case(session), make_case(session, category=ComplaintCategory.BILLING)
    agent = make_person(session)
    lead = make_person(session, Role.LEAD, ("billing",))
    admin = make_person(session, Role.ADMIN, ())

    def ids(viewer: Viewer) -> set[int]:
        rows = cases.open_cases(session=session, viewer=viewer, filters=Filters(), now=NOW)
        return {r.id for r in rows} & {logistics.id, billing.id}

    assert ids(agent) == {logistics.id}
    assert ids(lead) == {billing.id}
    assert ids(admin) == {logistics.id, billing.id}
    with pytest.raises(cases.NotYourTeam) as refused:
        cases.visible_case(session=session, viewer=agent, complaint_id=billing.id)
    assert refused.value.status == 403
    assert "Billing team" in refused.value.message


def test_the_list_is_most_urgent_first_and_filters(session: Session) -> None:
    soon = make_case(session)
    later = make_case(session, segment=Segment.MVC)
    # Filed an hour ago: `soon` has used 80% of its time (at risk), `later` 5%.
    soon.sla_due_at, later.sla_due_at = NOW + timedelta(minutes=15), NOW + timedelta(hours=20)
    breached = make_case(session)
    breached.sla_due_at = NOW - timedelta(minutes=5)
    reopened = make_case(session)
    reopened.sla_due_at, reopened.priority = NOW + timedelta(days=2), 1
    session.flush()
    admin = make_person(session, Role.ADMIN, ())
    mine = {soon.id, later.id, breached.id, reopened.id}

    def listed(**filters: object) -> list[int]:
        rows = cases.open_cases(session=session, viewer=admin, filters=Filters(**filters), now=NOW)
        return [r.id for r in rows if r.id in mine]

    assert listed() == [reopened.id, breached.id, soon.id, later.id]
    assert listed(clock="breached") == [breached.id]
    assert listed(clock="at_risk") == [soon.id]
    assert listed(segment="MVC") == [later.id]
    assert listed(severity="high") == []
    assert listed(state="resolved") == []


def test_take_move_ask_answer_resolve_with_the_whole_history(session: Session) -> None:
    complaint = make_case(session)
    agent = make_person(session)
    cid = complaint.id

    with pytest.raises(CaseError, match="Take the case first"):
        cases.move(session=session, viewer=agent, complaint_id=cid, state="open", version=complaint.version)
    shown = complaint.version
    taken = cases.take(session=session, viewer=agent, complaint_id=cid, version=shown, now=NOW)
    assert (complaint.owner_id, complaint.status) == (agent.id, ComplaintStatus.IN_PROGRESS)
    assert taken.version == complaint.version > shown
    assert complaint.first_response_at == NOW

    asked = cases.ask_customer(
        session=session,
        viewer=agent,
        complaint_id=cid,
        question="Could you send a photo?",
        version=complaint.version,
    )
    assert complaint.status is ComplaintStatus.WAITING_ON_CUSTOMER
    (key,) = asked.queued
    question = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
    assert question is not None and question.kind is OutreachKind.CASE_UPDATE
    assert "Could you send a photo?" in question.payload["campaign_text"]

    # Written before the question reached them: not an answer to it.
    assert cases.customer_answered(session=session, customer_id=complaint.customer_id, text="hello?") == []
    question.status = DeliveryStatus.SENT
    answered = cases.customer_answered(session=session, customer_id=complaint.customer_id, text="Photo sent")
    assert answered == [cid] and complaint.status is ComplaintStatus.IN_PROGRESS

    cases.add_note(session=session, viewer=agent, complaint_id=cid, text="<script>x</script> checked")
    done = cases.resolve(
        session=session,
        viewer=agent,
        complaint_id=cid,
        resolution=Resolution("We replaced the courier.", "replacement"),
        version=complaint.version,
        now=NOW,
    )
    assert (complaint.status, complaint.remedy, complaint.resolution) == (
        ComplaintStatus.RESOLVED,
        Remedy.REPLACEMENT,
        "We replaced the courier.",
    )
    told = session.scalar(select(Delivery).where(Delivery.idempotency_key == done.queued[0]))
    assert told is not None and told.scheduled_for == NOW
    assert told.payload["campaign_text"].startswith(f"Update on your complaint (case #{cid}): We replaced")
    assert "replacement for order" in told.payload["campaign_text"]
    revisit = session.scalar(
        select(Delivery).where(Delivery.idempotency_key == f"complaint_followup:complaint:{cid}")
    )
    assert revisit is not None and revisit.scheduled_for == NOW + timedelta(days=3)
    assert kinds(session, complaint) == [
        "filed:>logistics",
        f"owner:>{agent.id}",
        "state:open>in_progress",
        "state:in_progress>waiting_on_customer",
        "question:>",
        "answer:>",
        "state:waiting_on_customer>in_progress",
        "note:>",
        "state:in_progress>resolved",
        "resolved:>replacement",
    ]


def test_case_updates_are_service_messages_outside_the_weekly_cap() -> None:
    assert purpose_of(OutreachKind.CASE_UPDATE).value == "service"
    assert OutreachKind.CASE_UPDATE in UNCAPPED_KINDS
    # A direct EXTERNAL_campaign send (not a claimed case update) is still a capped campaign.
    assert KIND_OF_INTENT["EXTERNAL_campaign"] is OutreachKind.CAMPAIGN


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (Resolution("   ", "none"), "Write the resolution"),
        (Resolution("Done", "voucher"), "Choose a remedy"),
        (Resolution("Done", "credit", "500"), "at most €50.00"),
        (Resolution("Done", "credit", "lots"), "as an amount"),
    ],
)
def test_bad_resolutions_are_refused_and_change_nothing(
    session: Session, typed: Resolution, message: str
) -> None:
    complaint = make_case(session)
    agent = make_person(session)
    cases.take(session=session, viewer=agent, complaint_id=complaint.id, version=complaint.version)
    before, version = kinds(session, complaint), complaint.version
    with pytest.raises(CaseError, match=message):
        cases.resolve(
            session=session,
            viewer=agent,
            complaint_id=complaint.id,
            resolution=typed,
            version=complaint.version,
        )
    assert complaint.status is ComplaintStatus.IN_PROGRESS and complaint.version == version
    assert kinds(session, complaint) == before


def test_a_refund_goes_through_the_refund_policy(session: Session) -> None:
    complaint = make_case(session)
    agent = make_person(session)
    cases.take(session=session, viewer=agent, complaint_id=complaint.id, version=complaint.version)
    order = complaint.order_id
    cases.resolve(
        session=session,
        viewer=agent,
        complaint_id=complaint.id,
        resolution=Resolution("Sorry about the parcel.", "refund"),
        version=complaint.version,
        now=NOW,
    )
    refund = session.get_one(Refund, complaint.refund_id)
    assert (refund.order_id, refund.amount, refund.status) == (order, Decimal("50.00"), RefundStatus.APPROVED)
    assert complaint.remedy is Remedy.REFUND


def test_a_refund_the_policy_does_not_allow_is_refused(session: Session) -> None:
    complaint = make_case(session)
    agent = make_person(session)
    cases.take(session=session, viewer=agent, complaint_id=complaint.id, version=complaint.version)
    order = session.get_one(Complaint, complaint.id).order_id
    session.add(
        Refund(
            order_id=order,
            customer_id=complaint.customer_id,
            amount=Decimal("50.00"),
            status=RefundStatus.PAID,
            requested_at=NOW,
        )
    )
    session.flush()
    with pytest.raises(CaseError, match="does not allow a refund .*already refunded"):
        cases.resolve(
            session=session,
            viewer=agent,
            complaint_id=complaint.id,
            resolution=Resolution("Refunded", "refund"),
            version=complaint.version,
            now=NOW,
        )
    assert complaint.status is ComplaintStatus.IN_PROGRESS
    no_order = make_case(session, order=False)
    cases.take(session=session, viewer=agent, complaint_id=no_order.id, version=no_order.version)
    with pytest.raises(CaseError, match="needs the order concerned"):
        cases.resolve(
            session=session,
            viewer=agent,
            complaint_id=no_order.id,
            resolution=Resolution("x", "refund"),
            version=no_order.version,
        )


def test_only_the_owner_the_lead_or_an_admin_work_a_taken_case(session: Session) -> None:
    complaint = make_case(session)
    owner, other = make_person(session), make_person(session)
    lead = make_person(session, Role.LEAD)
    cases.take(session=session, viewer=owner, complaint_id=complaint.id, version=complaint.version)
    with pytest.raises(CaseError, match="Another person owns this case"):
        cases.take(session=session, viewer=other, complaint_id=complaint.id, version=complaint.version)
    with pytest.raises(CaseError, match="Another person owns this case"):
        cases.move(
            session=session, viewer=other, complaint_id=complaint.id, state="open", version=complaint.version
        )
    cases.add_note(session=session, viewer=other, complaint_id=complaint.id, text="I know this customer")
    cases.reassign(
        session=session,
        viewer=lead,
        complaint_id=complaint.id,
        owner_id=other.id,
        team="",
        version=complaint.version,
    )
    assert complaint.owner_id == other.id
    outsider = make_person(session, Role.AGENT, ("billing",))
    with pytest.raises(CaseError, match="not in the Logistics team"):
        cases.reassign(
            session=session,
            viewer=lead,
            complaint_id=complaint.id,
            owner_id=outsider.id,
            team="",
            version=complaint.version,
        )
    cases.reassign(
        session=session,
        viewer=lead,
        complaint_id=complaint.id,
        owner_id=None,
        team="billing",
        version=complaint.version,
    )
    assert (complaint.team, complaint.owner_id, complaint.status) == ("billing", None, ComplaintStatus.OPEN)


def test_a_stale_form_is_refused_with_what_changed(session: Session) -> None:
    complaint = make_case(session)
    first, second = make_person(session), make_person(session, Role.LEAD)
    seen = cases.history(session=session, complaint_id=complaint.id)[-1].id
    shown = complaint.version  # both opened the page at this version
    cases.take(session=session, viewer=first, complaint_id=complaint.id, version=shown, seen=seen)
    with pytest.raises(StaleCase) as refused:
        cases.take(session=session, viewer=second, complaint_id=complaint.id, version=shown, seen=seen)
    assert refused.value.status == 409
    assert any("open → in progress" in change for change in refused.value.changes)
    assert complaint.owner_id == first.id


def test_a_no_to_the_revisit_reopens_to_the_owner_at_top_priority(session: Session) -> None:
    complaint = make_case(session)
    agent = make_person(session)
    cases.take(session=session, viewer=agent, complaint_id=complaint.id, version=complaint.version)
    cases.resolve(
        session=session,
        viewer=agent,
        complaint_id=complaint.id,
        resolution=Resolution("Fixed", "none"),
        version=complaint.version,
    )
    customer = complaint.customer_id
    reopen_complaint(session=session, complaint=complaint, customer=session.get_one(Customer, customer))
    assert (complaint.status, complaint.owner_id, complaint.priority, complaint.severity) == (
        ComplaintStatus.REOPENED,
        agent.id,
        1,
        Severity.HIGH,
    )
    rows = cases.open_cases(session=session, viewer=agent, filters=Filters(mine=True), now=NOW)
    assert rows[0].id == complaint.id
    last = session.scalars(
        select(CaseEvent).where(CaseEvent.complaint_id == complaint.id).order_by(CaseEvent.id.desc())
    ).first()
    assert last is not None and last.kind is CaseEventKind.REOPENED


@pytest.fixture
def committed_case(crm_engine: Engine, request: pytest.FixtureRequest) -> Iterator[tuple[Engine, int, int]]:
    """A committed case owned by nobody and an agent of its team, in an emptied database."""
    if crm_engine.dialect.name == "postgresql":
        url = request.getfixturevalue("pg_scratch")
    else:
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'cases.db'}"
        from bot.crm.migrate import upgrade

        upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        complaint = make_case(session)
        agent = make_person(session)
        ids = (complaint.id, agent.id)
        session.commit()
    yield engine, *ids
    engine.dispose()


def test_two_people_changing_a_case_at_once_cannot_both_win(committed_case: tuple[Engine, int, int]) -> None:
    engine, complaint_id, agent_id = committed_case
    viewer = Viewer(agent_id, Role.ADMIN, frozenset())
    with Session(engine) as slow, Session(engine) as fast:
        read = slow.get_one(Complaint, complaint_id)  # the page was read before the other's change
        shown = read.version
        taken = cases.take(session=fast, viewer=viewer, complaint_id=complaint_id, version=shown).version
        fast.commit()
        with pytest.raises(StaleDataError):
            cases.move(
                session=slow, viewer=viewer, complaint_id=complaint_id, state="in_progress", version=shown
            )
        slow.rollback()
        del read
    with Session(engine) as session:
        complaint = session.get_one(Complaint, complaint_id)
        assert (complaint.status, complaint.version) == (ComplaintStatus.IN_PROGRESS, taken)
