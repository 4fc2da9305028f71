"""The demo's last 90 days of care: retention saves, handoffs to people, CSAT ratings.

Written through the same CRM functions the actions and the console call (choose the offer, record
it, decide, apply or cancel; open, claim and finish a handoff; record a rating), so the reports
read what live use would have left behind. Deterministic: its own random stream from the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import desk, retention
from bot.crm.business_hours import BusinessHours
from bot.crm.complaints import FOLLOWUP_AFTER_RESOLUTION, followup_key, resolve_complaint
from bot.crm.demo_lives import Life
from bot.crm.handoffs import callback_promise, complaint_severity, open_handoff
from bot.crm.models import (
    HANDOFF_CALLBACK,
    HANDOFF_LIVE,
    Agent,
    AuditLog,
    Author,
    Channel,
    ChannelIdentity,
    Complaint,
    ComplaintStatus,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    HandoffStatus,
    LeaveReason,
    Message,
    OutreachKind,
    Role,
    Subscription,
    SubscriptionStatus,
)
from bot.crm.queries import ensure_conversation, log_interaction
from bot.crm.surveys import record_rating

DAYS = 90
QUIET_DAYS = 1  # the story of the last day is left to the newcomer, except the waiting callbacks
RETENTION_SHARE = 0.08  # of customers with an active membership, asked to cancel in the 90 days
HANDOFF_SHARE = 0.10  # of the other customers, talked to a person
COMPLAINT_RATING_SHARE = 0.45  # of complaints resolved in the 90 days, rated at the check-in
HANDOFF_RATING_SHARE = 0.6
WAITING_CALLBACKS = 2  # left in the queue for a newcomer to claim
# The application's default opening hours: live handoffs inside them, callbacks outside.
HOURS = BusinessHours.parse("mon-fri 08:00-20:00, sat 09:00-16:00", "Europe/Berlin")

REASONS = (
    (LeaveReason.PRICE, 30),
    (LeaveReason.QUALITY, 12),
    (LeaveReason.SERVICE, 10),
    (LeaveReason.COMPETITOR, 12),
    (LeaveReason.NO_LONGER_NEEDED, 14),
    (LeaveReason.MOVING, 8),
    (LeaveReason.OTHER, 8),
)
SCORES = ((5, 50), (4, 28), (3, 10), (2, 7), (1, 5))
EXIT_ANSWERS = {
    LeaveReason.PRICE: "Money is tight this year.",
    LeaveReason.QUALITY: "The last two bags tasted stale.",
    LeaveReason.SERVICE: "It took too long to get answers.",
    LeaveReason.COMPETITOR: "A local roaster delivers for less.",
    LeaveReason.NO_LONGER_NEEDED: "I drink much less coffee now.",
    LeaveReason.MOVING: "Moving abroad next month.",
    LeaveReason.OTHER: "Just want a break.",
}
# reason, weight, what the customer wrote, what the agent wrote, how it ended
HANDOFF_STORIES = (
    (
        "complaint",
        40,
        "My parcel arrived damaged and I want to talk to someone.",
        "I'm sorry about that — I've sent a replacement today, you'll get tracking by email.",
        "Replacement sent.",
    ),
    (
        "customer_request",
        35,
        "Can I talk to a real person please?",
        "Hi, happy to help — I've changed the delivery day of your membership to Friday.",
        "Delivery day changed.",
    ),
    (
        "fallback",
        15,
        "I need help with an invoice for my company.",
        "Sure — I've issued the invoice with your company's address and emailed it to you.",
        "Company invoice issued.",
    ),
    (
        "low_csat",
        10,
        "Honestly the last answer did not help at all.",
        "I'm sorry — I've credited your account and noted what went wrong.",
        "Credit given, feedback passed on.",
    ),
)
BACK_WITH_YOU = "Thanks for your patience — I'm back with you. I hope our team could help!"
FILED = (
    "Everyone on our team is busy right now, so I've filed your request: a person will get back to you soon."
)
GETTING = "I'm getting a person from our team for you — they'll see everything we've talked about."


@dataclass(frozen=True)
class Story:
    at: datetime
    customer_id: int
    tell: Callable[[], None]


def add_recent_history(
    *,
    session: Session,
    rng: random.Random,
    now: datetime,
    spare: frozenset[str] = frozenset(),
    lives: dict[int, Life] | None = None,
    case_ratings: dict[int, int] | None = None,
) -> None:
    """Add 90 days of saves, handoffs and ratings; customers whose web id is in `spare` are left alone.

    With `lives` (bot/crm/demo_lives.py), the members who ask to cancel are those whose life says
    so, when it says so, and nobody talks to us after leaving; `case_ratings` are the ratings those
    lives give at the check-in after a complaint. Without them, both are drawn at random.
    """
    History(session=session, rng=rng, now=now, spare=spare, lives=lives, case_ratings=case_ratings).add()


class History:
    def __init__(
        self,
        *,
        session: Session,
        rng: random.Random,
        now: datetime,
        spare: frozenset[str],
        lives: dict[int, Life] | None = None,
        case_ratings: dict[int, int] | None = None,
    ) -> None:
        self.session, self.rng, self.now = session, rng, now
        self.lives, self.case_ratings = lives, case_ratings
        self.agents = list(
            session.scalars(select(Agent.id).where(Agent.role == Role.AGENT).order_by(Agent.id))
        )
        self.senders: dict[int, str] = dict(
            session.execute(
                select(ChannelIdentity.customer_id, ChannelIdentity.external_id).where(
                    ChannelIdentity.channel == Channel.WEB
                )
            )
            .tuples()
            .all()
        )
        self.spared = {cid for cid, external_id in self.senders.items() if external_id in spare}

    def add(self) -> None:
        customers = [
            c
            for c in self.session.scalars(select(Customer).order_by(Customer.id))
            if c.id not in self.spared and c.id in self.senders
        ]
        active = set(
            self.session.scalars(
                select(Subscription.customer_id).where(Subscription.status == SubscriptionStatus.ACTIVE)
            )
        )
        stories: list[Story] = []
        idle = []
        for customer in customers:
            asks = self._asks_to_cancel(customer.id, customer.id in active)
            if asks is not None:
                stories.append(self._story(customer, asks, self._save))
            elif self._still_here(customer.id) and self.rng.random() < HANDOFF_SHARE:
                stories.append(self._story(customer, self._working_moment(), self._handoff))
            elif self._still_here(customer.id):
                idle.append(customer)
        stories += self._complaint_ratings()
        for story in sorted(stories, key=lambda s: (s.at, s.customer_id)):
            story.tell()
        for number, customer in enumerate(idle[-WAITING_CALLBACKS:] if len(idle) > 10 else []):
            self._waiting_callback(customer, self.now - timedelta(hours=3 + 2 * number))
        self.session.flush()

    def _asks_to_cancel(self, customer_id: int, member: bool) -> datetime | None:
        """When this member asks to cancel in the 90 days, if they do."""
        if not member:
            return None
        if self.lives is None:
            return self._moment() if self.rng.random() < RETENTION_SHARE else None
        life = self.lives.get(customer_id)
        asked = life.cancel_asked_at if life else None
        window = (self.now - timedelta(days=DAYS), self.now - timedelta(days=QUIET_DAYS))
        if asked is None or not window[0] < asked < window[1]:
            return None
        return asked.replace(hour=self.rng.randint(6, 20), minute=self.rng.randint(0, 59), second=0)

    def _still_here(self, customer_id: int) -> bool:
        """Whether the customer has not left (a customer who left writes to us no more)."""
        life = (self.lives or {}).get(customer_id)
        return life is None or life.decided_at is None or life.decided_at > self.now - timedelta(days=DAYS)

    def _story(self, customer: Customer, at: datetime, tell: Callable[[Customer, datetime], None]) -> Story:
        return Story(at, customer.id, lambda: self._keeping_last_contact(customer, at, tell))

    def _moment(self) -> datetime:
        """A moment in the 90 days before the quiet last day, in the daytime of Europe."""
        day = self.now - timedelta(days=self.rng.randint(QUIET_DAYS, DAYS - 1))
        return day.replace(hour=self.rng.randint(6, 20), minute=self.rng.randint(0, 59), second=0)

    def _working_moment(self) -> datetime:
        """Most people ask for a person while the team is in: a moment in business hours, mostly."""
        moment = self._moment()
        for _ in range(2):
            if HOURS.is_open(moment):
                break
            moment = self._moment()
        return moment

    def _keeping_last_contact(
        self, customer: Customer, at: datetime, tell: Callable[[Customer, datetime], None]
    ) -> None:
        before = customer.last_contact_at
        tell(customer, at)
        if before is not None and customer.last_contact_at is not None:
            customer.last_contact_at = max(before, customer.last_contact_at)

    # ----- the transcript -----

    def _conversation(self, customer: Customer, at: datetime) -> Conversation:
        conversation = ensure_conversation(
            session=self.session, sender_id=f"web:{self.senders[customer.id]}", customer=customer
        )
        conversation.started_at = min(conversation.started_at, at)
        return conversation

    def _say(
        self,
        conversation: Conversation,
        author: Author,
        text: str,
        at: datetime,
        agent_id: int | None = None,
    ) -> None:
        inbound = author is Author.CUSTOMER
        self.session.add(
            Message(
                conversation_id=conversation.id,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                author=author,
                agent_id=agent_id,
                text=text,
                delivery_status=DeliveryStatus.PROCESSED if inbound else DeliveryStatus.DELIVERED,
                created_at=at,
                sent_at=None if inbound else at,
            )
        )
        conversation.last_message_at = at

    def _stamp_audit(self, at: datetime) -> None:
        """record_audit stamps the wall clock; the demo's entries belong to the demo's moment."""
        for entry in self.session.new:
            if isinstance(entry, AuditLog) and entry.created_at is None:
                entry.created_at = at

    # ----- retention saves -----

    def _save(self, customer: Customer, at: datetime) -> None:
        """One save conversation: up to two offers, then saved, walked away, or a respected no."""
        rng, session, start = self.rng, self.session, at
        conversation = self._conversation(customer, at)
        self._say(conversation, Author.CUSTOMER, "I want to cancel my membership.", at)
        situation = retention.situation(session=session, customer=customer, open_complaints=0, now=at)
        log_interaction(
            session=session,
            customer=customer,
            conversation=conversation,
            kind="cancel_intent",
            intent="cancel_subscription",
            data={"tenure_months": situation.tenure_months, "past_saves": situation.past_saves},
            now=at,
        )
        reason = _weighted(rng, REASONS)
        tried: set[int] = set()
        for attempt_no in range(1, retention.MAX_ATTEMPTS + 1):
            at += timedelta(minutes=rng.randint(1, 3))
            offer = retention.choose_offer(
                session=session, reason=reason, segment=customer.segment, exclude=tried
            )
            if offer is None and attempt_no > 1:
                break
            attempt = retention.record_offer(
                session=session,
                customer=customer,
                reason=reason,
                offer=offer,
                attempt_no=attempt_no,
                conversation=conversation,
                now=at,
            )
            if offer is None:  # nothing fits: the live action records the try and respects the no
                break
            self._say(conversation, Author.BOT, f"Before you go: {offer.title}?", at)
            tried.add(offer.id)
            at += timedelta(minutes=rng.randint(1, 4))
            answer = rng.random()
            if answer < 0.04:
                return  # walked away without answering: the offer stays pending
            accepted = answer < (0.42 if attempt_no == 1 else 0.3)
            self._say(conversation, Author.CUSTOMER, "Yes, that works." if accepted else "No thanks.", at)
            retention.decide(
                session=session,
                attempt=attempt,
                accepted=accepted,
                customer=customer,
                conversation=conversation,
                now=at,
            )
            if accepted:
                todo = retention.apply_offer(session=session, customer=customer, offer=offer, now=at)
                self._stamp_audit(at)
                if todo is not None:  # the offer promises a person: a callback, as the live action files it
                    self._person_follows_up(customer, conversation, at)
                return
        at += timedelta(minutes=rng.randint(1, 3))
        delivery = retention.record_cancellation(
            session=session, customer=customer, conversation=conversation, now=at
        )
        if delivery.scheduled_for <= self.now:  # the win-back check-in went out already
            delivery.status, delivery.sent_at, delivery.attempts = (
                DeliveryStatus.SENT,
                delivery.scheduled_for,
                1,
            )
        self._say(conversation, Author.CUSTOMER, EXIT_ANSWERS[reason], at)
        retention.record_exit_answer(
            session=session,
            customer=customer,
            conversation=conversation,
            attempts=retention.attempts_in(
                session=session, conversation_id=conversation.id, customer_id=customer.id, since=start
            ),
            answer=EXIT_ANSWERS[reason],
            now=at,
        )

    def _person_follows_up(self, customer: Customer, conversation: Conversation, at: datetime) -> None:
        handoff, _ = open_handoff(
            session=self.session,
            customer=customer,
            conversation=conversation,
            reason="retention",
            mode=HANDOFF_CALLBACK,
            now=at,
        )
        claimed = at + timedelta(minutes=self.rng.randint(30, 20 * 60))
        agent = self.rng.choice(self.agents)
        self._work(handoff.id, agent, claimed, claimed + timedelta(minutes=self.rng.randint(5, 15)), True)

    # ----- handoffs -----

    def _handoff(self, customer: Customer, at: datetime) -> None:
        """A customer asks for a person: live when the team is in, otherwise a callback."""
        rng, session = self.rng, self.session
        reason, _, asked, answer, resolution = _weighted(rng, [(s, s[1]) for s in HANDOFF_STORIES])
        conversation = self._conversation(customer, at)
        self._say(conversation, Author.CUSTOMER, asked, at)
        live = HOURS.is_open(at) and rng.random() < 0.85
        handoff, _ = open_handoff(
            session=session,
            customer=customer,
            conversation=conversation,
            reason=reason,
            severity=complaint_severity(session=session, conversation=conversation),
            mode=HANDOFF_LIVE if live else HANDOFF_CALLBACK,
            callback_by=None if live else callback_promise(hours=HOURS, now=at),
            now=at,
        )
        self._say(conversation, Author.BOT, GETTING if live else FILED, at)
        if live:
            claimed = at + timedelta(minutes=round(rng.lognormvariate(1.2, 0.7), 1))
        else:
            by = handoff.callback_by or at
            claimed = by - timedelta(minutes=rng.randint(5, 110))
            claimed = max(claimed, at + timedelta(minutes=20))
        agent = rng.choice(self.agents)
        closed = claimed + timedelta(minutes=rng.randint(3, 18))
        close = rng.random() < 0.6
        if not self._work(handoff.id, agent, claimed, closed, close, resolution):
            return  # filed at the weekend, still waiting for the callback
        self._say(conversation, Author.AGENT, answer, claimed + timedelta(minutes=1), agent)
        if live:
            self._say(conversation, Author.BOT, BACK_WITH_YOU, closed)
        if rng.random() < HANDOFF_RATING_SHARE:
            self._rate(
                customer, conversation, closed + timedelta(minutes=rng.randint(1, 5)), handoff_id=handoff.id
            )

    def _work(
        self,
        handoff_id: int,
        agent_id: int,
        claimed: datetime,
        closed: datetime,
        close: bool,
        resolution: str = "Called back; the offer is arranged.",
    ) -> bool:
        """An agent claims the chat and ends it: closed with a resolution, or handed back to the bot.

        False when that would end after the demo's now: the handoff stays waiting in the queue (a
        claimed one would go back to the queue anyway, its agent not being at the console).
        """
        if closed >= self.now:
            return False
        desk.claim(session=self.session, handoff_id=handoff_id, agent_id=agent_id, now=claimed)
        self._stamp_audit(claimed)
        desk.finish(
            session=self.session,
            handoff_id=handoff_id,
            agent_id=agent_id,
            status=HandoffStatus.CLOSED if close else HandoffStatus.RETURNED,
            resolution=resolution if close else None,
            now=closed,
        )
        self._stamp_audit(closed)
        return True

    def _waiting_callback(self, customer: Customer, at: datetime) -> None:
        """A callback request this morning that nobody has claimed yet: for a newcomer to take."""
        conversation = self._conversation(customer, at)
        before = customer.last_contact_at
        self._say(conversation, Author.CUSTOMER, "My grinder stopped working, can someone call me?", at)
        open_handoff(
            session=self.session,
            customer=customer,
            conversation=conversation,
            reason="customer_request",
            mode=HANDOFF_CALLBACK,
            callback_by=callback_promise(hours=HOURS, now=at),
            now=at,
        )
        self._say(conversation, Author.BOT, FILED, at)
        if before is not None and customer.last_contact_at is not None:
            customer.last_contact_at = max(before, customer.last_contact_at)

    # ----- ratings -----

    def _complaint_ratings(self) -> list[Story]:
        """Ratings at the check-in after a complaint was resolved (the revisit three days later)."""
        complaints = self.session.scalars(
            select(Complaint)
            .where(
                Complaint.status == ComplaintStatus.CLOSED,
                Complaint.followup_done_at >= self.now - timedelta(days=DAYS),
                Complaint.followup_done_at < self.now - timedelta(days=QUIET_DAYS),
            )
            .order_by(Complaint.id)
        ).all()
        customers = {c.id: c for c in self.session.scalars(select(Customer))}
        stories = []
        for complaint in complaints:
            if complaint.customer_id in self.spared or complaint.customer_id not in self.senders:
                continue
            if complaint.followup_done_at is None:
                continue
            if self.case_ratings is None:
                if self.rng.random() >= COMPLAINT_RATING_SHARE:
                    continue
                given = None
            elif complaint.id in self.case_ratings:
                given = self.case_ratings[complaint.id]
            else:
                continue
            at = complaint.followup_done_at + timedelta(minutes=self.rng.randint(2, 30))
            stories.append(
                self._story(
                    customers[complaint.customer_id], at, partial(self._rate_case, complaint.id, given)
                )
            )
        return stories

    def _rate_case(self, complaint_id: int, given: int | None, customer: Customer, at: datetime) -> None:
        self._rate(customer, self._conversation(customer, at), at, complaint_id=complaint_id, score=given)

    def _rate(
        self,
        customer: Customer,
        conversation: Conversation,
        at: datetime,
        *,
        handoff_id: int | None = None,
        complaint_id: int | None = None,
        score: int | None = None,
    ) -> None:
        """A 1–5 answer; a low one opens a recovery case, which a person resolves if there was time."""
        score = score if score is not None else _weighted(self.rng, SCORES)
        self._say(conversation, Author.CUSTOMER, str(score), at)
        rated = record_rating(
            session=self.session,
            customer=customer,
            score=score,
            conversation=conversation,
            complaint_id=complaint_id,
            handoff_id=handoff_id,
            now=at,
        )
        if rated.recovery_case is not None:
            self._recover(rated.recovery_case, at)

    def _recover(self, case: Complaint, at: datetime) -> None:
        """A person resolves the recovery case (mostly within its SLA); the revisit closes it."""
        sla = case.sla_due_at - case.created_at
        resolved = at + sla * self.rng.uniform(0.3, 1.3)
        if resolved >= self.now:
            return  # still open: part of today's work
        resolve_complaint(
            session=self.session,
            complaint=case,
            resolution="Called the customer, apologised and put it right.",
            now=resolved,
        )
        case.customer_told = True
        revisit = resolved + FOLLOWUP_AFTER_RESOLUTION
        if revisit < self.now:
            case.status, case.followup_done_at = ComplaintStatus.CLOSED, revisit
            delivery = self.session.scalar(
                select(Delivery).where(Delivery.idempotency_key == followup_key(case.id))
            )
            if delivery is not None and delivery.kind is OutreachKind.COMPLAINT_FOLLOWUP:
                delivery.status, delivery.sent_at, delivery.attempts = DeliveryStatus.SENT, revisit, 1


_Choice = TypeVar("_Choice")


def _weighted(rng: random.Random, choices: Sequence[tuple[_Choice, float]]) -> _Choice:
    values = [value for value, _ in choices]
    return rng.choices(values, weights=[weight for _, weight in choices], k=1)[0]
