"""Proactive messages the scheduler triggers: campaigns, delivery checks, win-back."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from sqlalchemy import select

from bot.actions.base import CareLoopAction, CRMAction, Turn
from bot.actions.lookups import customer_order, latest_order, normalise_order_number
from bot.actions.orders import order_slots
from bot.crm import retention
from bot.crm.models import (
    Complaint,
    ComplaintStatus,
    LeaveReason,
    Product,
    Subscription,
    SubscriptionStatus,
    utcnow,
)

NEWS_LOOKBACK = timedelta(days=90)


def news_since(fixed: int, launched: list[str]) -> str:
    """What really changed since the customer left, from the CRM: fixes and new products."""
    parts = []
    if fixed:
        parts.append(f"we fixed the {'issue' if fixed == 1 else f'{fixed} issues'} you reported")
    if launched:
        parts.append(f"we've launched {' and '.join(launched)}")
    if not parts:
        return "nothing big has changed yet, but we'd love to hear what would bring you back."
    return " and ".join(parts) + "."


class ActionPrepareCampaign(CareLoopAction):
    """Count the campaign's buttons so the response shows exactly those (no CRM work needed)."""

    def name(self) -> str:
        return "action_prepare_campaign"

    async def run(self, dispatcher, tracker: Tracker, domain) -> list[EventType]:  # type: ignore[no-untyped-def]
        buttons = [tracker.get_slot(f"campaign_button_{n}") for n in (1, 2)]
        count = sum(1 for b in buttons if b)
        return [SlotSet("campaign_buttons", ("none", "one", "two")[count])]


class ActionPrepareDeliveryCheck(CRMAction):
    """Name the delivered order the check is about (the one sent, else the latest)."""

    def name(self) -> str:
        return "action_prepare_delivery_check"

    def act(self, turn: Turn) -> list[EventType]:
        number = normalise_order_number(turn.entity("order_id"))
        order = customer_order(
            session=turn.session, customer_id=turn.customer.id, number=number
        ) or latest_order(session=turn.session, customer_id=turn.customer.id)
        return order_slots(order, turn.customer.timezone) if order else [SlotSet("order_number", "")]


class ActionPrepareWinBack(CRMAction):
    """Say honestly what changed since they left, and what their segment may be offered."""

    def name(self) -> str:
        return "action_prepare_win_back"

    def act(self, turn: Turn) -> list[EventType]:
        since = self._left_at(turn) or utcnow() - NEWS_LOOKBACK
        fixed = turn.session.scalars(
            select(Complaint).where(
                Complaint.customer_id == turn.customer.id,
                Complaint.status.in_((ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED)),
                Complaint.resolved_at >= since - NEWS_LOOKBACK,
            )
        ).all()
        launched = turn.session.scalars(
            select(Product.name).where(Product.launched_at >= since, Product.active.is_(True)).limit(2)
        ).all()
        return [SlotSet("win_back_news", news_since(len(fixed), list(launched))), *self._offer(turn)]

    @staticmethod
    def _offer(turn: Turn) -> list[EventType]:
        offer = retention.choose_offer(
            session=turn.session, reason=LeaveReason.PRICE, segment=turn.customer.segment
        )
        welcome = f"we'd welcome you with this: {offer.title}." if offer else "we'd be glad to have you."
        return [SlotSet("win_back_offer", welcome)]

    @staticmethod
    def _left_at(turn: Turn):  # type: ignore[no-untyped-def]
        return turn.session.scalar(
            select(Subscription.cancel_requested_at)
            .where(
                Subscription.customer_id == turn.customer.id,
                Subscription.status.in_((SubscriptionStatus.CANCEL_REQUESTED, SubscriptionStatus.CANCELLED)),
            )
            .order_by(Subscription.cancel_requested_at.desc())
        )
