"""Orders and refunds: where is it, and may it be refunded (the policy lives in bot/crm/refunds.py)."""

from __future__ import annotations

from rasa_sdk.events import EventType, SlotSet

from bot.actions.base import CRMAction, Turn
from bot.actions.formatting import day
from bot.actions.lookups import customer_order, latest_order, normalise_order_number
from bot.crm import refunds
from bot.crm.models import Order, utcnow


def asked_number(turn: Turn) -> str | None:
    """The order number the customer gave in this message, in any spelling."""
    raw = turn.entity("order_id") or next(iter(turn.analysis.order_numbers), None)
    return normalise_order_number(raw)


def order_slots(order: Order, tz: str) -> list[EventType]:
    eta = order.delivered_at or order.expected_at
    return [
        SlotSet("order_number", order.number),
        SlotSet("order_date", day(order.placed_at, tz)),
        SlotSet("order_eta", day(eta, tz) if eta else "soon"),
        SlotSet("order_carrier", order.carrier or "our courier"),
        SlotSet("order_tracking", order.tracking_code or "not yet available"),
        SlotSet("order_total", f"{order.total:.2f}"),
        SlotSet("order_state", order.status.value),
    ]


class ActionCheckOrderStatus(CRMAction):
    """Find the order meant (a number given, else the customer's latest) and set what to say about it."""

    def name(self) -> str:
        return "action_check_order_status"

    def act(self, turn: Turn) -> list[EventType]:
        number = asked_number(turn)
        if number is None:
            order = latest_order(session=turn.session, customer_id=turn.customer.id)
            if order is None:
                return [SlotSet("order_lookup", "need_id"), SlotSet("order_id", None)]
        else:
            order = customer_order(session=turn.session, customer_id=turn.customer.id, number=number)
            if order is None:
                return [SlotSet("order_lookup", "not_found"), SlotSet("order_id", number)]
        return [
            SlotSet("order_lookup", "found"),
            SlotSet("order_id", None),
            *order_slots(order, turn.customer.timezone),
        ]


class ActionRequestRefund(CRMAction):
    """Apply the refund policy to the order named, never promising what it does not allow."""

    def name(self) -> str:
        return "action_request_refund"

    def act(self, turn: Turn) -> list[EventType]:
        number = asked_number(turn)
        if number is None:
            last = latest_order(session=turn.session, customer_id=turn.customer.id)
            return [
                SlotSet("refund_outcome", "need_id"),
                SlotSet("last_order_number", last.number if last else "—"),
            ]
        order = customer_order(session=turn.session, customer_id=turn.customer.id, number=number)
        if order is None:
            return [SlotSet("refund_outcome", "not_found"), SlotSet("order_id", number)]
        decision = refunds.request_refund(
            session=turn.session,
            customer=turn.customer,
            order=order,
            reason=turn.tracker.latest_message.get("text"),
            conversation=turn.conversation,
            now=utcnow(),
        )
        return [
            SlotSet("refund_outcome", decision.eligibility.value),
            SlotSet("refund_id", str(decision.refund.id) if decision.refund else None),
            SlotSet("order_id", None),
            *order_slots(order, turn.customer.timezone),
        ]
