"""Living customer knowledge: what the CRM recomputes about a customer when their behaviour changes.

Two kinds of knowledge: the segment (bot/crm/segments.py) and the churn risk with its reasons
(bot/crm/churn.py). The shop's order updates (bot/crm/ingest.py) call `refresh_customers`: for a
batch of orders, pass every customer at once, and it costs a few queries per 500 customers, not
per customer. The scheduler's nightly pass calls `refresh_everybody`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy.orm import Session

from bot.crm import churn, segments
from bot.crm.models import SegmentRun, utcnow


def refresh_customers(
    *, session: Session, customer_ids: Collection[int], now: datetime | None = None
) -> None:
    """Recompute what we know of these customers now (segment, then churn risk)."""
    now = now or utcnow()
    segments.refresh_customers(session=session, customer_ids=customer_ids, now=now, trigger="orders")
    churn.refresh_customers(session=session, customer_ids=customer_ids, now=now)


def refresh_customer(*, session: Session, customer_id: int, now: datetime | None = None) -> None:
    """Recompute what we know of one customer now, after their orders changed."""
    refresh_customers(session=session, customer_ids=[customer_id], now=now)


def refresh_everybody(*, session: Session, now: datetime | None = None) -> SegmentRun | None:
    """The nightly pass over every customer; None when tonight's pass already ran."""
    now = now or utcnow()
    run = segments.refresh_all(session=session, now=now, trigger="nightly")
    if run is not None:  # the segment run's row guards the whole pass: once a day
        churn.refresh_all(session=session, now=now)
    return run
