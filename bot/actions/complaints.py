"""Complaints: acknowledge with matched empathy, collect what is missing, file with an SLA, escalate."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.base import CRMAction, Turn, crm_session, current_settings, latest_text, open_turn
from bot.actions.describing import describes_what_happened, harm_in, says_nothing_happened
from bot.actions.formatting import day, promised_by
from bot.actions.forms import LeavableFormValidation
from bot.actions.lookups import customer_order, latest_order, means_no_order, normalise_order_number
from bot.crm.complaints import file_complaint, recent_complaints
from bot.crm.models import ComplaintCategory, Temperament, utcnow
from bot.nlp.analysis import analyse

NO_ORDER = "none"
NEEDS_NO_ORDER = {
    ComplaintCategory.SERVICE.value,
    ComplaintCategory.TECHNICAL.value,
    ComplaintCategory.OTHER.value,
}
TEAM_LABEL = {
    "logistics": "delivery",
    "billing": "billing",
    "quality": "product quality",
    "customer_care": "customer care",
    "tech": "technical",
}


def empathy_for(*, anger: int, repeat: bool) -> str:
    """How upset the customer is, for the acknowledgement: repeat > angry > upset > calm."""
    if repeat:
        return "repeat"
    return "angry" if anger >= 2 else "upset" if anger == 1 else "calm"


class ActionAcknowledgeComplaint(CRMAction):
    """Acknowledge at once, and pre-fill the complaint form with what the message already says."""

    def name(self) -> str:
        return "action_acknowledge_complaint"

    def act(self, turn: Turn) -> list[EventType]:
        analysis, customer = turn.analysis, turn.customer
        repeat = (
            analysis.repeat
            or recent_complaints(session=turn.session, customer_id=customer.id, now=utcnow()) > 0
        )
        # A button's choice; else the analysis, which weighs every cue ("the parcel arrived crushed
        # and the mug is broken" is a delivery) and the catalogue; else the classifier's entity.
        category = (
            turn.chosen("complaint_category")
            or (analysis.category.value if analysis.category else None)
            or turn.entity("complaint_category")
        )
        number = normalise_order_number(turn.entity("order_id")) or next(iter(analysis.order_numbers), None)
        order = customer_order(session=turn.session, customer_id=customer.id, number=number)
        last = latest_order(session=turn.session, customer_id=customer.id)
        text = latest_text(turn.tracker)
        # "I want to complain about my order" says nothing of what happened: the form asks for it.
        described = describes_what_happened(text)
        return [
            SlotSet("empathy", empathy_for(anger=analysis.anger, repeat=repeat)),
            SlotSet(
                "complaint_category", category if category in ComplaintCategory._value2member_map_ else None
            ),
            # A guest (no order on record) is asked for the number too (utter_ask_complaint_order_guest).
            SlotSet("complaint_order", order.number if order else None),
            SlotSet("complaint_description", text[:2000] if described else None),
            SlotSet("last_order_number", last.number if last else None),
            SlotSet("last_order_date", day(last.placed_at, customer.timezone) if last else None),
            SlotSet("order_hint", None),
        ]


class ValidateComplaintForm(LeavableFormValidation):
    """Ask only for what is missing; an order is asked for only when the category concerns one."""

    free_text = frozenset({"complaint_description"})

    def name(self) -> str:
        return "validate_complaint_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        if tracker.get_slot("complaint_category") in NEEDS_NO_ORDER:
            return [s for s in domain_slots if s != "complaint_order"]
        return domain_slots

    def validate_complaint_category(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "").strip().lower()
        if text in ComplaintCategory._value2member_map_:
            return {"complaint_category": text}
        category = analyse(text).category  # "it's about the parcel" → delivery
        return {"complaint_category": category.value if category else None}

    def validate_complaint_order(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "")
        if text == NO_ORDER or means_no_order(text):
            return {"complaint_order": NO_ORDER, "order_hint": None}
        number = normalise_order_number(text)
        with crm_session() as session:
            turn_customer = open_turn(session, tracker).customer
            order = customer_order(session=session, customer_id=turn_customer.id, number=number)
            guest = latest_order(session=session, customer_id=turn_customer.id) is None
        if order is not None:
            return {"complaint_order": order.number, "order_hint": None}
        if guest and number:  # kept as the guest gave it, for the team to look up; never shown back
            return {"complaint_order": number, "order_hint": None}
        return {"complaint_order": None, "order_hint": "invalid"}

    def validate_complaint_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = " ".join(str(value or "").split())
        if len(text) < 3 or says_nothing_happened(text):  # "thanks", "ok", "yes" tell the team nothing
            return {"complaint_description": None}
        return {"complaint_description": text[:2000]}


class ActionFileComplaint(CRMAction):
    """File the case with severity, team and SLA; tell the customer; offer a person when warranted."""

    def name(self) -> str:
        return "action_file_complaint"

    def act(self, turn: Turn) -> list[EventType]:
        slots = turn.tracker.slots
        order_number = slots.get("complaint_order")
        order = customer_order(session=turn.session, customer_id=turn.customer.id, number=order_number)
        description = slots.get("complaint_description")
        now = utcnow()
        filed = file_complaint(
            session=turn.session,
            customer=turn.customer,
            category=ComplaintCategory(slots.get("complaint_category") or "other"),
            description=with_order_given(description, order_number if order is None else None),
            order=order,
            angry=slots.get("empathy") == "angry",
            said_again=slots.get("empathy") == "repeat",
            conversation=turn.conversation,
            now=now,
            rules=current_settings().sla_rules(),  # the promise below counts as the case's clock does
            harm=harm_in(description),
        )
        complaint = filed.complaint
        irritable = turn.customer.temperament is Temperament.IRRITABLE
        return [
            SlotSet("complaint_id", str(complaint.id)),
            SlotSet("complaint_team", TEAM_LABEL.get(complaint.team, complaint.team)),
            SlotSet("complaint_due", promised_by(complaint.sla_due_at, now, turn.customer.timezone)),
            SlotSet("offer_human", filed.escalate or irritable),
            SlotSet("complaint_category", None),
            SlotSet("complaint_order", None),
            SlotSet("complaint_description", None),
        ]

    def on_trouble(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("offer_human", True)]


def with_order_given(description: str | None, number: str | None) -> str | None:
    """The description, with an order number a guest gave that is on no record of theirs."""
    if not number or number == NO_ORDER:
        return description
    return f"{description or ''}\n(Order number given by the customer: {number})".strip()
