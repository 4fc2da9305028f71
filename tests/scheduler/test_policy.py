"""The policy gate: consent, reachability, frequency cap, and quiet hours in the customer's zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from bot.crm.consent import set_consent
from bot.crm.models import (
    Channel,
    ChannelIdentity,
    ConsentPurpose,
    Conversation,
    ConversationStatus,
    Delivery,
    DeliveryStatus,
    OutreachKind,
)
from scheduler.policy import Outcome, Policy, decide, quiet_until
from tests.factories import make_customer

UTC = timezone.utc
POLICY = Policy(time(21, 0), time(9, 0), weekly_cap=3)
NOON_UTC = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        (datetime(2026, 6, 15, 12, 0, tzinfo=UTC), "Europe/Berlin", None),  # 14:00 in Berlin
        (datetime(2026, 6, 15, 20, 30, tzinfo=UTC), "Europe/Berlin", datetime(2026, 6, 16, 7, 0, tzinfo=UTC)),
        (
            datetime(2026, 6, 15, 2, 0, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 6, 15, 13, 0, tzinfo=UTC),
        ),
        (
            datetime(2026, 6, 15, 12, 0, tzinfo=UTC),
            "Asia/Tokyo",
            datetime(2026, 6, 16, 0, 0, tzinfo=UTC),
        ),  # 21:00
        (
            datetime(2026, 6, 15, 23, 59, tzinfo=UTC),
            "Asia/Tokyo",
            datetime(2026, 6, 16, 0, 0, tzinfo=UTC),
        ),  # 08:59
        # Spring forward in Berlin (29 March 2026, 02:00 → 03:00): 09:00 that morning is 07:00 UTC.
        (datetime(2026, 3, 28, 22, 30, tzinfo=UTC), "Europe/Berlin", datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        # Fall back in New York (1 November 2026): 09:00 EST is 14:00 UTC.
        (
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 11, 1, 14, 0, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_delay_to_local_morning(now: datetime, zone: str, expected: datetime | None) -> None:
    assert quiet_until(now, ZoneInfo(zone), POLICY) == expected


def test_daytime_quiet_window_and_bad_settings() -> None:
    lunch = Policy(time(12, 0), time(13, 0))
    assert quiet_until(datetime(2026, 6, 15, 12, 30, tzinfo=UTC), ZoneInfo("UTC"), lunch) == datetime(
        2026, 6, 15, 13, 0, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 6, 15, 13, 0, tzinfo=UTC), ZoneInfo("UTC"), lunch) is None
    assert Policy.parse("22:30-07:15", 2) == Policy(time(22, 30), time(7, 15), 2)
    with pytest.raises(ValueError, match="OUTREACH_QUIET_HOURS"):
        Policy.parse("late-early", 3)


def reachable_customer(session: Session, **fields):  # type: ignore[no-untyped-def]
    customer = make_customer(session, **{"timezone": "Europe/London", **fields})
    session.add(ChannelIdentity(customer_id=customer.id, channel=Channel.WEB, external_id=f"p-{customer.id}"))
    session.flush()
    return customer


def test_marketing_needs_consent_and_service_does_not_unless_opted_out(session: Session) -> None:
    customer = reachable_customer(session)
    assert decide(
        session=session, customer=customer, kind=OutreachKind.CAMPAIGN, now=NOON_UTC, policy=POLICY
    ).reason == ("no_consent")
    assert decide(
        session=session, customer=customer, kind=OutreachKind.SILENCE, now=NOON_UTC, policy=POLICY
    ).outcome is (Outcome.SEND)
    set_consent(
        session=session, customer=customer, purpose=ConsentPurpose.MARKETING, granted=True, source="t"
    )
    assert decide(
        session=session, customer=customer, kind=OutreachKind.CAMPAIGN, now=NOON_UTC, policy=POLICY
    ).outcome is (Outcome.SEND)
    set_consent(session=session, customer=customer, purpose=ConsentPurpose.SERVICE, granted=False, source="t")
    verdict = decide(
        session=session, customer=customer, kind=OutreachKind.DELIVERY_CHECK, now=NOON_UTC, policy=POLICY
    )
    assert verdict.reason == "no_consent"


def test_unreachable_and_capped_customers_are_skipped(session: Session) -> None:
    nowhere = make_customer(session)  # no channel identity at all
    assert decide(
        session=session, customer=nowhere, kind=OutreachKind.SILENCE, now=NOON_UTC, policy=POLICY
    ).reason == ("unreachable")
    busy = reachable_customer(session)
    for n in range(3):
        session.add(
            Delivery(
                idempotency_key=f"cap-{busy.id}-{n}",
                kind=OutreachKind.SILENCE,
                customer_id=busy.id,
                status=DeliveryStatus.SENT,
                sent_at=NOON_UTC - timedelta(days=n * 2 + 1),
            )
        )
    session.flush()
    assert decide(
        session=session, customer=busy, kind=OutreachKind.SILENCE, now=NOON_UTC, policy=POLICY
    ).reason == ("frequency_cap")
    # A revisit of their own case is not "reaching out" and is not capped.
    assert (
        decide(
            session=session, customer=busy, kind=OutreachKind.COMPLAINT_FOLLOWUP, now=NOON_UTC, policy=POLICY
        ).outcome
        is Outcome.SEND
    )
    # Seven days later the oldest counts no more.
    later = NOON_UTC + timedelta(days=3)
    assert decide(
        session=session, customer=busy, kind=OutreachKind.SILENCE, now=later, policy=POLICY
    ).outcome is (Outcome.SEND)


def test_quiet_hours_delay_never_drop(session: Session) -> None:
    customer = reachable_customer(session, timezone="Australia/Sydney")
    verdict = decide(
        session=session, customer=customer, kind=OutreachKind.SILENCE, now=NOON_UTC, policy=POLICY
    )
    assert verdict.outcome is Outcome.DELAY and verdict.until == datetime(2026, 6, 15, 23, 0, tzinfo=UTC)


def test_a_chat_with_a_person_is_not_interrupted(session: Session) -> None:
    customer = reachable_customer(session, timezone="Europe/Berlin")
    chat = Conversation(sender_id="web:with-ana", customer_id=customer.id, channel=Channel.WEB)
    session.add(chat)
    session.flush()
    assert decide(
        session=session, customer=customer, kind=OutreachKind.SILENCE, now=NOON_UTC, policy=POLICY
    ).outcome is (Outcome.SEND)
    chat.status = ConversationStatus.HANDED_OFF
    verdict = decide(
        session=session, customer=customer, kind=OutreachKind.SILENCE, now=NOON_UTC, policy=POLICY
    )
    assert (verdict.outcome, verdict.reason) == (Outcome.DELAY, "with_a_person")
    assert verdict.until == NOON_UTC + timedelta(minutes=30)
