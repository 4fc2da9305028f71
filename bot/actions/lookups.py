"""Finding the order a customer means, without revealing anyone else's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import Order
from bot.nlp.analysis import ORDER_RE

NO_ORDER_WORDS = ("no order", "not about an order", "none", "no", "nope", "not an order", "n/a")


def normalise_order_number(text: str | None) -> str | None:
    """`cl 104233`, `CL104233` and `CL-104233` all mean `CL-104233`."""
    match = ORDER_RE.search(text or "")
    return f"CL-{match.group(1)}" if match else None


def customer_order(*, session: Session, customer_id: int, number: str | None) -> Order | None:
    """The customer's own order with this number; someone else's order is never returned."""
    if not number:
        return None
    return session.scalar(select(Order).where(Order.number == number, Order.customer_id == customer_id))


def latest_order(*, session: Session, customer_id: int) -> Order | None:
    return session.scalar(
        select(Order)
        .where(Order.customer_id == customer_id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
    )


def means_no_order(text: str) -> bool:
    lowered = text.strip().lower().rstrip(".!")
    return lowered in NO_ORDER_WORDS or lowered.startswith("it's not about an order")
