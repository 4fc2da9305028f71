"""The Feedback page's demo: a handful of customers' feedback and rating comments in several themes,
some taken, some done, two whose customers were told what changed, beside the exit answers the
demo's history already filed (bot/crm/retention.py), so a newcomer sees the page at work on first run.

Built after the rest of the demo, on customers the personas leave alone, from a random stream of
its own: the rest of the demo stays as it was. Rating comments are added to ratings the demo's
history already holds (after a handoff or a complaint), so its ratings and their figures stay as
they were; free feedback is filed as the page's item (a survey row is a rating).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import feedback
from bot.crm.feedback import Viewer
from bot.crm.models import (
    Agent,
    Channel,
    ChannelIdentity,
    Customer,
    DeliveryStatus,
    FeedbackItem,
    FeedbackSource,
    FeedbackState,
    Survey,
)

St = FeedbackState


@dataclass(frozen=True)
class DemoFeedback:
    words: str
    score: int | None  # the rating the words came with; None: feedback on its own
    owner: str | None  # demo username
    state: FeedbackState
    told: str = ""  # what the customer was told changed


FEEDBACK = (
    DemoFeedback("The parcel was left at the neighbour's without a note.", None, "agent", St.IN_PROGRESS),
    DemoFeedback("Your app logs me out every time I reach the checkout.", 3, "agent2", St.IN_PROGRESS),
    DemoFeedback("Love the Aurora espresso machine, but the milk frother is really noisy.", 4, None, St.NEW),
    DemoFeedback("The beans tasted stale this month, not like before.", 2, None, St.NEW),
    DemoFeedback("BrewBox sends the same capsules for less.", None, None, St.NEW),
    DemoFeedback(
        "I was charged twice for my last order.",
        None,
        "lead",
        St.DONE,
        "Hi! You told us you were charged twice. We found the fault in our payment page and fixed it, "
        "and the second charge is back on your card.",
    ),
    DemoFeedback(
        "The courier was rude at my door.",
        3,
        "agent",
        St.DONE,
        "Hi! Thank you for telling us about the courier. We have changed the delivery company in your "
        "area; your next parcels come with them.",
    ),
)


def add_demo_feedback(*, session: Session, rng: random.Random, now: datetime, spare: frozenset[str]) -> None:
    """File FEEDBACK on customers outside `spare` and work it as the demo logins would."""
    agents = {a.username: a for a in session.scalars(select(Agent))}
    taken = set(session.scalars(select(FeedbackItem.customer_id)))
    candidates = session.execute(
        select(Customer.id, ChannelIdentity.external_id)
        .join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
        .where(ChannelIdentity.channel == Channel.WEB)
        .order_by(Customer.id)
    ).tuples()
    free = [cid for cid, external in candidates if external not in spare and cid not in taken]
    rng.shuffle(free)
    for number, demo in enumerate(FEEDBACK):
        at = now - timedelta(days=len(FEEDBACK) - number, hours=rng.randint(1, 8))
        item = _file(session, rng, demo, free, taken, at)
        owner = agents.get(demo.owner or "")
        if item is not None and owner is not None:
            worked = min(item.created_at + timedelta(hours=2), now)  # the past stays past
            _work(session, demo, item, Viewer(owner.id, owner.role), worked)


def _file(
    session: Session, rng: random.Random, demo: DemoFeedback, free: list[int], taken: set[int], at: datetime
) -> FeedbackItem | None:
    """The words as a comment on one of the history's ratings of that score, or as feedback on
    their own (also when no such rating is left)."""
    rated = _a_rating(session, rng, demo.score, taken) if demo.score is not None else None
    if rated is not None:
        rated.comment = demo.words
        taken.add(rated.customer_id)
        return feedback.file_feedback(
            session=session,
            customer_id=rated.customer_id,
            source=FeedbackSource.RATING_COMMENT,
            text=demo.words,
            conversation_id=rated.conversation_id,
            survey_id=rated.id,
            score=rated.score,
            now=rated.created_at + timedelta(minutes=2),
        )
    customer_id = next((c for c in free if c not in taken), None)
    if customer_id is None:
        return None  # a small demo (tests) gets fewer items
    taken.add(customer_id)
    return feedback.file_feedback(
        session=session, customer_id=customer_id, source=FeedbackSource.FEEDBACK, text=demo.words, now=at
    )


def _a_rating(session: Session, rng: random.Random, score: int, taken: set[int]) -> Survey | None:
    ratings = session.scalars(
        select(Survey).where(Survey.score == score, Survey.comment.is_(None)).order_by(Survey.id)
    ).all()
    options = [r for r in ratings if r.customer_id not in taken]
    return rng.choice(options) if options else None


def _work(session: Session, demo: DemoFeedback, item: FeedbackItem, viewer: Viewer, at: datetime) -> None:
    feedback.take(session=session, viewer=viewer, item_id=item.id, version=None, now=at)
    if demo.told:
        feedback.tell_customer(
            session=session, viewer=viewer, item_id=item.id, message=demo.told, version=None, now=at
        )
        delivery = feedback.delivery_of(session=session, item_id=item.id)
        assert delivery is not None
        delivery.status, delivery.sent_at, delivery.attempts = (
            DeliveryStatus.SENT,
            at,
            1,
        )  # the past stays past
    elif demo.state is not item.state:
        feedback.move(
            session=session, viewer=viewer, item_id=item.id, state=demo.state.value, version=None, now=at
        )
