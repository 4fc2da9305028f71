"""Proactive messages: campaign buttons, the delivery check, an honest win-back."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk.events import SlotSet
from sqlalchemy.orm import Session

from bot.actions.outreach import (
    ActionPrepareCampaign,
    ActionPrepareDeliveryCheck,
    ActionPrepareWinBack,
    news_since,
)
from bot.crm.catalogue import seed_catalogue
from bot.crm.models import ComplaintStatus, Segment, Subscription, SubscriptionStatus, utcnow
from tests.actions.conftest import context, make_tracker, run_action
from tests.factories import make_complaint, make_customer, make_order


async def test_campaign_buttons_are_counted() -> None:
    none, _ = await run_action(ActionPrepareCampaign(), make_tracker(slots={"campaign_text": "Hi"}))
    two, _ = await run_action(
        ActionPrepareCampaign(),
        make_tracker(slots={"campaign_button_1": "Yes", "campaign_button_2": "Later"}),
    )
    assert (none, two) == ([SlotSet("campaign_buttons", "none")], [SlotSet("campaign_buttons", "two")])


async def test_delivery_check_names_the_order(crm: Session) -> None:
    customer = make_customer(crm, web_id="dc")
    make_order(crm, customer, number="CL-424242", delivered_at=utcnow() - timedelta(days=1))
    crm.commit()
    tracker = make_tracker(
        "web:dc", intent="EXTERNAL_delivery_check", entities=[{"entity": "order_id", "value": "CL-424242"}]
    )
    events, _ = await run_action(ActionPrepareDeliveryCheck(), tracker)
    assert SlotSet("order_number", "CL-424242") in events and events[:6] == context(customer)


def test_win_back_news_says_only_what_really_changed() -> None:
    assert (
        news_since(0, []) == "nothing big has changed yet, but we'd love to hear what would bring you back."
    )
    assert news_since(1, []) == "we fixed the issue you reported."
    assert news_since(2, ["Sencha green tea 100 g"]) == (
        "we fixed the 2 issues you reported and we've launched Sencha green tea 100 g."
    )


async def test_win_back_counts_fixes_and_offers_what_the_segment_allows(crm: Session) -> None:
    seed_catalogue(session=crm, launched_at=utcnow() - timedelta(days=900))
    customer = make_customer(crm, web_id="wb", segment=Segment.MVC)
    crm.add(
        Subscription(
            customer_id=customer.id,
            product_id=1,
            status=SubscriptionStatus.CANCEL_REQUESTED,
            monthly_price=9.9,
            started_at=utcnow() - timedelta(days=300),
            cancel_requested_at=utcnow() - timedelta(days=40),
        )
    )
    make_complaint(
        crm, customer, status=ComplaintStatus.CLOSED, resolved_at=utcnow() - timedelta(days=20), days_ago=25
    )
    crm.commit()
    events, _ = await run_action(ActionPrepareWinBack(), make_tracker("web:wb", intent="EXTERNAL_win_back"))
    assert events[6:] == [
        SlotSet("win_back_news", "we fixed the issue you reported."),
        SlotSet("win_back_offer", "we'd welcome you with this: 30% off for 3 months."),
    ]
