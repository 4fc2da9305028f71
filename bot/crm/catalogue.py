"""The business's own reference data: products, plans and the retention offer catalogue.

Not demo data: a real installation keeps (and edits) these. `seed_catalogue` adds what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import LeaveReason, Offer, OfferKind, Product, Segment

# sku, name, category, price, is_plan
PRODUCTS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("PLAN-BASIC", "Bean Club Basic", "membership", "9.90", True),
    ("PLAN-PLUS", "Bean Club Plus", "membership", "19.90", True),
    ("PLAN-PREMIUM", "Bean Club Premium", "membership", "34.90", True),
    ("BEAN-HOUSE", "House Blend beans 1 kg", "coffee", "24.00", False),
    ("BEAN-ETHIO", "Ethiopia Yirgacheffe beans 500 g", "coffee", "16.50", False),
    ("BEAN-COLOM", "Colombia Huila beans 500 g", "coffee", "14.90", False),
    ("BEAN-DECAF", "Swiss Water Decaf beans 500 g", "coffee", "15.50", False),
    ("BEAN-ESPR", "Espresso Roast beans 1 kg", "coffee", "26.00", False),
    ("CAPS-ORIG", "Compostable capsules, 50 pack", "coffee", "17.50", False),
    ("MACH-ESPR", "Aurora espresso machine", "machines", "499.00", False),
    ("MACH-DRIP", "Pourline drip brewer", "machines", "129.00", False),
    ("MACH-CAPS", "Nova capsule machine", "machines", "149.00", False),
    ("GRND-BURR", "Stepless burr grinder", "grinders", "189.00", False),
    ("GRND-HAND", "Hand grinder", "grinders", "59.00", False),
    ("KETL-GOOSE", "Gooseneck kettle", "accessories", "69.00", False),
    ("ACC-SCALE", "Brewing scale", "accessories", "39.00", False),
    ("ACC-FILTER", "Paper filters, 100 pack", "accessories", "6.50", False),
    ("ACC-MILK", "Milk frother", "accessories", "79.00", False),
    ("ACC-DESC", "Descaler, 2 doses", "accessories", "12.00", False),
    ("MUG-CERA", "Ceramic mug set of 2", "tableware", "28.00", False),
    ("MUG-TRAVEL", "Insulated travel mug", "tableware", "32.00", False),
    ("GIFT-25", "Gift card 25", "gift cards", "25.00", False),
    ("GIFT-50", "Gift card 50", "gift cards", "50.00", False),
    ("TEA-SENCHA", "Sencha green tea 100 g", "tea", "11.90", False),
)

# code, title, kind, reason, segment (None: any), value, rank, description
OFFERS: tuple[tuple[str, str, OfferKind, LeaveReason, Segment | None, str | None, int, str], ...] = (
    (
        "PRICE-MVC-30",
        "30% off for 3 months",
        OfferKind.DISCOUNT,
        LeaveReason.PRICE,
        Segment.MVC,
        "30",
        1,
        "Thirty percent off your membership for the next three months, applied from your next bill.",
    ),
    (
        "PRICE-MVC-PAUSE",
        "Pause for up to 3 months",
        OfferKind.PAUSE,
        LeaveReason.PRICE,
        Segment.MVC,
        None,
        2,
        "Pause your membership for up to three months at no cost and keep your perks.",
    ),
    (
        "PRICE-MCC-20",
        "20% off for 3 months",
        OfferKind.DISCOUNT,
        LeaveReason.PRICE,
        Segment.MCC,
        "20",
        1,
        "Twenty percent off your membership for the next three months.",
    ),
    (
        "PRICE-MCC-PAUSE",
        "Pause for up to 2 months",
        OfferKind.PAUSE,
        LeaveReason.PRICE,
        Segment.MCC,
        None,
        2,
        "Pause your membership for up to two months at no cost.",
    ),
    (
        "PRICE-STD-PLAN",
        "Switch to a cheaper plan",
        OfferKind.CHEAPER_PLAN,
        LeaveReason.PRICE,
        Segment.STANDARD,
        None,
        1,
        "Move to Bean Club Basic: same beans, fewer extras, a lower monthly price.",
    ),
    (
        "PRICE-STD-PAUSE",
        "Pause for a month",
        OfferKind.PAUSE,
        LeaveReason.PRICE,
        Segment.STANDARD,
        None,
        2,
        "Pause your membership for one month at no cost.",
    ),
    (
        "PRICE-BZ-PLAN",
        "Switch to a cheaper plan",
        OfferKind.CHEAPER_PLAN,
        LeaveReason.PRICE,
        Segment.BZ,
        None,
        1,
        "Move to Bean Club Basic for a lower monthly price.",
    ),
    (
        "PRICE-BZ-PAUSE",
        "Pause for a month",
        OfferKind.PAUSE,
        LeaveReason.PRICE,
        Segment.BZ,
        None,
        2,
        "Pause your membership for one month at no cost.",
    ),
    (
        "QUALITY-FIX",
        "We fix it first",
        OfferKind.FIX_FIRST,
        LeaveReason.QUALITY,
        None,
        None,
        1,
        "We put your open issue first in line and a person follows up with you within a day.",
    ),
    (
        "QUALITY-CALL",
        "A call from our quality team",
        OfferKind.PERSONAL_CALL,
        LeaveReason.QUALITY,
        None,
        None,
        2,
        "Someone from our quality team calls you to make it right.",
    ),
    (
        "SERVICE-FIX",
        "We fix it first",
        OfferKind.FIX_FIRST,
        LeaveReason.SERVICE,
        None,
        None,
        1,
        "We put your open issue first in line and a person follows up with you within a day.",
    ),
    (
        "SERVICE-CALL",
        "A personal contact",
        OfferKind.PERSONAL_CALL,
        LeaveReason.SERVICE,
        None,
        None,
        2,
        "A named person from our team becomes your contact for anything you need.",
    ),
    (
        "COMP-PITCH",
        "What we do better",
        OfferKind.VALUE_PITCH,
        LeaveReason.COMPETITOR,
        None,
        None,
        1,
        "Freshly roasted to order, free returns for 30 days and a real person whenever you want one.",
    ),
    (
        "COMP-MATCH-MVC",
        "We match their price",
        OfferKind.PRICE_MATCH,
        LeaveReason.COMPETITOR,
        Segment.MVC,
        None,
        2,
        "Show us the offer and we match the price for a year.",
    ),
    (
        "COMP-MATCH-MCC",
        "We match their price",
        OfferKind.PRICE_MATCH,
        LeaveReason.COMPETITOR,
        Segment.MCC,
        None,
        2,
        "Show us the offer and we match the price for six months.",
    ),
    (
        "COMP-PLAN",
        "Switch to a cheaper plan",
        OfferKind.CHEAPER_PLAN,
        LeaveReason.COMPETITOR,
        None,
        None,
        3,
        "Move to Bean Club Basic: same beans, fewer extras, a lower monthly price.",
    ),
    (
        "NEED-PAUSE",
        "Pause instead of cancel",
        OfferKind.PAUSE,
        LeaveReason.NO_LONGER_NEEDED,
        None,
        None,
        1,
        "Pause for up to three months instead: nothing to pay, nothing lost, restart with one message.",
    ),
    (
        "NEED-PLAN",
        "A smaller membership",
        OfferKind.CHEAPER_PLAN,
        LeaveReason.NO_LONGER_NEEDED,
        None,
        None,
        2,
        "Keep Bean Club Basic instead: same beans, fewer extras, a lower monthly price.",
    ),
    (
        "MOVING-ADDR",
        "We deliver to your new address",
        OfferKind.VALUE_PITCH,
        LeaveReason.MOVING,
        None,
        None,
        1,
        "We deliver to 30 countries: tell us the new address and your membership moves with you.",
    ),
    (
        "MOVING-PAUSE",
        "Pause while you move",
        OfferKind.PAUSE,
        LeaveReason.MOVING,
        None,
        None,
        2,
        "Pause your membership until you have settled in.",
    ),
    (
        "OTHER-PAUSE",
        "Pause instead of cancel",
        OfferKind.PAUSE,
        LeaveReason.OTHER,
        None,
        None,
        1,
        "Pause for up to three months instead of cancelling.",
    ),
    (
        "OTHER-CALL",
        "A personal contact",
        OfferKind.PERSONAL_CALL,
        LeaveReason.OTHER,
        None,
        None,
        2,
        "A named person from our team calls you to hear what would make it right.",
    ),
)


@dataclass(frozen=True)
class OfferLimit:
    """How often one customer may accept an offer within a period."""

    times: int
    days: int


# An offer accepted recently is not made again as if it were new. Discounts, price matches and a
# cheaper plan cost the most, so they come once a year; a pause once in six months; a fix, a call or
# a word on what we do better once in three. Per kind, so an offer added to the catalogue has one.
LIMIT_BY_KIND: dict[OfferKind, OfferLimit] = {
    OfferKind.DISCOUNT: OfferLimit(times=1, days=365),
    OfferKind.PRICE_MATCH: OfferLimit(times=1, days=365),
    OfferKind.CHEAPER_PLAN: OfferLimit(times=1, days=365),
    OfferKind.PAUSE: OfferLimit(times=1, days=180),
    OfferKind.FIX_FIRST: OfferLimit(times=1, days=90),
    OfferKind.PERSONAL_CALL: OfferLimit(times=1, days=90),
    OfferKind.VALUE_PITCH: OfferLimit(times=1, days=90),
}


def limit_of(offer: Offer) -> OfferLimit:
    """How often one customer may accept this offer, and within how many days."""
    return LIMIT_BY_KIND[offer.kind]


def seed_catalogue(*, session: Session, launched_at: datetime) -> None:
    """Add the products and offers that are missing; existing rows are left as they are."""
    known_skus = set(session.scalars(select(Product.sku)))
    for sku, name, category, price, is_plan in PRODUCTS:
        if sku not in known_skus:
            session.add(
                Product(
                    sku=sku,
                    name=name,
                    category=category,
                    price=Decimal(price),
                    is_plan=is_plan,
                    launched_at=launched_at,
                )
            )
    known_codes = set(session.scalars(select(Offer.code)))
    for code, title, kind, reason, segment, value, rank, description in OFFERS:
        if code not in known_codes:
            session.add(
                Offer(
                    code=code,
                    title=title,
                    kind=kind,
                    reason=reason,
                    segment=segment,
                    value=Decimal(value) if value else None,
                    rank=rank,
                    description=description,
                )
            )
    session.flush()
