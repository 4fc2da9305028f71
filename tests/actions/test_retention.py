"""The retention save, action by action: who is leaving, the offer, the answer, the graceful end."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.retention import (
    ActionAcceptRetention,
    ActionDeclineRetention,
    ActionFinishCancellation,
    ActionOfferRetention,
    ActionStartRetention,
)
from bot.crm.catalogue import seed_catalogue
from bot.crm.models import (
    Customer,
    Delivery,
    Handoff,
    OutreachKind,
    Product,
    RetentionAttempt,
    RetentionOutcome,
    Segment,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_customer


def member(crm: Session, *, segment: Segment, months: int = 14, plan: str = "PLAN-PLUS") -> Customer:
    seed_catalogue(session=crm, launched_at=utcnow() - timedelta(days=900))
    customer = make_customer(crm, first_name="Mara", web_id="mara", segment=segment)
    product = crm.scalars(select(Product).where(Product.sku == plan)).one()
    crm.add(
        Subscription(
            customer_id=customer.id,
            product_id=product.id,
            status=SubscriptionStatus.ACTIVE,
            monthly_price=product.price,
            started_at=utcnow() - timedelta(days=30 * months + 1),
        )
    )
    crm.commit()
    return customer


def attempts(crm: Session) -> list[tuple[str | None, str | None, str]]:
    crm.expire_all()
    rows = crm.scalars(select(RetentionAttempt).order_by(RetentionAttempt.id)).all()
    return [
        (a.reason.value if a.reason else None, a.offer.code if a.offer else None, a.outcome.value)
        for a in rows
    ]


async def test_the_bot_looks_at_who_is_leaving(crm: Session) -> None:
    mara = member(crm, segment=Segment.MVC, months=14)
    events, _ = await run_action(
        ActionStartRetention(), make_tracker("web:mara", intent="cancel_subscription")
    )
    assert events == [
        *context(mara),
        SlotSet("subscription_state", "active"),
        SlotSet("retention_context", "valued"),
        SlotSet("tenure_months", "14"),
        SlotSet("plan_name", "Bean Club Plus"),
        SlotSet("retention_state", None),
        SlotSet("leave_reason", None),
    ]


async def test_nothing_to_cancel_without_a_membership(crm: Session) -> None:
    stranger = make_customer(crm, web_id="nomember")
    crm.commit()
    events, _ = await run_action(
        ActionStartRetention(), make_tracker("web:nomember", intent="cancel_subscription")
    )
    assert events == [*context(stranger), SlotSet("subscription_state", "none")]


@pytest.mark.parametrize(
    ("segment", "reason", "title", "code"),
    [
        (Segment.MVC, "price", "30% off for 3 months", "PRICE-MVC-30"),
        (Segment.STANDARD, "price", "Switch to a cheaper plan", "PRICE-STD-PLAN"),
        (Segment.BZ, "price", "Switch to a cheaper plan", "PRICE-BZ-PLAN"),
        (Segment.STANDARD, "quality", "We fix it first", "QUALITY-FIX"),
    ],
)
async def test_offer_fits_reason_and_segment(
    crm: Session, segment: Segment, reason: str, title: str, code: str
) -> None:
    mara = member(crm, segment=segment)
    tracker = make_tracker(
        "web:mara",
        text="too expensive",
        intent="give_reason",
        entities=[{"entity": "leave_reason", "value": reason}],
    )
    events, _ = await run_action(ActionOfferRetention(), tracker)
    assert events[:6] == context(mara)
    assert events[6] == SlotSet("leave_reason", reason)
    assert events[7:9] == [SlotSet("retention_state", "offer"), SlotSet("offer_title", title)]
    assert attempts(crm) == [(reason, code, "pending")]


async def test_a_competitor_named_is_the_reason(crm: Session) -> None:
    member(crm, segment=Segment.MVC)
    tracker = make_tracker("web:mara", text="BrewBox is cheaper", intent="give_reason")
    events, _ = await run_action(ActionOfferRetention(), tracker)
    assert SlotSet("leave_reason", "competitor") in events
    assert attempts(crm) == [("competitor", "COMP-PITCH", "pending")]


async def test_accepting_applies_the_offer(crm: Session) -> None:
    mara = member(crm, segment=Segment.STANDARD)
    tracker = make_tracker(
        "web:mara", intent="give_reason", entities=[{"entity": "leave_reason", "value": "price"}]
    )
    await run_action(ActionOfferRetention(), tracker)
    events, _ = await run_action(ActionAcceptRetention(), make_tracker("web:mara", intent="affirm"))
    assert events == [*context(mara), SlotSet("retention_state", None), SlotSet("offer_kind", "cheaper_plan")]
    assert attempts(crm) == [("price", "PRICE-STD-PLAN", "accepted")]
    subscription = crm.scalars(select(Subscription)).one()
    assert (subscription.product.sku, subscription.monthly_price) == ("PLAN-BASIC", Decimal("9.90"))
    assert subscription.status is SubscriptionStatus.ACTIVE


async def test_a_fix_first_offer_brings_in_a_person(crm: Session) -> None:
    member(crm, segment=Segment.STANDARD)
    tracker = make_tracker(
        "web:mara", intent="give_reason", entities=[{"entity": "leave_reason", "value": "service"}]
    )
    await run_action(ActionOfferRetention(), tracker)
    await run_action(ActionAcceptRetention(), make_tracker("web:mara", intent="affirm"))
    handoff = crm.scalars(select(Handoff)).one()
    assert handoff.reason == "retention"


async def test_one_more_different_offer_then_the_no_is_respected(crm: Session) -> None:
    mara = member(crm, segment=Segment.MCC)
    tracker = make_tracker(
        "web:mara", intent="give_reason", entities=[{"entity": "leave_reason", "value": "price"}]
    )
    await run_action(ActionOfferRetention(), tracker)

    second, _ = await run_action(ActionDeclineRetention(), make_tracker("web:mara", intent="deny"))
    assert second[6:8] == [
        SlotSet("retention_state", "offer"),
        SlotSet("offer_title", "Pause for up to 2 months"),
    ]

    final, _ = await run_action(ActionDeclineRetention(), make_tracker("web:mara", intent="deny"))
    # No confirmed address: the confirmation is not mailed, and the answer says so (email_state).
    assert final == [*context(mara), SlotSet("retention_state", "exhausted"), SlotSet("email_state", "none")]
    assert attempts(crm) == [("price", "PRICE-MCC-20", "declined"), ("price", "PRICE-MCC-PAUSE", "declined")]
    subscription = crm.scalars(select(Subscription)).one()
    assert subscription.status is SubscriptionStatus.CANCEL_REQUESTED
    win_back = crm.scalars(select(Delivery).where(Delivery.kind == OutreachKind.WIN_BACK)).one()
    assert win_back.scheduled_for > utcnow() + timedelta(weeks=5)


@pytest.mark.parametrize(("segment", "offered"), [(Segment.MVC, True), (Segment.STANDARD, False)])
async def test_exit_answer_is_kept_and_mvcs_are_offered_a_person(
    crm: Session, segment: Segment, offered: bool
) -> None:
    mara = member(crm, segment=segment)
    tracker = make_tracker(
        "web:mara", intent="give_reason", entities=[{"entity": "leave_reason", "value": "moving"}]
    )
    await run_action(ActionOfferRetention(), tracker)
    await run_action(ActionDeclineRetention(), make_tracker("web:mara", intent="deny"))
    await run_action(ActionDeclineRetention(), make_tracker("web:mara", intent="deny"))
    events, _ = await run_action(
        ActionFinishCancellation(),
        make_tracker("web:mara", text="cheaper shipping", slots={"exit_answer": "cheaper shipping"}),
    )
    assert events == [
        *context(mara),
        SlotSet("offer_human", offered),
        SlotSet("exit_answer", None),
        SlotSet("retention_state", None),
    ]
    last = crm.scalars(select(RetentionAttempt).order_by(RetentionAttempt.id.desc())).first()
    assert (
        last is not None
        and last.exit_answer == "cheaper shipping"
        and last.outcome is RetentionOutcome.DECLINED
    )
