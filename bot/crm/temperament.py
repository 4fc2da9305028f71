"""Infer a customer's temperament from how they write, over many messages, not one."""

from __future__ import annotations

import re
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import Customer, InteractionEvent, Temperament

WINDOW = 20  # the most recent observed messages
MIN_EVIDENCE = 3  # cues needed before the stored temperament changes

CUES: dict[Temperament, tuple[str, ...]] = {
    Temperament.DEPENDENT: (
        "what should i",
        "recommend",
        "help me choose",
        "not sure",
        "which one",
        "what would you do",
        "i don't know",
        "can you decide",
        "is that ok",
        "tell me what to do",
    ),
    Temperament.PICKY: (
        "options",
        "compare",
        "difference",
        "alternatives",
        "exactly",
        "details",
        "specs",
        "which is better",
        "other choices",
        "pros and cons",
        "what else",
    ),
    Temperament.TRIAL_SEEKING: (
        "new",
        "latest",
        "try",
        "sample",
        "launch",
        "just released",
        "something different",
    ),
    Temperament.RATIONAL: (
        "how much",
        "price",
        "cost",
        "percent",
        "%",
        "specifically",
        "terms",
        "data",
        "numbers",
    ),
}


def cues_in(text: str, *, anger: int) -> dict[str, int]:
    """The temperament cues one message carries."""
    lowered = (text or "").lower()
    found: Counter[str] = Counter()
    for temperament, phrases in CUES.items():
        hits = sum(1 for phrase in phrases if re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", lowered))
        if hits:
            found[temperament.value] += hits
    words = len(lowered.split())
    if anger >= 2 or (anger >= 1 and words <= 6):
        found[Temperament.IRRITABLE.value] += 2 if anger >= 2 else 1
    if re.search(r"\d", lowered) and "?" in lowered:
        found[Temperament.RATIONAL.value] += 1
    return dict(found)


def infer(*, session: Session, customer: Customer) -> Temperament:
    """Update and return the customer's temperament from their recent observed messages."""
    events = session.scalars(
        select(InteractionEvent.data)
        .where(InteractionEvent.customer_id == customer.id, InteractionEvent.kind == "behaviour")
        .order_by(InteractionEvent.id.desc())
        .limit(WINDOW)
    ).all()
    totals: Counter[str] = Counter()
    for data in events:
        totals.update(data.get("cues", {}))
    if sum(totals.values()) < MIN_EVIDENCE:
        return customer.temperament
    ranked = totals.most_common(2)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return customer.temperament  # a tie says nothing new
    customer.temperament = Temperament(ranked[0][0])
    return customer.temperament
