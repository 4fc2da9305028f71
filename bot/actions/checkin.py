"""The revisit after a complaint is resolved: "is everything fine now?" — a no reopens the case."""

from __future__ import annotations

from rasa_sdk.events import EventType, SlotSet

from bot.actions.base import CRMAction, Turn, current_settings
from bot.crm import churn
from bot.crm.case_history import record_event
from bot.crm.complaints import reopen_complaint
from bot.crm.models import CaseEventKind, Complaint, ComplaintStatus, utcnow
from bot.crm.queries import log_interaction

CATEGORY_WORDS = {
    "delivery": "your delivery problem",
    "billing": "your billing problem",
    "product_quality": "the problem with your product",
    "service": "your service issue",
    "technical": "the technical problem",
    "other": "your recent issue",
}


def the_complaint(turn: Turn) -> Complaint | None:
    """The case this check-in is about, if it is the customer's own."""
    raw = turn.tracker.get_slot("complaint_id")
    if not raw or not str(raw).isdigit():
        return None
    complaint = turn.session.get(Complaint, int(raw))
    return complaint if complaint is not None and complaint.customer_id == turn.customer.id else None


class ActionPrepareCheckin(CRMAction):
    """Name the case the revisit is about, in the customer's words."""

    def name(self) -> str:
        return "action_prepare_checkin"

    def act(self, turn: Turn) -> list[EventType]:
        complaint = the_complaint(turn)
        summary = CATEGORY_WORDS[complaint.category.value] if complaint else CATEGORY_WORDS["other"]
        return [
            SlotSet("complaint_id", str(complaint.id) if complaint else None),
            SlotSet("complaint_summary", summary),
        ]


class ActionCheckinFine(CRMAction):
    """The fix held: close the loop on the case."""

    def name(self) -> str:
        return "action_checkin_fine"

    def act(self, turn: Turn) -> list[EventType]:
        complaint = the_complaint(turn)
        if complaint is not None and complaint.status is ComplaintStatus.RESOLVED:
            record_event(
                session=turn.session,
                complaint=complaint,
                kind=CaseEventKind.STATE,
                actor="customer",
                from_value=complaint.status.value,
                to_value=ComplaintStatus.CLOSED.value,
                text="The customer said everything is fine now.",
            )
        if complaint is not None:
            complaint.status = ComplaintStatus.CLOSED
            complaint.followup_done_at = complaint.followup_done_at or utcnow()
            complaint.customer_told = True
            churn.refresh_customer(session=turn.session, customer_id=complaint.customer_id)
        log_interaction(
            session=turn.session,
            customer=turn.customer,
            conversation=turn.conversation,
            kind="checkin_fine",
            data={"complaint_id": complaint.id if complaint else None},
        )
        return []


class ActionReopenComplaint(CRMAction):
    """Still broken: reopen the case with top priority and offer a person."""

    def name(self) -> str:
        return "action_reopen_complaint"

    def act(self, turn: Turn) -> list[EventType]:
        complaint = the_complaint(turn)
        if complaint is not None:
            reopen_complaint(
                session=turn.session,
                complaint=complaint,
                customer=turn.customer,
                conversation=turn.conversation,
                rules=current_settings().sla_rules(),
            )
        return [SlotSet("offer_human", True)]

    def on_trouble(self, tracker):  # type: ignore[no-untyped-def]
        return [SlotSet("offer_human", True)]
