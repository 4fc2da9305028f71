"""Campaign audiences: a small, validated filter language over the CRM."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Text, cast, exists, func, select
from sqlalchemy.orm import Session

from bot.crm.complaints import OPEN_STATUSES
from bot.crm.labels import customer_tier
from bot.crm.models import Channel, ChannelIdentity, Complaint, Customer, Segment, Temperament

PLACEHOLDERS = ("first_name", "last_name", "segment", "plan")


class InvalidAudience(ValueError):
    """An audience or message a marketer entered is not valid; the message says what to fix."""


@dataclass(frozen=True)
class Audience:
    segments: tuple[str, ...] = ()
    temperaments: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    last_contact_days_min: int | None = None  # at least this many days since the last contact
    last_contact_days_max: int | None = None
    churn_risk_min: float | None = None
    has_open_complaint: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Audience:
        """Validate what a marketer entered (admin page or CLI)."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        unknown = set(data) - known
        if unknown:
            raise InvalidAudience(f"unknown audience filter(s): {', '.join(sorted(unknown))}")
        audience = cls(
            segments=_choices(data, "segments", [s.value for s in Segment]),
            temperaments=_choices(data, "temperaments", [t.value for t in Temperament]),
            channels=_choices(data, "channels", [c.value for c in Channel]),
            tags=tuple(str(t)[:40] for t in data.get("tags") or ()),
            last_contact_days_min=_int(data, "last_contact_days_min"),
            last_contact_days_max=_int(data, "last_contact_days_max"),
            churn_risk_min=_float(data, "churn_risk_min"),
            has_open_complaint=data.get("has_open_complaint"),
        )
        if audience.has_open_complaint not in (None, True, False):
            raise InvalidAudience("has_open_complaint must be true, false or empty")
        return audience

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in self.__dict__.items()
            if k != "extra" and v not in ((), None)
        }

    def query(self, now: datetime) -> Select[tuple[int]]:
        """The ids of the customers in this audience, in a stable order."""
        query = select(Customer.id).where(Customer.erased_at.is_(None))
        if self.segments:
            query = query.where(Customer.segment.in_([Segment(s) for s in self.segments]))
        if self.temperaments:
            query = query.where(Customer.temperament.in_([Temperament(t) for t in self.temperaments]))
        if self.channels:
            query = query.where(
                exists().where(
                    ChannelIdentity.customer_id == Customer.id,
                    ChannelIdentity.channel.in_([Channel(c) for c in self.channels]),
                )
            )
        for tag in self.tags:
            # Tags are a JSON list; matching its text form works the same on SQLite and PostgreSQL.
            query = query.where(cast(Customer.tags, Text).contains(f'"{tag}"'))
        if self.last_contact_days_min is not None:
            query = query.where(Customer.last_contact_at <= now - timedelta(days=self.last_contact_days_min))
        if self.last_contact_days_max is not None:
            query = query.where(Customer.last_contact_at >= now - timedelta(days=self.last_contact_days_max))
        if self.churn_risk_min is not None:
            query = query.where(Customer.churn_risk >= self.churn_risk_min)
        if self.has_open_complaint is not None:
            open_case = exists().where(
                Complaint.customer_id == Customer.id, Complaint.status.in_(OPEN_STATUSES)
            )
            query = query.where(open_case if self.has_open_complaint else ~open_case)
        return query.order_by(Customer.id)

    def count(self, *, session: Session, now: datetime) -> int:
        return int(session.scalar(select(func.count()).select_from(self.query(now).subquery())) or 0)


def check_message(message: str) -> None:
    """A campaign message may only use the known placeholders, and must not be empty or huge."""
    if not message.strip():
        raise InvalidAudience("the message is empty")
    if len(message) > 1000:
        raise InvalidAudience("the message is longer than 1,000 characters")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(message) if name is not None}
    except ValueError as error:
        raise InvalidAudience(f"the message has a broken placeholder: {error}") from None
    unknown = fields - set(PLACEHOLDERS)
    if unknown:
        raise InvalidAudience(
            f"unknown placeholder(s) {', '.join('{' + u + '}' for u in sorted(unknown))}; "
            f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )


def render(message: str, customer: Customer, plan: str | None = None) -> str:
    """The message for one customer (placeholders only; nothing else is evaluated)."""
    values = {
        "first_name": customer.first_name or "there",
        "last_name": customer.last_name or "",
        "segment": customer_tier(customer.segment),  # the tier as customers know it, never our code
        "plan": plan or "membership",
    }
    return message.format_map(values)


def _choices(data: dict[str, Any], key: str, allowed: list[str]) -> tuple[str, ...]:
    values = tuple(str(v) for v in data.get(key) or ())
    wrong = [v for v in values if v not in allowed]
    if wrong:
        raise InvalidAudience(f"{key}: {', '.join(wrong)} not one of {', '.join(allowed)}")
    return values


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidAudience(f"{key} must be a whole number of days") from None
    if number < 0:
        raise InvalidAudience(f"{key} cannot be negative")
    return number


def _float(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidAudience(f"{key} must be a number between 0 and 1") from None
    if not 0 <= number <= 1:
        raise InvalidAudience(f"{key} must be between 0 and 1")
    return number
