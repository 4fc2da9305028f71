"""Disengagement caught early, with an injected clock on SQLite and PostgreSQL: who is drifting and
why, a person first for MVC and MCC, the worded check-in through the policy gate for the others,
exactly once per episode, and every episode ended when the customer comes back or lapses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import drift
from bot.crm.consent import set_consent
from bot.crm.models import (
    CaseEvent,
    CaseEventKind,
    Channel,
    ChannelIdentity,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryStatus,
    DriftEpisode,
    OutreachKind,
    Product,
    Segment,
    Subscription,
    SubscriptionStatus,
    Survey,
)
from bot.crm.queries import log_interaction
from scheduler.checkins import drift as drift_step
from scheduler.policy import Policy
from scheduler.sender import HttpGateway, Sender
from tests.factories import NOW, make_complaint, make_customer, make_order
from tests.scheduler.standin_gateway import StandInGateway

JOINED = NOW - timedelta(days=700)
DAY = timedelta(days=1)


def customer(session: Session, segment: Segment, **fields: Any) -> Customer:
    return make_customer(session, segment=segment, created_at=JOINED, timezone="Europe/Berlin", **fields)


def monthly_buyer(session: Session, segment: Segment, *, last_order_days_ago: float) -> Customer:
    """Ordered every 30 days, five times, the latest `last_order_days_ago` days ago."""
    buyer = customer(session, segment, last_contact_at=NOW - timedelta(days=last_order_days_ago))
    for n in range(5):
        make_order(session, buyer, days_ago=last_order_days_ago + 30 * n)
    return buyer


def episodes(session: Session, who: Customer) -> list[DriftEpisode]:
    return list(
        session.scalars(
            select(DriftEpisode).where(DriftEpisode.customer_id == who.id).order_by(DriftEpisode.id)
        )
    )


def silence_deliveries(session: Session, who: Customer) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery).where(Delivery.customer_id == who.id, Delivery.kind == OutreachKind.SILENCE)
        )
    )


# ----- who is drifting, and why -----


def test_overdue_against_their_own_rhythm_by_a_clear_margin(session: Session) -> None:
    on_time = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=40)  # 1.3× their rhythm
    overdue = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=65)  # past 2× their rhythm
    gone = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=200)  # long gone, not drifting

    found = {d.customer_id: d for d in drift.drifting(session=session, now=NOW)}

    assert set(found) & {on_time.id, overdue.id, gone.id} == {overdue.id}
    assert found[overdue.id].reason == "lapsed_buyer"
    assert found[overdue.id].reasons == [
        {"factor": "overdue", "text": "no order for 65 days, usually every 30"}
    ]


def test_without_a_rhythm_silence_past_the_segments_threshold(session: Session) -> None:
    quiet_mcc = customer(session, Segment.MCC, last_contact_at=NOW - 25 * DAY)  # MCC: 21 days
    quiet_std = customer(session, Segment.STANDARD, last_contact_at=NOW - 25 * DAY)  # standard: 60
    for who in (quiet_mcc, quiet_std):
        make_order(session, who, days_ago=25)

    found = {d.customer_id: d for d in drift.drifting(session=session, now=NOW)}

    assert quiet_mcc.id in found and quiet_std.id not in found
    assert found[quiet_mcc.id].reasons[0]["factor"] == "silent"


def test_two_messages_from_us_in_a_row_unanswered(session: Session) -> None:
    ignoring = customer(session, Segment.STANDARD, last_contact_at=NOW - 20 * DAY)
    answering = customer(session, Segment.STANDARD, last_contact_at=NOW - 20 * DAY)
    for who in (ignoring, answering):
        make_order(session, who, days_ago=20)
        for n, days_ago in enumerate((15, 8)):
            session.add(
                Delivery(
                    idempotency_key=f"campaign:{who.id}:{n}",
                    kind=OutreachKind.CAMPAIGN,
                    customer_id=who.id,
                    status=DeliveryStatus.SENT,
                    scheduled_for=NOW - days_ago * DAY,
                    sent_at=NOW - days_ago * DAY,
                    replied_at=NOW - (days_ago - 1) * DAY if who is answering else None,
                )
            )
    session.flush()

    found = {d.customer_id: d for d in drift.drifting(session=session, now=NOW)}

    assert ignoring.id in found and answering.id not in found
    assert {"factor": "ignored_outreach", "text": "our last 2 messages unanswered"} in found[
        ignoring.id
    ].reasons
    assert found[ignoring.id].reason == "lapsed_buyer"


def test_the_check_in_names_a_member_who_stopped_using_the_membership(session: Session) -> None:
    member = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=70)
    plan = Product(sku="PLAN-DRIFT", name="Plan", category="plans", price=9, is_plan=True)
    session.add(plan)
    session.flush()
    session.add(
        Subscription(
            customer_id=member.id,
            product_id=plan.id,
            status=SubscriptionStatus.ACTIVE,
            monthly_price=9,
            started_at=JOINED,
        )
    )
    session.flush()

    (found,) = [d for d in drift.drifting(session=session, now=NOW) if d.customer_id == member.id]

    assert found.reason == "idle_member"


def test_the_check_in_names_a_last_case_that_ended_badly(session: Session) -> None:
    rated_low = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=70)
    reopened = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=70)
    fine = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=70)
    low_case = make_complaint(session, rated_low, days_ago=80)
    session.add(
        Survey(customer_id=rated_low.id, complaint_id=low_case.id, score=2, created_at=NOW - 75 * DAY)
    )
    again = make_complaint(session, reopened, days_ago=80)
    session.add(
        CaseEvent(
            complaint_id=again.id, kind=CaseEventKind.REOPENED, actor="customer", created_at=NOW - 70 * DAY
        )
    )
    good_case = make_complaint(session, fine, days_ago=80)
    session.add(Survey(customer_id=fine.id, complaint_id=good_case.id, score=5, created_at=NOW - 75 * DAY))
    session.flush()

    found = {d.customer_id: d for d in drift.drifting(session=session, now=NOW)}

    assert found[rated_low.id].reason == "bad_case"
    assert {"factor": "bad_case", "text": f"last case #{low_case.id} rated 2/5"} in found[
        rated_low.id
    ].reasons
    assert found[reopened.id].reason == "bad_case"
    assert found[fine.id].reason == "lapsed_buyer"


def test_every_reason_has_its_own_wording_in_the_domain() -> None:
    domain = YAML(typ="safe").load((Path(__file__).resolve().parents[2] / "domain.yml").read_text())
    assert set(domain["slots"]["drift_reason"]["values"]) == set(drift.REASON_WORDS)
    worded = {
        condition["value"]
        for variant in domain["responses"]["utter_silence_checkin"]
        for condition in variant.get("condition", [])
        if condition["name"] == "drift_reason"
    }
    assert set(drift.REASON_WORDS) - {"quiet"} <= worded


# ----- what is done, once per episode -----


def test_a_drifting_mvc_gets_a_task_for_a_person_not_a_bot_message(session: Session) -> None:
    mvc = monthly_buyer(session, Segment.MVC, last_order_days_ago=65)

    first = drift_step(session=session, now=NOW)
    second = drift_step(session=session, now=NOW + DAY)
    week_later = drift_step(session=session, now=NOW + 7 * DAY)

    assert first["drift_task"] >= 1 and second["drift_task"] == week_later["drift_task"] == 0
    (episode,) = episodes(session, mvc)
    assert (episode.action, episode.segment, episode.reason) == ("task", Segment.MVC, "lapsed_buyer")
    assert episode.task_done_at is None and episode.delivery_id is None
    assert silence_deliveries(session, mvc) == []


def test_a_drifting_standard_customer_gets_the_worded_check_in_once(session: Session) -> None:
    standard = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=65)
    below_zero = monthly_buyer(session, Segment.BZ, last_order_days_ago=65)

    drift_step(session=session, now=NOW)
    drift_step(session=session, now=NOW + DAY)

    (episode,) = episodes(session, standard)
    (delivery,) = silence_deliveries(session, standard)
    assert episode.action == "checkin" and episode.delivery_id == delivery.id
    assert delivery.payload == {"drift_reason": "lapsed_buyer"}
    assert delivery.status is DeliveryStatus.QUEUED
    (not_chased,) = episodes(session, below_zero)
    assert not_chased.action == "not_chased" and silence_deliveries(session, below_zero) == []


def test_the_check_in_goes_through_the_policy_gate(session: Session) -> None:
    """The sender decides the episode's check-in like every proactive message: sent to a customer
    who allows service messages, skipped (and the reason kept) for one who does not."""
    allowed = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=65)
    refused = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=65)
    for n, who in enumerate((allowed, refused)):
        who.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=f"drift-web-{who.id}-{n}"))
        set_consent(
            session=session,
            customer=who,
            purpose=ConsentPurpose.SERVICE,
            granted=who is allowed,
            source="test",
            now=NOW - 400 * DAY,
        )
    drift_step(session=session, now=NOW)
    session.commit()  # to the test's savepoint: the sender's sessions join the same transaction

    factory = sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")
    with StandInGateway() as gateway:
        sender = Sender(
            factory,
            HttpGateway(gateway.url, gateway.token),
            Policy.parse("00:00-00:00", weekly_cap=3),
            clock=lambda: NOW,
            rate_per_second=0,
        )
        for who in (allowed, refused):
            sender.process(silence_deliveries(session, who)[0].id)
        sent = [call for call in gateway.calls if call["customer_id"] == allowed.id]
        assert [c for c in gateway.calls if c["customer_id"] == refused.id] == []

    assert sent and sent[0]["intent"] == "EXTERNAL_silence"
    assert sent[0]["entities"] == {"drift_reason": "lapsed_buyer"}
    session.expire_all()
    (to_allowed,) = silence_deliveries(session, allowed)
    (to_refused,) = silence_deliveries(session, refused)
    assert to_allowed.status is DeliveryStatus.SENT
    assert to_refused.status is DeliveryStatus.SKIPPED and to_refused.skip_reason == "no_consent"
    assert episodes(session, refused)[0].delivery_id == to_refused.id  # what the gate did, on record


# ----- our own messages, and the end of an episode -----


def test_our_own_check_in_does_not_reset_the_customers_last_contact(session: Session) -> None:
    standard = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=65)
    last_contact = standard.last_contact_at
    drift_step(session=session, now=NOW)
    (delivery,) = silence_deliveries(session, standard)
    delivery.status, delivery.sent_at = DeliveryStatus.SENT, NOW + timedelta(hours=1)
    # The bot's turn for the check-in logs what it observed, as bot/actions/base.observe does.
    log_interaction(
        session=session,
        customer=standard,
        kind="behaviour",
        intent="EXTERNAL_silence",
        now=NOW + timedelta(hours=1),
    )

    assert standard.last_contact_at == last_contact
    drift_step(session=session, now=NOW + 5 * DAY)
    (episode,) = episodes(session, standard)
    assert episode.ended_at is None  # our message is not their coming back
    assert len(silence_deliveries(session, standard)) == 1


def test_the_episode_ends_when_they_order_or_write_within_30_days(session: Session) -> None:
    orders = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=65)
    writes = monthly_buyer(session, Segment.MVC, last_order_days_ago=65)
    drift_step(session=session, now=NOW)
    make_order(session, orders, days_ago=-10)  # ten days after the episode began
    log_interaction(session=session, customer=writes, kind="behaviour", intent="greet", now=NOW + 12 * DAY)

    counts = drift_step(session=session, now=NOW + 14 * DAY)

    assert counts["came_back"] >= 2
    (ordered,) = episodes(session, orders)
    assert (ordered.outcome, ordered.came_back_by, ordered.ended_at) == ("came_back", "order", NOW + 10 * DAY)
    (wrote,) = episodes(session, writes)
    assert (wrote.outcome, wrote.came_back_by, wrote.ended_at) == ("came_back", "message", NOW + 12 * DAY)


def test_the_episode_lapses_after_30_days_without_a_word_and_is_not_reopened(session: Session) -> None:
    silent = monthly_buyer(session, Segment.STANDARD, last_order_days_ago=65)
    drift_step(session=session, now=NOW)

    assert drift_step(session=session, now=NOW + 29 * DAY)["lapsed"] == 0
    late = drift_step(session=session, now=NOW + 31 * DAY)
    make_order(session, silent, days_ago=-40)  # too late to count for this episode

    assert late["lapsed"] >= 1
    (episode,) = episodes(session, silent)
    assert (episode.outcome, episode.ended_at) == ("lapsed", NOW + 30 * DAY)
    drift_step(session=session, now=NOW + 45 * DAY)
    assert episodes(session, silent)[0].outcome == "lapsed"
    assert len(silence_deliveries(session, silent)) == 1
