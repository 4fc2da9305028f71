"""The retention save, action by action: who is leaving, the offer, the answer, the graceful end."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.actions.retention import (
    ActionAcceptRetention,
    ActionDeclineRetention,
    ActionFinishCancellation,
    ActionOfferRetention,
    ActionRecordCancellation,
    ActionStartRetention,
)
from bot.crm.catalogue import seed_catalogue
from bot.crm.models import (
    Customer,
    Delivery,
    Handoff,
    InteractionEvent,
    LeaveReason,
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
    assert second[6:9] == [
        SlotSet("leave_reason", "price"),
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


@pytest.mark.parametrize("segment", [Segment.MVC, Segment.STANDARD])
async def test_exit_answer_is_kept_and_no_person_is_offered_after_the_end(
    crm: Session, segment: Segment
) -> None:
    mara = member(crm, segment=segment)
    tracker = make_tracker(
        "web:mara", intent="give_reason", entities=[{"entity": "leave_reason", "value": "moving"}]
    )
    await run_action(ActionOfferRetention(), tracker)
    await run_action(ActionDeclineRetention(), make_tracker("web:mara", intent="deny"))
    end, _ = await run_action(ActionDeclineRetention(), make_tracker("web:mara", intent="deny"))
    if segment is Segment.MVC:  # a person was offered before the cancellation, and declined
        assert end[6:] == [SlotSet("retention_state", "person")]
        await run_action(ActionRecordCancellation(), make_tracker("web:mara", intent="deny"))
    events, _ = await run_action(
        ActionFinishCancellation(),
        make_tracker("web:mara", text="cheaper shipping", slots={"exit_answer": "cheaper shipping"}),
    )
    assert events == [
        *context(mara),
        SlotSet("offer_human", False),
        SlotSet("exit_answer", None),
        SlotSet("retention_state", None),
    ]
    last = crm.scalars(select(RetentionAttempt).order_by(RetentionAttempt.id.desc())).first()
    assert (
        last is not None
        and last.exit_answer == "cheaper shipping"
        and last.outcome is RetentionOutcome.DECLINED
    )


def interactions(crm: Session, kind: str) -> list[dict[str, object]]:
    crm.expire_all()
    return [
        i.data
        for i in crm.scalars(
            select(InteractionEvent).where(InteractionEvent.kind == kind).order_by(InteractionEvent.id)
        )
    ]


def price_reason(text: str = "it's too expensive") -> Tracker:
    return make_tracker(
        "web:mara", text=text, intent="give_reason", entities=[{"entity": "leave_reason", "value": "price"}]
    )


async def test_a_no_that_says_why_gets_a_second_offer_for_that_reason(crm_both: Session) -> None:
    member(crm_both, segment=Segment.STANDARD)
    await run_action(ActionOfferRetention(), price_reason())
    # "No" with a reason, classified give_reason: the first offer is declined for that reason.
    no_because, _ = await run_action(
        ActionOfferRetention(),
        make_tracker(
            "web:mara",
            text="no, the real problem is the quality",
            intent="give_reason",
            entities=[{"entity": "leave_reason", "value": "quality"}],
        ),
    )
    assert no_because[6:9] == [
        SlotSet("leave_reason", "quality"),
        SlotSet("retention_state", "offer"),
        SlotSet("offer_title", "We fix it first"),
    ]
    assert attempts(crm_both) == [
        ("price", "PRICE-STD-PLAN", "declined"),
        ("quality", "QUALITY-FIX", "pending"),
    ]
    declined = interactions(crm_both, "retention_declined")
    assert [d["because"] for d in declined] == ["quality"]


async def test_a_plain_no_gets_an_offer_of_another_kind_then_the_end(crm_both: Session) -> None:
    mara = member(crm_both, segment=Segment.STANDARD)
    tracker = make_tracker("web:mara", text="I'm moving abroad", intent="give_reason")
    tracker.latest_message["entities"] = [{"entity": "leave_reason", "value": "no_longer_needed"}]
    await run_action(ActionOfferRetention(), tracker)
    second, _ = await run_action(ActionDeclineRetention(), make_tracker("web:mara", text="no", intent="deny"))
    assert second[7:8] == [SlotSet("retention_state", "offer")]
    third, _ = await run_action(ActionDeclineRetention(), make_tracker("web:mara", text="no", intent="deny"))
    assert third == [*context(mara), SlotSet("retention_state", "exhausted"), SlotSet("email_state", "none")]
    assert attempts(crm_both) == [
        ("no_longer_needed", "NEED-PAUSE", "declined"),
        ("no_longer_needed", "NEED-PLAN", "declined"),
    ]
    assert crm_both.scalars(select(Subscription)).one().status is SubscriptionStatus.CANCEL_REQUESTED


async def test_an_offer_accepted_recently_is_not_made_again(crm_both: Session) -> None:
    mara = member(crm_both, segment=Segment.MVC)
    await run_action(ActionOfferRetention(), price_reason())
    await run_action(ActionAcceptRetention(), make_tracker("web:mara", intent="affirm"))

    # The same day, the same customer asks to cancel again: the 30% taken is not offered as new.
    again, _ = await run_action(ActionOfferRetention(), price_reason("still too expensive"))
    assert again[6:9] == [
        SlotSet("leave_reason", "price"),
        SlotSet("retention_state", "offer"),
        SlotSet("offer_title", "Pause for up to 3 months"),
    ]
    # Declined, and nothing else fits: the most valuable customer is offered a person first.
    end, _ = await run_action(ActionDeclineRetention(), make_tracker("web:mara", text="no", intent="deny"))
    assert end == [*context(mara), SlotSet("retention_state", "person")]
    assert attempts(crm_both) == [
        ("price", "PRICE-MVC-30", "accepted"),
        ("price", "PRICE-MVC-PAUSE", "declined"),
    ]
    assert interactions(crm_both, "retention_person_offered") == [{"segment": "MVC"}]
    # The cancellation is not recorded before the customer answers the offer of a person.
    assert crm_both.scalars(select(Subscription)).one().status is SubscriptionStatus.ACTIVE
    assert interactions(crm_both, "cancellation_requested") == []


async def test_an_offer_accepted_long_ago_may_be_made_again(crm_both: Session) -> None:
    member(crm_both, segment=Segment.MVC)
    await run_action(ActionOfferRetention(), price_reason())
    await run_action(ActionAcceptRetention(), make_tracker("web:mara", intent="affirm"))
    taken = crm_both.scalars(select(RetentionAttempt)).one()
    taken.created_at = taken.decided_at = utcnow() - timedelta(days=366)  # past the discount's year
    crm_both.commit()
    await run_action(ActionOfferRetention(), price_reason())
    assert attempts(crm_both) == [("price", "PRICE-MVC-30", "accepted"), ("price", "PRICE-MVC-30", "pending")]


async def test_a_valuable_customer_declining_the_person_has_the_cancellation_recorded(
    crm_both: Session,
) -> None:
    mara = member(crm_both, segment=Segment.MVC)
    await run_action(ActionOfferRetention(), price_reason())
    await run_action(ActionDeclineRetention(), make_tracker("web:mara", text="no", intent="deny"))
    end, _ = await run_action(ActionDeclineRetention(), make_tracker("web:mara", text="no", intent="deny"))
    assert end[6:] == [SlotSet("retention_state", "person")]
    assert crm_both.scalars(select(Subscription)).one().status is SubscriptionStatus.ACTIVE

    events, _ = await run_action(
        ActionRecordCancellation(), make_tracker("web:mara", text="no", intent="deny")
    )
    assert events == [*context(mara), SlotSet("retention_state", "exhausted"), SlotSet("email_state", "none")]
    assert attempts(crm_both) == [
        ("price", "PRICE-MVC-30", "declined"),
        ("price", "PRICE-MVC-PAUSE", "declined"),
    ]
    assert crm_both.scalars(select(Subscription)).one().status is SubscriptionStatus.CANCEL_REQUESTED
    assert len(interactions(crm_both, "cancellation_requested")) == 1


@pytest.mark.parametrize("segment", list(Segment))
@pytest.mark.parametrize("reason", [r.value for r in LeaveReason])
async def test_every_reason_has_a_second_different_offer(crm: Session, segment: Segment, reason: str) -> None:
    """The README promises a second, different offer: the catalogue holds one for every reason and segment."""
    member(crm, segment=segment)
    tracker = make_tracker("web:mara", text="-", intent="give_reason")
    tracker.latest_message["entities"] = [{"entity": "leave_reason", "value": reason}]
    await run_action(ActionOfferRetention(), tracker)
    await run_action(ActionDeclineRetention(), make_tracker("web:mara", text="no", intent="deny"))
    made = crm.scalars(select(RetentionAttempt).order_by(RetentionAttempt.id)).all()
    assert len(made) == 2 and made[0].offer is not None and made[1].offer is not None
    assert made[0].offer.kind is not made[1].offer.kind
