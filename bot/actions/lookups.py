"""Finding the order a customer means, without revealing anyone else's."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.crm.models import Order
from bot.nlp.analysis import ORDER_RE

NO_ORDER_WORDS = ("no order", "not about an order", "none", "no", "nope", "not an order", "n/a")
# A shop's own order numbers and ids come in any shape (`#10234`, `A-5521`, `ord_77`); a word with a
# digit in it may be one. Only the customer's own orders are searched, so a guess reveals nothing.
SHOP_WORD_RE = re.compile(r"#?[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?")
# A word the customer names as an order's: after `#`, or after "order", "number", "no." or "nr".
NAMED_RE = re.compile(
    r"(#[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]|\b(?:order|number|no\.?|nr\.?)\s*[:#]?\s*"
    r"(?=[A-Za-z._/-]*\d)[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9])",
    re.IGNORECASE,
)
MAX_WORDS = 20


def normalise_order_number(text: str | None) -> str | None:
    """`cl 104233`, `CL104233` and `CL-104233` all mean `CL-104233`."""
    match = ORDER_RE.search(text or "")
    return f"CL-{match.group(1)}" if match else None


def customer_order(*, session: Session, customer_id: int, number: str | None) -> Order | None:
    """The customer's own order with this number; someone else's order is never returned."""
    if not number:
        return None
    return session.scalar(select(Order).where(Order.number == number, Order.customer_id == customer_id))


def shop_number_words(text: str) -> list[str]:
    """The words of `text` that may be a shop's order number or id (they hold a digit), lower case,
    each with and without a leading `#` (shops print `#10234`, customers write either), in the
    order written."""
    words: list[str] = []
    for word in SHOP_WORD_RE.findall(text):
        if any(ch.isdigit() for ch in word):
            bare = word.lstrip("#").lower()
            words += [w for w in (word.lower(), bare, f"#{bare}") if w not in words]
    return words[: 3 * MAX_WORDS]


def shop_order(*, session: Session, customer_id: int, text: str) -> Order | None:
    """The customer's own order whose shop number or shop id (external_id) is written in `text`,
    in any case, with or without `#`; the first one named wins."""
    words = shop_number_words(text)
    if not words:
        return None
    orders = session.scalars(
        select(Order).where(
            Order.customer_id == customer_id,
            or_(func.lower(Order.number).in_(words), func.lower(Order.external_id).in_(words)),
        )
    )
    by_word: dict[str, Order] = {}
    for order in orders:
        for key in (order.number, order.external_id):
            if key:
                by_word.setdefault(key.lower(), order)
    return next((by_word[word] for word in words if word in by_word), None)


def named_number(text: str) -> str | None:
    """A number the customer gave as an order's (`#10234`, `order A-5521`), found or not."""
    match = NAMED_RE.search(text)
    if match is None:
        return None
    return re.sub(r"^(?:order|number|no\.?|nr\.?)\s*[:#]?\s*", "", match.group(1), flags=re.IGNORECASE)


def latest_order(*, session: Session, customer_id: int) -> Order | None:
    return session.scalar(
        select(Order)
        .where(Order.customer_id == customer_id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
    )


def means_no_order(text: str) -> bool:
    lowered = text.strip().lower().rstrip(".!")
    return lowered in NO_ORDER_WORDS or lowered.startswith("it's not about an order")
