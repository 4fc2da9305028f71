"""A realistic, deterministic demo population: `python -m bot.crm.demo [--if-empty]`.

About 500 customers with 18 months of orders, subscriptions, complaints and refunds, every
segment and temperament, several time zones with postal addresses there, birthdays, some opted out
of marketing, plus the demo console logins; and 90 days of care on top (`bot.crm.demo_history`):
retention saves, handoffs and ratings, so that the reports have something to show. The same seed
and day always give the same data.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.crm import churn
from bot.crm.catalogue import seed_catalogue
from bot.crm.complaints import SLA_HOURS
from bot.crm.demo_addresses import settle_address
from bot.crm.demo_cases import add_demo_cases
from bot.crm.demo_feedback import add_demo_feedback
from bot.crm.demo_history import add_recent_history
from bot.crm.demo_lives import Life, live
from bot.crm.models import (
    Agent,
    Author,
    Channel,
    ChannelIdentity,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Consent,
    ConsentPurpose,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    Message,
    Order,
    OrderLine,
    OrderStatus,
    OutreachKind,
    Product,
    Refund,
    RefundStatus,
    Role,
    Segment,
    Severity,
    Subscription,
    SubscriptionStatus,
    Survey,
    Temperament,
)
from bot.crm.passwords import hash_password
from bot.crm.segments import assign_segments, refresh_all, segment_counts

DEMO_NOON = time(12, 0)  # the demo's "now" is noon (UTC) of the day it is built for
SEED = 20261123
HISTORY_DAYS = 548  # 18 months
SEGMENT_HISTORY_MONTHS = 12
TELEGRAM_ID_BASE = 700_000_000

# username, display name, role, password: shown in the README, for local demos only.
DEMO_LOGINS = (
    ("agent", "Alex Agent", Role.AGENT, "agent-demo"),
    ("agent2", "Sam Second", Role.AGENT, "agent2-demo"),
    ("marketer", "Morgan Marketer", Role.MARKETER, "marketer-demo"),
    ("admin", "Ada Admin", Role.ADMIN, "admin-demo"),
    ("lead", "Lee Lead", Role.LEAD, "lead-demo"),
)

TIMEZONES = (  # zone, language, weight
    ("Europe/Berlin", "de", 22),
    ("Europe/London", "en", 20),
    ("America/New_York", "en", 16),
    ("Europe/Paris", "fr", 10),
    ("America/Los_Angeles", "en", 8),
    ("Europe/Madrid", "es", 8),
    ("Asia/Tokyo", "ja", 6),
    ("Australia/Sydney", "en", 6),
    ("Asia/Kolkata", "en", 4),
)
FIRST_NAMES = (
    "Anna Ben Chloé Daniel Emi Farah Georg Hana Ivan Julia Kofi Lena Mateo Nora Omar Priya Quentin "
    "Rosa Sven Tomás Uma Viktor Wen Ximena Yusuf Zoe Amara Björn Carmen Dmitri Elif Felix Grace "
    "Hiro Ines Jonas Kemi Luca Maja Nikhil Olga Pablo Rania Stefan Thandi Ugo Valentina Wiktor Yara"
).split()
LAST_NAMES = (
    "Berger Carter Martin Okafor Tanaka Haddad Müller Novak Petrov Rossi Mensah Schmidt García Lindqvist "
    "Aziz Sharma Dubois Fernández Johansson Silva Patel Kowalski Chen López Demir Brown Nakamura "
    "O'Brien Weber Ivanova Costa Nguyen Hoffmann Ali Moreau Kim Jansen Sato Fischer Ahmed"
).split()
TEMPERAMENT_WEIGHTS = (
    (Temperament.RATIONAL, 26),
    (Temperament.DEPENDENT, 20),
    (Temperament.PICKY, 16),
    (Temperament.TRIAL_SEEKING, 14),
    (Temperament.IRRITABLE, 12),
    (Temperament.UNKNOWN, 12),
)
COMPLAINT_TEXTS = {
    ComplaintCategory.DELIVERY: "Parcel arrived three days late and the box was crushed.",
    ComplaintCategory.BILLING: "I was charged twice for my membership this month.",
    ComplaintCategory.PRODUCT_QUALITY: "The grinder makes a loud noise and the grind is uneven.",
    ComplaintCategory.SERVICE: "Nobody answered my email for a week.",
    ComplaintCategory.TECHNICAL: "The app logs me out every time I try to pay.",
    ComplaintCategory.OTHER: "The gift card code did not work at checkout.",
}
TEAMS = {
    ComplaintCategory.DELIVERY: "logistics",
    ComplaintCategory.BILLING: "billing",
    ComplaintCategory.PRODUCT_QUALITY: "quality",
    ComplaintCategory.SERVICE: "customer_care",
    ComplaintCategory.TECHNICAL: "tech",
    ComplaintCategory.OTHER: "customer_care",
}


@dataclass(frozen=True)
class Profile:
    """How one kind of customer buys; the mix makes every segment appear."""

    name: str
    orders: tuple[int, int]  # how many orders over their lifetime with us
    basket: tuple[int, int]  # lines per order
    big_ticket: float  # chance an order includes a machine or grinder
    joined_days_ago: tuple[int, int]
    recent_bias: float  # >1 pushes orders towards the present (rising spend)
    lapsed_days: int  # no orders in the most recent N days
    complaints: tuple[int, int]
    refund_share: float  # share of orders refunded


PROFILES = (
    (Profile("loyal_big", (14, 26), (2, 4), 0.35, (400, 548), 1.0, 0, (0, 1), 0.02), 12),
    (Profile("regular", (5, 12), (1, 3), 0.10, (200, 548), 1.0, 0, (0, 1), 0.03), 38),
    (Profile("occasional", (1, 4), (1, 2), 0.05, (60, 548), 1.0, 0, (0, 1), 0.05), 22),
    (Profile("new_frequent", (4, 7), (1, 3), 0.10, (40, 150), 1.0, 0, (0, 0), 0.0), 8),
    (Profile("growing", (6, 10), (1, 3), 0.15, (330, 548), 3.0, 0, (0, 1), 0.0), 8),
    (Profile("troubled", (2, 4), (1, 1), 0.0, (120, 548), 1.0, 0, (3, 5), 0.6), 6),
    (Profile("lapsed", (2, 6), (1, 2), 0.05, (400, 548), 0.5, 240, (0, 2), 0.05), 6),
)


# What a customer writes to us now and then (bot/crm/demo_lives.py decides when).
CHAT_LINES = (
    "Where is my order?",
    "Can I change my delivery day?",
    "Which beans would you recommend for espresso?",
    "Thanks, the last bag was great!",
    "Do you ship to my new address?",
)


# The first customers are hand-made personas the README introduces by name.
PERSONAS = (
    # first, last, zone, language, temperament, profile, marketing consent, telegram
    ("Anna", "Berger", "Europe/Berlin", "de", Temperament.RATIONAL, "loyal_big", True, True),
    ("Ben", "Carter", "America/New_York", "en", Temperament.IRRITABLE, "troubled", True, True),
    ("Chloé", "Martin", "Europe/Paris", "fr", Temperament.TRIAL_SEEKING, "new_frequent", True, False),
    ("Daniel", "Okafor", "Europe/London", "en", Temperament.DEPENDENT, "regular", False, True),
    ("Emi", "Tanaka", "Asia/Tokyo", "ja", Temperament.PICKY, "lapsed", True, False),
)


def web_external_id(number: int) -> str:
    """The demo web visitor id of customer `number` (1-based): sender id `web:demo-0001`."""
    return f"demo-{number:04d}"


def shop_external_id(number: int) -> str:
    """The demo shop's own id of customer `number` (1-based), as its inbound API and widget use it."""
    return f"cust-{number:04d}"


def demo_day(now: datetime) -> date:
    """The day whose noon (UTC) is the demo's "now": today from noon on, else yesterday, so that
    nothing in the demo (a callback request, a rating) lies in the future of the real clock."""
    return now.date() if now.time() >= DEMO_NOON else now.date() - timedelta(days=1)


def is_empty(*, session: Session) -> bool:
    """Whether the CRM has no customers yet."""
    return not session.scalar(select(func.count(Customer.id)))


def load_demo_data(
    *, session: Session, today: date, customers: int = 500, seed: int = SEED
) -> Counter[Segment]:
    """Fill an empty CRM; return the resulting segment counts."""
    if not is_empty(session=session):
        raise RuntimeError("the CRM already has customers; demo data goes into an empty CRM only")
    rng = random.Random(seed)
    now = datetime.combine(today, DEMO_NOON, tzinfo=timezone.utc)
    seed_catalogue(session=session, launched_at=now - timedelta(days=HISTORY_DAYS + 30))
    products = list(session.scalars(select(Product).order_by(Product.id)))
    _add_agents(session=session)
    # Later additions draw from streams of their own, so the customers and orders stay as they were.
    builder = _Builder(
        session=session,
        rng=rng,
        now=now,
        products=products,
        timing=random.Random(seed + 1),
        lives=random.Random(seed + 5),
    )
    for number in range(1, customers + 1):
        builder.add_customer(number)
    session.flush()
    counts = _segment_history(session=session, now=now)
    personas = frozenset(web_external_id(number) for number in range(1, len(PERSONAS) + 1))
    add_recent_history(
        session=session,
        rng=random.Random(seed + 2),
        now=now,
        spare=personas,
        lives=builder.lives,
        case_ratings=builder.case_ratings,
    )
    add_demo_cases(session=session, rng=random.Random(seed + 3), now=now, spare=personas)
    add_demo_feedback(session=session, rng=random.Random(seed + 4), now=now, spare=personas)
    churn.refresh_all(session=session, now=now)  # from the behaviour above, as the nightly pass would
    return counts


def _segment_history(*, session: Session, now: datetime) -> Counter[Segment]:
    """Compute segments month by month over the last year, as the nightly refresh would have, so
    the records show real moves ("MVC since 12 March; was MCC"); return today's counts."""
    for months_ago in range(SEGMENT_HISTORY_MONTHS, 0, -1):
        assign_segments(session=session, now=now - timedelta(days=30 * months_ago), trigger="demo")
    run = refresh_all(session=session, now=now, trigger="demo")
    assert run is not None  # an empty CRM has no runs
    return segment_counts(session=session)


def _add_agents(*, session: Session) -> None:
    for username, display_name, role, password in DEMO_LOGINS:
        session.add(
            Agent(
                username=username, display_name=display_name, role=role, password_hash=hash_password(password)
            )
        )


class _Builder:
    def __init__(
        self,
        *,
        session: Session,
        rng: random.Random,
        now: datetime,
        products: list[Product],
        timing: random.Random,
        lives: random.Random,
    ) -> None:
        self.session, self.rng, self.now, self.timing = session, rng, now, timing
        self.life_stream = lives
        self.lives: dict[int, Life] = {}  # the simulated life of every customer but the personas
        self.case_ratings: dict[int, int] = {}  # complaint id -> rating, for the recent ones
        self.plans = [p for p in products if p.is_plan]
        self.goods = [p for p in products if not p.is_plan and p.category not in ("machines", "grinders")]
        self.big = [p for p in products if p.category in ("machines", "grinders")]
        self.order_number = 100_000

    def add_customer(self, number: int) -> None:
        rng = self.rng
        if number <= len(PERSONAS):
            first, last, zone, language, temperament, profile_name, marketing, telegram = PERSONAS[number - 1]
            profile = next(p for p, _ in PROFILES if p.name == profile_name)
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            zone, language = _weighted(rng, [((z, lang), w) for z, lang, w in TIMEZONES])
            temperament = _weighted(rng, TEMPERAMENT_WEIGHTS)
            profile = _weighted(rng, PROFILES)
            marketing, telegram = rng.random() < 0.8, rng.random() < 0.4
        joined = self.now - timedelta(days=rng.randint(*profile.joined_days_ago), hours=rng.randint(0, 23))
        phone = f"+49151{number:07d}" if rng.random() < 0.7 else None
        birthday = date(rng.randint(1952, 2005), rng.randint(1, 12), rng.randint(1, 28))
        rng.random()  # was a random churn risk; still drawn here, so later customers stay the same
        customer = Customer(
            external_id=shop_external_id(number),
            first_name=first,
            last_name=last,
            email=f"{_ascii(first)}.{_ascii(last)}.{number}@example.com",
            email_verified_at=joined,  # confirmed at sign-up, so the demo's mails have somewhere to go
            phone=phone,
            birthday=birthday,
            timezone=zone,
            language=language,
            temperament=temperament,
            tags=[profile.name],
            created_at=joined,
            last_contact_at=joined + timedelta(days=rng.randint(0, max(1, (self.now - joined).days - 1))),
        )
        customer.identities.append(
            ChannelIdentity(channel=Channel.WEB, external_id=web_external_id(number), created_at=joined)
        )
        if telegram:
            customer.identities.append(
                ChannelIdentity(
                    channel=Channel.TELEGRAM,
                    external_id=str(TELEGRAM_ID_BASE + number),
                    display_name=f"{first} {last}",
                    language=language,
                    created_at=joined,
                )
            )
        customer.consents += [
            Consent(purpose=ConsentPurpose.SERVICE, granted=True, source="signup", changed_at=joined),
            Consent(
                purpose=ConsentPurpose.MARKETING,
                granted=marketing,
                source="signup" if marketing else "web:preferences",
                changed_at=joined if marketing else joined + timedelta(days=rng.randint(1, 60)),
            ),
        ]
        self.session.add(customer)
        self.session.flush()
        settle_address(session=self.session, customer=customer, number=number, now=self.now)
        if number <= len(PERSONAS):  # the personas keep the histories the README tells
            orders = self._add_orders(customer, profile, joined)
            self._add_subscription(customer, profile, joined)
            self._add_complaints(customer, profile, joined, orders)
        else:
            self._add_life(customer, profile, joined, number)

    def _add_orders(self, customer: Customer, profile: Profile, joined: datetime) -> list[Order]:
        rng = self.rng
        span = (self.now - joined).total_seconds() - profile.lapsed_days * 86400
        orders = []
        for _ in range(rng.randint(*profile.orders)):
            placed = joined + timedelta(seconds=max(0.0, span) * rng.random() ** (1 / profile.recent_bias))
            orders.append(self._make_order(customer, profile, placed))
        return orders

    def _make_order(self, customer: Customer, profile: Profile, placed: datetime) -> Order:
        rng = self.rng
        self.order_number += 1
        age = (self.now - placed).days
        status = (
            OrderStatus.PLACED
            if age < 2
            else OrderStatus.SHIPPED
            if age < 5
            else OrderStatus.CANCELLED
            if rng.random() < 0.03
            else OrderStatus.DELIVERED
        )
        lines = [
            OrderLine(product_id=p.id, quantity=rng.randint(1, 2), unit_price=p.price)
            for p in rng.sample(self.goods, rng.randint(*profile.basket))
        ]
        if rng.random() < profile.big_ticket:
            big = rng.choice(self.big)
            lines.append(OrderLine(product_id=big.id, quantity=1, unit_price=big.price))
        order = Order(
            number=f"CL-{self.order_number}",
            customer_id=customer.id,
            status=status,
            total=sum((ln.unit_price * ln.quantity for ln in lines), Decimal("0")),
            carrier=rng.choice(("DHL", "UPS", "DPD", "Royal Mail")),
            tracking_code=f"TRK{self.order_number}{rng.randint(100, 999)}",
            placed_at=placed,
            expected_at=placed + timedelta(days=3),
            shipped_at=placed + timedelta(days=1)
            if status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED)
            else None,
            delivered_at=placed + timedelta(days=rng.randint(2, 6))
            if status is OrderStatus.DELIVERED
            else None,
            lines=lines,
        )
        self.session.add(order)
        self.session.flush()
        if status is OrderStatus.DELIVERED and rng.random() < profile.refund_share:
            self.session.add(
                Refund(
                    order_id=order.id,
                    customer_id=customer.id,
                    amount=order.total,
                    reason=rng.choice(("damaged on arrival", "not as described", "changed my mind")),
                    status=RefundStatus.PAID,
                    requested_at=placed + timedelta(days=7),
                    decided_at=placed + timedelta(days=9),
                )
            )
        return order

    def _add_subscription(self, customer: Customer, profile: Profile, joined: datetime) -> None:
        if profile.name == "occasional" and self.rng.random() < 0.6:
            return
        plan = self.rng.choice(self.plans) if profile.name != "loyal_big" else self.plans[-1]
        lapsed = profile.name == "lapsed" and self.rng.random() < 0.5
        self.session.add(
            Subscription(
                customer_id=customer.id,
                product_id=plan.id,
                status=SubscriptionStatus.CANCELLED if lapsed else SubscriptionStatus.ACTIVE,
                monthly_price=plan.price,
                started_at=joined,
                cancelled_at=self.now - timedelta(days=200) if lapsed else None,
            )
        )

    def _add_complaints(
        self, customer: Customer, profile: Profile, joined: datetime, orders: list[Order]
    ) -> None:
        rng = self.rng
        for _ in range(rng.randint(*profile.complaints)):
            category = rng.choice(list(ComplaintCategory))
            created = joined + timedelta(seconds=(self.now - joined).total_seconds() * rng.random())
            severity = rng.choice((Severity.LOW, Severity.MEDIUM, Severity.MEDIUM, Severity.HIGH))
            recent = (self.now - created).days < 10
            status = (
                rng.choice((ComplaintStatus.OPEN, ComplaintStatus.IN_PROGRESS))
                if recent
                else ComplaintStatus.CLOSED
            )
            rng.randint(1, 6)  # was the days to resolve; still drawn, so later customers stay the same
            # Most cases are resolved within their SLA, some late: what the reports' SLA share measures.
            hours = SLA_HOURS[severity] * self.timing.uniform(0.2, 1.35)
            resolved = None if recent else created + timedelta(hours=hours)
            order = rng.choice(orders) if orders and category is not ComplaintCategory.TECHNICAL else None
            self.session.add(
                Complaint(
                    customer_id=customer.id,
                    order_id=order.id if order else None,
                    category=category,
                    severity=severity,
                    team=TEAMS[category],
                    description=COMPLAINT_TEXTS[category],
                    status=status,
                    sla_due_at=created + timedelta(hours=SLA_HOURS[severity]),
                    resolution="Resolved and confirmed with the customer." if resolved else None,
                    customer_told=resolved is not None,
                    created_at=created,
                    resolved_at=resolved,
                    followup_due_at=resolved + timedelta(days=3) if resolved else None,
                    followup_done_at=resolved + timedelta(days=3) if resolved else None,
                )
            )

    # ----- the simulated life of every customer but the personas (bot/crm/demo_lives.py) -----

    def _add_life(self, customer: Customer, profile: Profile, joined: datetime, number: int) -> None:
        """Write one simulated life: orders, membership, complaints and ratings, chats, our messages."""
        stream = self.life_stream
        member = not (profile.name == "occasional" and stream.random() < 0.6)
        life = live(
            stream,
            kind=profile.name,
            joined=joined,
            now=self.now,
            orders=profile.orders,
            complaints=profile.complaints,
            member=member,
            must_leave_before=self.now - timedelta(days=profile.lapsed_days) if profile.lapsed_days else None,
        )
        self.lives[customer.id] = life
        orders = [self._make_order(customer, profile, placed) for placed in life.orders]
        if member:
            self._add_membership(customer, profile, joined, life)
        for grievance in life.grievances:
            self._add_grievance(customer, grievance.at, grievance.late, grievance.rating, orders)
        self._add_contact(customer, life, number)

    def _add_membership(self, customer: Customer, profile: Profile, joined: datetime, life: Life) -> None:
        plan = self.life_stream.choice(self.plans) if profile.name != "loyal_big" else self.plans[-1]
        asked = life.cancel_asked_at
        # A request in the last 90 days is told as a save conversation (bot/crm/demo_history.py).
        told_later = asked is not None and asked >= self.now - timedelta(days=89)
        cancelled = None
        if asked is not None and not told_later:
            cancelled = min(asked + timedelta(days=self.life_stream.randint(0, 30)), self.now)
        self.session.add(
            Subscription(
                customer_id=customer.id,
                product_id=plan.id,
                status=SubscriptionStatus.CANCELLED if cancelled else SubscriptionStatus.ACTIVE,
                monthly_price=plan.price,
                started_at=joined,
                cancel_requested_at=None if told_later else asked,
                cancelled_at=cancelled,
            )
        )

    def _add_grievance(
        self, customer: Customer, created: datetime, late: bool, rating: int | None, orders: list[Order]
    ) -> None:
        stream = self.life_stream
        category = stream.choice(list(ComplaintCategory))
        severity = stream.choice((Severity.LOW, Severity.MEDIUM, Severity.MEDIUM, Severity.HIGH))
        hours = SLA_HOURS[severity] * (stream.uniform(1.3, 4.0) if late else stream.uniform(0.2, 0.95))
        resolved: datetime | None = created + timedelta(hours=hours)
        if resolved is not None and resolved >= self.now:
            resolved = None
        order = stream.choice(orders) if orders and category is not ComplaintCategory.TECHNICAL else None
        followup = resolved + timedelta(days=3) if resolved else None
        done = followup if followup is not None and followup < self.now else None
        complaint = Complaint(
            customer_id=customer.id,
            order_id=order.id if order else None,
            category=category,
            severity=severity,
            team=TEAMS[category],
            description=COMPLAINT_TEXTS[category],
            status=ComplaintStatus.CLOSED
            if done
            else ComplaintStatus.RESOLVED
            if resolved
            else ComplaintStatus.IN_PROGRESS,
            sla_due_at=created + timedelta(hours=SLA_HOURS[severity]),
            resolution="Resolved and confirmed with the customer." if resolved else None,
            customer_told=resolved is not None,
            created_at=created,
            resolved_at=resolved,
            followup_due_at=followup,
            followup_done_at=done,
        )
        self.session.add(complaint)
        self.session.flush()
        if rating is None or done is None:
            return
        if done >= self.now - timedelta(days=89):  # rated at the check-in bot/crm/demo_history.py tells
            self.case_ratings[complaint.id] = rating
        else:
            self.session.add(
                Survey(customer_id=customer.id, complaint_id=complaint.id, score=rating, created_at=done)
            )

    def _add_contact(self, customer: Customer, life: Life, number: int) -> None:
        """Their own messages (chats, answers to ours) and the marketing messages we sent them."""
        own = sorted([*life.chats, *(replied for _, replied in life.outreach if replied is not None)])
        customer.last_contact_at = own[-1] if own else customer.created_at
        if own:
            conversation = Conversation(
                sender_id=f"web:{web_external_id(number)}",
                customer_id=customer.id,
                channel=Channel.WEB,
                started_at=own[0],
                last_message_at=own[-1],
            )
            self.session.add(conversation)
            self.session.flush()
            self.session.add_all(
                Message(
                    conversation_id=conversation.id,
                    direction=Direction.INBOUND,
                    author=Author.CUSTOMER,
                    text=self.life_stream.choice(CHAT_LINES),
                    delivery_status=DeliveryStatus.PROCESSED,
                    created_at=at,
                )
                for at in own
            )
        self.session.add_all(
            Delivery(
                idempotency_key=f"demo:campaign:{customer.id}:{n}",
                kind=OutreachKind.CAMPAIGN,
                customer_id=customer.id,
                status=DeliveryStatus.SENT,
                attempts=1,
                scheduled_for=sent,
                created_at=sent,
                sent_at=sent,
                replied_at=replied,
            )
            for n, (sent, replied) in enumerate(life.outreach)
        )


_Choice = TypeVar("_Choice")


def _weighted(rng: random.Random, choices: Sequence[tuple[_Choice, float]]) -> _Choice:
    values = [value for value, _ in choices]
    return rng.choices(values, weights=[weight for _, weight in choices], k=1)[0]


def _ascii(name: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


def main() -> None:
    from bot.bootstrap import bootstrap
    from bot.crm.db import session_scope

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--if-empty", action="store_true", help="do nothing when the CRM has customers")
    parser.add_argument("--customers", type=int, default=500)
    args = parser.parse_args()
    settings = bootstrap(command=True)
    if args.if_empty and not settings.demo_data:
        print("CARELOOP_DEMO_DATA=false: no demo data loaded", file=sys.stderr)
        return
    with session_scope(settings.database_url) as session:
        if not is_empty(session=session):
            if args.if_empty:
                print("CRM already has customers: demo data left as it is", file=sys.stderr)
                return
            sys.exit("the CRM already has customers; demo data goes into an empty CRM only")
        counts = load_demo_data(
            session=session, today=demo_day(datetime.now(timezone.utc)), customers=args.customers
        )
    summary = ", ".join(f"{segment.value} {count}" for segment, count in sorted(counts.items()))
    print(f"loaded demo data: {args.customers} customers ({summary})", file=sys.stderr)


if __name__ == "__main__":
    main()
