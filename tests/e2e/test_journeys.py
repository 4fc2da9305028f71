"""Each journey end to end: the real Rasa server, the real action server, the real CRM."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.crm.handoffs import callback_words, given_contact
from bot.crm.models import (
    Channel,
    ChannelIdentity,
    Complaint,
    ComplaintStatus,
    Consent,
    ConsentPurpose,
    Conversation,
    Customer,
    Delivery,
    EmailVerification,
    Handoff,
    Order,
    OrderStatus,
    OutreachKind,
    Product,
    Refund,
    RetentionAttempt,
    Segment,
    Subscription,
    SubscriptionStatus,
    Survey,
    utcnow,
)
from tests.e2e.conftest import Stack, texts

pytestmark = pytest.mark.e2e


def seed(stack: Stack, name: str, *, segment: Segment = Segment.STANDARD, member: bool = False) -> int:
    """A customer reachable as `web:e2e-<name>` with one recent delivered order `CL-9xxxxx`."""
    with stack.crm() as crm:
        customer = Customer(
            first_name=name.title(), segment=segment, timezone="Europe/Berlin", email=f"{name}@old.example"
        )
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=f"e2e-{name}"))
        crm.add(customer)
        crm.flush()
        now = utcnow()
        crm.add(
            Order(
                number=f"CL-9{customer.id:05d}",
                customer_id=customer.id,
                status=OrderStatus.DELIVERED,
                total=Decimal("32.00"),
                placed_at=now - timedelta(days=5),
                delivered_at=now - timedelta(days=3),
                carrier="DHL",
                tracking_code="TRK-E2E",
            )
        )
        if member:
            plan = crm.scalars(select(Product).where(Product.sku == "PLAN-PLUS")).one()
            crm.add(
                Subscription(
                    customer_id=customer.id,
                    product_id=plan.id,
                    status=SubscriptionStatus.ACTIVE,
                    monthly_price=plan.price,
                    started_at=now - timedelta(days=400),
                )
            )
        crm.commit()
        return customer.id


def test_complaint_is_acknowledged_collected_filed_and_handed_to_a_person(stack: Stack) -> None:
    cid = seed(stack, "carla")
    sender = "web:e2e-carla"
    first = texts(
        stack.say(sender, "My parcel arrived completely crushed and the mug inside is broken, I'm furious!!")
    )
    assert "sorry" in first.lower()
    assert "Which order" in first
    filed = texts(stack.say(sender, f"CL-9{cid:05d}"))
    with stack.crm() as crm:
        complaint = crm.scalars(select(Complaint).where(Complaint.customer_id == cid)).one()
        assert complaint.order_id is not None and complaint.status is ComplaintStatus.OPEN
        assert complaint.sla_due_at > complaint.created_at
    assert f"#{complaint.id}" in filed and "delivery team" in filed
    stack.agents_seen(utcnow())
    handed = texts(stack.say(sender, "can I talk to a real person please"))
    assert "getting a person" in handed and "the wait is about" in handed
    with stack.crm() as crm:
        handoff = crm.scalars(select(Handoff).where(Handoff.customer_id == cid)).one()
        assert (handoff.reason, handoff.mode) == ("complaint", "live")
    # A person has the conversation now: the bot stays silent, the message is still in the tracker.
    assert stack.say(sender, "hello? are you there?") == []


def test_retention_two_offers_then_the_no_is_respected(stack: Stack) -> None:
    cid = seed(stack, "rolf", member=True)
    sender = "web:e2e-rolf"
    assert (
        "what could we do so that you stay"
        in texts(stack.say(sender, "I want to cancel my membership")).lower()
    )
    first = texts(stack.say(sender, "it's just too expensive"))
    assert "cheaper plan" in first.lower()
    second = texts(stack.say(sender, "no thanks"))
    assert "pause" in second.lower()
    final = texts(stack.say(sender, "no"))
    assert "recorded your cancellation request" in final and "One last question" in final
    assert "Thank you" in texts(stack.say(sender, "the coffee got too pricey for me"))
    with stack.crm() as crm:
        outcomes = [
            a.outcome.value
            for a in crm.scalars(select(RetentionAttempt).where(RetentionAttempt.customer_id == cid))
        ]
        assert outcomes == ["declined", "declined"]
        assert crm.scalars(select(Subscription).where(Subscription.customer_id == cid)).one().status is (
            SubscriptionStatus.CANCEL_REQUESTED
        )
        win_back = crm.scalars(select(Delivery).where(Delivery.customer_id == cid)).one()
        assert win_back.kind is OutreachKind.WIN_BACK


def test_retention_offer_accepted(stack: Stack) -> None:
    cid = seed(stack, "mia", segment=Segment.MVC, member=True)
    sender = "web:e2e-mia"
    stack.say(sender, "please cancel my subscription")
    offer = texts(stack.say(sender, "it costs too much"))
    assert "30% off" in offer
    assert "Thank you for staying" in texts(stack.say(sender, "yes"))
    with stack.crm() as crm:
        assert [
            a.outcome.value
            for a in crm.scalars(select(RetentionAttempt).where(RetentionAttempt.customer_id == cid))
        ] == ["accepted"]


def test_order_status_and_refund(stack: Stack) -> None:
    cid = seed(stack, "otto")
    sender, number = "web:e2e-otto", f"CL-9{cid:05d}"
    assert number in texts(stack.say(sender, "where is my order?"))
    refund = texts(stack.say(sender, f"I want a refund for order {number}"))
    assert "approved" in refund
    with stack.crm() as crm:
        assert crm.scalars(select(Refund).where(Refund.customer_id == cid)).one().amount == Decimal("32.00")
    assert "already has a refund" in texts(stack.say(sender, f"refund {number} please"))


def test_contact_details_and_marketing_consent(stack: Stack) -> None:
    cid = seed(stack, "cleo")
    sender = "web:e2e-cleo"
    changed = texts(stack.say(sender, "please change my email to cleo.new@example.com"))
    assert "cleo.new@example.com" in changed and "cleo@old.example" in changed
    assert "won't get any more offers" in texts(
        stack.say(sender, "stop sending me marketing messages")
    ) or "already" in (texts(stack.say(sender, "unsubscribe me from the newsletter")))
    with stack.crm() as crm:
        # An address typed in chat is only asked to be confirmed: the old one stays until the
        # customer opens the link mailed to the new one (bot/crm/mail.py).
        assert crm.get(Customer, cid).email == "cleo@old.example"  # type: ignore[union-attr]
        asked = crm.scalars(select(EmailVerification).where(EmailVerification.customer_id == cid)).one()
        assert asked.address == "cleo.new@example.com" and asked.confirmed_at is None
        marketing = crm.scalars(
            select(Consent).where(Consent.customer_id == cid, Consent.purpose == ConsentPurpose.MARKETING)
        ).one_or_none()
        assert marketing is None or marketing.granted is False


def test_survey_low_score_opens_recovery(stack: Stack) -> None:
    cid = seed(stack, "sam")
    sender = "web:e2e-sam"
    assert "rate us" in texts(stack.trigger(sender, "EXTERNAL_survey"))
    reply = texts(stack.say(sender, '/rate{"rating": "2"}'))
    with stack.crm() as crm:
        survey = crm.scalars(select(Survey).where(Survey.customer_id == cid)).one()
        case = crm.scalars(select(Complaint).where(Complaint.customer_id == cid)).one()
    assert survey.score == 2 and f"#{case.id}" in reply


def test_checkin_no_reopens_the_case(stack: Stack) -> None:
    cid = seed(stack, "ria")
    sender = "web:e2e-ria"
    with stack.crm() as crm:
        complaint = Complaint(
            customer_id=cid,
            category="delivery",
            severity="low",
            team="logistics",
            status=ComplaintStatus.RESOLVED,
            sla_due_at=utcnow(),
            created_at=utcnow(),
        )
        crm.add(complaint)
        crm.commit()
    asked = texts(stack.trigger(sender, "EXTERNAL_checkin", {"complaint_id": str(complaint.id)}))
    assert "is everything fine now" in asked
    reopened = texts(stack.say(sender, "no, it's still not fixed"))
    assert f"reopened case #{complaint.id}" in reopened and "person" in reopened
    with stack.crm() as crm:
        assert crm.get(Complaint, complaint.id).status is ComplaintStatus.REOPENED  # type: ignore[union-attr]


def test_faq_fallback_and_a_person(stack: Stack) -> None:
    sender = "web:e2e-faq"
    assert "€" in texts(stack.say(sender, "how much does shipping cost?"))
    assert "not sure I understood" in texts(stack.say(sender, "/nlu_fallback"))
    assert "keep misunderstanding" in texts(stack.say(sender, "/nlu_fallback"))
    stack.agents_seen(None)  # the console is closed everywhere: an honest callback, and the bot goes on
    # A guest with no way back is asked for one before anything is promised.
    asked = texts(stack.say(sender, "I want to talk to a human"))
    assert "How should they reach you?" in asked and "get back to you by" not in asked
    callback = texts(stack.say(sender, "sam.berg@example.com"))
    assert "Everyone on our team is busy" in callback and "get back to you by email" in callback
    with stack.crm() as crm:
        mine = select(Handoff).join(Conversation).where(Conversation.sender_id == sender)
        handoff = crm.scalars(mine).one()
        assert handoff.mode == "callback"
        assert given_contact(session=crm, handoff_id=handoff.id) == ("email", "sam.berg@example.com")
        # The time promised is the queue's due time, with its zone named (a guest: the business's).
        due = callback_words(due=handoff.callback_by, customer_zone=None, business_zone="Europe/Berlin")
    assert due.endswith("Berlin time") and due in callback
    assert "€" in texts(stack.say(sender, "how much does shipping cost?"))  # the bot goes on helping
