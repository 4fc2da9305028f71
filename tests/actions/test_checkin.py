"""The revisit after a resolved complaint: a yes closes the loop, a no reopens the case."""

from __future__ import annotations

from rasa_sdk.events import SlotSet
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.checkin import ActionCheckinFine, ActionPrepareCheckin, ActionReopenComplaint
from bot.crm.models import CaseEvent, CaseEventKind, ComplaintCategory, ComplaintStatus, Severity
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_complaint, make_customer


async def test_revisit_names_the_case_and_a_no_reopens_it(crm: Session) -> None:
    customer = make_customer(crm, web_id="rev")
    complaint = make_complaint(
        crm,
        customer,
        category=ComplaintCategory.DELIVERY,
        status=ComplaintStatus.RESOLVED,
        severity=Severity.LOW,
    )
    crm.commit()
    slots = {"complaint_id": str(complaint.id)}
    events, _ = await run_action(
        ActionPrepareCheckin(), make_tracker("web:rev", intent="EXTERNAL_checkin", slots=slots)
    )
    assert events == [
        *context(customer),
        SlotSet("complaint_id", str(complaint.id)),
        SlotSet("complaint_summary", "your delivery problem"),
    ]

    events, _ = await run_action(ActionReopenComplaint(), make_tracker("web:rev", intent="deny", slots=slots))
    crm.refresh(complaint)
    assert (complaint.status, complaint.severity) == (ComplaintStatus.REOPENED, Severity.HIGH)
    assert events == [*context(customer, open_case=str(complaint.id)), SlotSet("offer_human", True)]


async def test_a_yes_closes_the_loop_and_someone_elses_case_is_untouched(crm: Session) -> None:
    customer, other = make_customer(crm, web_id="yes"), make_customer(crm, web_id="other")
    mine = make_complaint(crm, customer, status=ComplaintStatus.RESOLVED)
    theirs = make_complaint(crm, other, status=ComplaintStatus.RESOLVED)
    crm.commit()
    await run_action(
        ActionCheckinFine(), make_tracker("web:yes", intent="affirm", slots={"complaint_id": str(mine.id)})
    )
    await run_action(
        ActionReopenComplaint(),
        make_tracker("web:yes", intent="deny", slots={"complaint_id": str(theirs.id)}),
    )
    crm.refresh(mine)
    crm.refresh(theirs)
    assert (mine.status, mine.customer_told, mine.followup_done_at is not None) == (
        ComplaintStatus.CLOSED,
        True,
        True,
    )
    assert theirs.status is ComplaintStatus.RESOLVED
    closing = crm.scalars(select(CaseEvent).where(CaseEvent.complaint_id == mine.id)).all()
    assert [(e.kind, e.actor, e.from_value, e.to_value) for e in closing] == [
        (CaseEventKind.STATE, "customer", "resolved", "closed")
    ]
