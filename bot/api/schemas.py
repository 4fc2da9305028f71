"""What the inbound API accepts: one pydantic model per resource, refusing what it cannot store.

Every text is NFC and free of control characters (a NUL or a lone surrogate would fail in
PostgreSQL, a line break has no place in a name); lengths are the columns' own; times carry a time
zone and are not in the future; money has at most two decimals. Unknown fields are refused, so a
misspelt field is an error rather than silently dropped. Fields left out are left unchanged by an
upsert; `null` clears a field that may be empty.
"""

from __future__ import annotations

import enum
import unicodedata
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from bot.crm import addresses

MAX_BATCH = 1000
MAX_LINES = 500
# A shop's clock may run a little ahead of ours; further ahead, an event would freeze the record
# against every real update that follows (an older event never overrides a newer one).
CLOCK_SKEW = timedelta(minutes=5)
_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")  # controls, format, surrogates, ...
# Joiners are format characters that scripts (Persian, Indic) and emoji sequences need; the rest of
# that category (bidirectional overrides that make `exe.txt` read `txt.exe`, BOMs) are refused.
_JOINERS = "\u200c\u200d"


def _refused(ch: str) -> bool:
    return ch not in _JOINERS and unicodedata.category(ch) in _REFUSED_CATEGORIES


def _one_line(value: str) -> str:
    """NFC text without control, format or unassigned characters and without outer spaces."""
    value = unicodedata.normalize("NFC", value).strip()
    bad = next((ch for ch in value if _refused(ch)), None)
    if bad is not None:
        raise ValueError(f"contains a control or invisible character (U+{ord(bad):04X})")
    if not value:
        raise ValueError("is empty")
    return value


def _multi_line(value: str) -> str:
    """Like `_one_line`, but line breaks and tabs are kept (a description)."""
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").strip()
    bad = next((ch for ch in value if ch not in "\n\t" and _refused(ch)), None)
    if bad is not None:
        raise ValueError(f"contains a control or invisible character (U+{ord(bad):04X})")
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a time zone of the IANA database, e.g. Europe/Berlin") from None
    return value


def _past(value: datetime) -> datetime:
    value = value.astimezone(timezone.utc)
    if value > datetime.now(timezone.utc) + CLOCK_SKEW:
        raise ValueError("is in the future")
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _birthday(value: date) -> date:
    if not date(1900, 1, 1) <= value <= date.today():
        raise ValueError("is not a plausible birthday (1900 to today)")
    return value


def Text(max_length: int) -> Any:  # noqa: N802 - reads as a type in the models
    return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(_one_line)]


Printable = r"^[\x21-\x7e]+$"  # ASCII without spaces: ids, SKUs, tracking codes
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=Printable)]
Occurred = Annotated[AwareDatetime, AfterValidator(_past)]
When = Annotated[AwareDatetime, AfterValidator(_utc)]
Money = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    AfterValidator(_one_line),
]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9][0-9 ()./-]{3,30}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_zone)]
Birthday = Annotated[date, AfterValidator(_birthday)]
ConsentSource = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,39}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def given(self, *names: str) -> dict[str, Any]:
        """The named fields the payload carried (a left-out field is left unchanged)."""
        return {name: getattr(self, name) for name in names if name in self.model_fields_set}


class ConsentIn(_In):
    """The customer's marketing consent as the shop recorded it."""

    granted: StrictBool
    source: ConsentSource = Field(description="where it was given, e.g. checkout, newsletter_form")
    at: Occurred | None = Field(None, description="when; the event's occurred_at when left out")


class AddressIn(_In):
    """The delivery address, checked as one given in chat is (bot/crm/addresses.py)."""

    line1: Text(100)
    line2: Text(100) | None = None
    postal_code: Text(16)
    city: Text(80)
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 code of a country the shop delivers to, e.g. DE"
    )

    @model_validator(mode="after")
    def _deliverable(self) -> AddressIn:
        try:
            addresses.check_parts(**self.model_dump())
        except addresses.AddressRefused as refused:
            raise ValueError(addresses.PROBLEM_SAID[refused.problem]) from None
        return self

    def checked(self) -> addresses.PostalAddress:
        return addresses.check_parts(**self.model_dump())


class CustomerIn(_In):
    external_id: ExternalId
    occurred_at: Occurred
    first_name: Text(80) | None = None
    last_name: Text(80) | None = None
    email: Email | None = None
    phone: Phone | None = None
    language: Language = "en"
    timezone: TimeZone = "UTC"
    birthday: Birthday | None = None
    marketing_consent: ConsentIn | None = None
    address: AddressIn | None = Field(None, description="the delivery address; null clears it")


class ProductIn(_In):
    external_id: ExternalId
    occurred_at: Occurred
    sku: Annotated[str, StringConstraints(max_length=32, pattern=Printable)] | None = Field(
        None, description="defaults to external_id"
    )
    name: Text(120) | None = None
    category: Text(60) = "general"
    price: Money | None = None
    is_plan: StrictBool = False
    active: StrictBool = True
    description: Annotated[str, StringConstraints(max_length=4000), AfterValidator(_multi_line)] | None = None


class OrderEvent(str, enum.Enum):
    PLACED = "placed"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURNED = "returned"


class OrderLineIn(_In):
    product_external_id: ExternalId
    quantity: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1
    unit_price: Money


class OrderIn(_In):
    external_id: ExternalId
    occurred_at: Occurred
    status: OrderEvent
    customer_external_id: ExternalId | None = None
    number: Annotated[str, StringConstraints(max_length=20, pattern=Printable)] | None = Field(
        None, description="what the customer sees on the invoice; required for a new order"
    )
    total: Money | None = Field(None, description="the sum of the lines when left out")
    placed_at: Occurred | None = None
    expected_at: When | None = None
    carrier: Text(40) | None = None
    tracking_code: Annotated[str, StringConstraints(max_length=40, pattern=Printable)] | None = None
    lines: Annotated[list[OrderLineIn], Field(max_length=MAX_LINES)] | None = None


class SubscriptionEvent(str, enum.Enum):
    STARTED = "started"
    RENEWED = "renewed"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class SubscriptionIn(_In):
    external_id: ExternalId
    occurred_at: Occurred
    event: SubscriptionEvent
    customer_external_id: ExternalId | None = None
    product_external_id: ExternalId | None = None
    monthly_price: Money | None = Field(None, description="the plan's price when left out")


class RefundState(str, enum.Enum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"


class RefundIn(_In):
    external_id: ExternalId
    occurred_at: Occurred
    status: RefundState
    order_external_id: ExternalId | None = None
    amount: Money | None = None
    reason: Text(200) | None = None


RESOURCES: dict[str, type[_In]] = {
    "customer": CustomerIn,
    "product": ProductIn,
    "order": OrderIn,
    "subscription": SubscriptionIn,
    "refund": RefundIn,
}
ResourceName = Literal["customer", "product", "order", "subscription", "refund"]


class BatchItemIn(BaseModel):
    """One record of a batch; its `data` is validated on its own, so a bad one fails alone."""

    model_config = ConfigDict(extra="forbid")

    type: ResourceName
    data: dict[str, Any]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH)]
