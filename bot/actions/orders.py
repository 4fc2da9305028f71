"""Orders and refunds: where is it, and may it be refunded (the policy lives in bot/crm/refunds.py)."""

from __future__ import annotations

from rasa_sdk.events import EventType, SlotSet
from sqlalchemy import select

from bot.actions.base import CRMAction, Turn, current_settings, latest_text
from bot.actions.formatting import day, due_phrase
from bot.actions.lookups import customer_order, latest_order, named_number, normalise_order_number, shop_order
from bot.crm import mail, refunds
from bot.crm.handoffs import callback_promise, open_handoff
from bot.crm.models import HANDOFF_CALLBACK, Order, OutboundMail, Refund, RefundStatus, utcnow
from bot.crm.refunds import Decision, Eligibility


def asked_number(turn: Turn) -> str | None:
    """The order number the customer gave in this message, in any spelling."""
    raw = turn.entity("order_id") or next(iter(turn.analysis.order_numbers), None)
    return normalise_order_number(raw)


def meant_order(turn: Turn) -> tuple[Order | None, str | None]:
    """The customer's own order they named, by our number (CL-…) or by the shop's own number or id
    (`#10234`, `A-5521`), and the number they named; (None, None) when they named none."""
    number = asked_number(turn)
    if number is not None:
        return customer_order(session=turn.session, customer_id=turn.customer.id, number=number), number
    text = " ".join(filter(None, (latest_text(turn.tracker), turn.entity("order_id"))))
    order = shop_order(session=turn.session, customer_id=turn.customer.id, text=text)
    return (order, order.number) if order is not None else (None, named_number(text))


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
        order, number = meant_order(turn)
        if number is None:
            order = latest_order(session=turn.session, customer_id=turn.customer.id)
            if order is None:
                return [SlotSet("order_lookup", "need_id"), SlotSet("order_id", None)]
        elif order is None:
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
        order, number = meant_order(turn)
        if number is None:
            last = latest_order(session=turn.session, customer_id=turn.customer.id)
            return [
                SlotSet("refund_outcome", "need_id"),
                SlotSet("last_order_number", last.number if last else "—"),
            ]
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
        refund = decision.refund or earlier_refund(turn, order, decision)
        return [
            SlotSet("refund_outcome", decision.eligibility.value),
            SlotSet("refund_id", str(refund.id) if refund else None),
            SlotSet("order_id", None),
            *order_slots(order, turn.customer.timezone),
            *follow_through(turn, order, decision.eligibility, refund),
        ]


def earlier_refund(turn: Turn, order: Order, decision: Decision) -> Refund | None:
    """The refund an order already has (asking again finds it)."""
    if decision.eligibility is not Eligibility.ALREADY:
        return None
    return turn.session.scalar(
        select(Refund)
        .where(Refund.order_id == order.id, Refund.status != RefundStatus.REJECTED)
        .order_by(Refund.id.desc())
        .limit(1)
    )


def follow_through(
    turn: Turn, order: Order, eligibility: Eligibility, refund: Refund | None
) -> list[EventType]:
    """Do what the answer promises: mail an approved refund's confirmation with the return
    instructions (or say why not), and put a refund that needs a person in the team's queue."""
    if refund is None:
        return [SlotSet("email_state", None)]
    if eligibility is Eligibility.NEEDS_REVIEW:
        return refund_review(turn)
    approved = refund.status in (RefundStatus.APPROVED, RefundStatus.PAID)
    if eligibility is Eligibility.ALREADY and (not approved or mailed_before(turn, refund)):
        return [SlotSet("email_state", None)]  # nothing new to send: the answer says it exists
    state = mail.queue_refund_confirmation(
        session=turn.session,
        customer=turn.customer,
        refund=refund,
        order=order,
        returns_address=current_settings().returns_address,
    )
    if eligibility is Eligibility.ALREADY and state is not mail.MailState.SENT:
        return [SlotSet("email_state", None)]
    return [SlotSet("email_state", state.value)]


def mailed_before(turn: Turn, refund: Refund) -> bool:
    key = f"refund:{refund.id}"
    return turn.session.scalar(select(OutboundMail.id).where(OutboundMail.idempotency_key == key)) is not None


def refund_review(turn: Turn) -> list[EventType]:
    """A refund above the limit waits for a person: a callback case in the agents' queue."""
    settings, now = current_settings(), utcnow()
    hours = settings.opening_hours()
    handoff, _ = open_handoff(
        session=turn.session,
        customer=turn.customer,
        conversation=turn.conversation,
        reason="refund_review",
        mode=HANDOFF_CALLBACK,
        callback_by=callback_promise(hours=hours, now=now),
        now=now,
    )
    promise = due_phrase(
        handoff.callback_by or callback_promise(hours=hours, now=now), now, turn.customer.timezone
    )
    return [SlotSet("email_state", None), SlotSet("callback_when", promise)]
