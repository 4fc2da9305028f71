"""Living customer knowledge: what the CRM recomputes about a customer when their behaviour changes.

One entry point for the places where behaviour changes (the shop's order updates) and one for the
scheduler's nightly pass, so that each caller makes one call and new kinds of knowledge join here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.crm import segments
from bot.crm.models import SegmentRun, utcnow


def refresh_customer(*, session: Session, customer_id: int, now: datetime | None = None) -> None:
    """Recompute what we know of one customer after their orders changed."""
    segments.refresh_customer(session=session, customer_id=customer_id, now=now or utcnow(), trigger="orders")


def refresh_everybody(*, session: Session, now: datetime | None = None) -> SegmentRun | None:
    """The nightly pass over every customer; None when tonight's pass already ran."""
    return segments.refresh_all(session=session, now=now or utcnow(), trigger="nightly")
