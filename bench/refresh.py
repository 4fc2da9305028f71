"""The nightly refresh at scale: segments and churn risk for every customer, then the drift step,
exactly as the scheduler's `customers:nightly_refresh` job runs them (one transaction), on a fresh
CRM of 100,000 generated customers; two nights (the first ever, where every first segment is
history, and the next, with the first night's drift episodes open); the SQL statements counted.

`python -m bench.refresh [--customers N] [--database-url URL]` prints these figures alone; `make
bench` runs them before the stack starts (nothing competes with them).

The population (`populate`, bulk inserts, a minute or two for 100,000): customers who joined over
two years and buy at their own pace (3.5 orders each on average; a quarter stopped buying some time
ago), one in eight with a membership (some paused, asking to cancel or cancelled), complaints,
ratings, our campaign messages (a third answered), messages of their own, and one webhook
subscription to `customer.segment_changed`, as a shop that integrates has.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import knowledge
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Author,
    Channel,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    DriftEpisode,
    Message,
    Order,
    OrderStatus,
    OutreachKind,
    Product,
    Severity,
    Subscription,
    SubscriptionStatus,
    Survey,
    WebhookDelivery,
    WebhookSubscription,
)
from scheduler import checkins

CUSTOMERS = 100_000
ORDERS_PER_CUSTOMER = 4.0  # a year, on average, while they buy (a quarter stop early: 3.5 in all)
BUDGET_SECONDS = 600.0  # both nights together: a slow refresh is stopped and says so, it does not stall
GENERATION_BUDGET_SECONDS = 300.0  # building the population; past it the run stops before measuring
CHUNK = 20_000  # rows per bulk INSERT


class OverBudget(RuntimeError):
    """The refresh ran past its budget; the transaction was rolled back."""


@dataclass
class StatementCounter:
    """Counts the SQL statements an engine sends (an executemany is one), and stops the run with
    `OverBudget` at the first statement past the deadline."""

    engine: Engine
    deadline: float | None = None
    count: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        self.count += 1
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        self.by_verb[verb] = self.by_verb.get(verb, 0) + 1
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OverBudget(f"past the budget after {self.count} statements")


# ----- the population -----


def populate(engine: Engine, *, customers: int, now: datetime, seed: int = 21) -> dict[str, int]:
    """Write the generated CRM with bulk inserts; return how many rows of each kind."""
    rng = random.Random(seed)
    made: dict[str, int] = {}
    with Session(engine) as session, session.begin():
        session.execute(
            insert(Product),
            [
                {"id": 1, "sku": "BEANS", "name": "Beans", "category": "beans", "price": Decimal("12.90")},
                {
                    "id": 2,
                    "sku": "PLAN",
                    "name": "Coffee club",
                    "category": "plans",
                    "price": Decimal("19.00"),
                    "is_plan": True,
                },
            ],
        )
        session.execute(
            insert(WebhookSubscription),
            [{"url": "https://shop.example/hooks", "events": ["customer.segment_changed"], "secret": "x"}],
        )
        tables: dict[str, list[dict[str, Any]]] = {
            name: []
            for name in ("customers", "orders", "memberships", "complaints", "ratings", "outreach", "chats")
        }
        messages: list[dict[str, Any]] = []
        for cid in range(1, customers + 1):
            _one_customer(rng, cid, now, tables, messages)
            if len(tables["orders"]) >= CHUNK:
                _flush(session, tables, made)
        _flush(session, tables, made)
        for start in range(0, len(messages), CHUNK):
            session.execute(insert(Message), messages[start : start + CHUNK])
        made["messages"] = len(messages)
    return made


MODELS: dict[str, Any] = {
    "customers": Customer,  # first: the others refer to it
    "orders": Order,
    "memberships": Subscription,
    "complaints": Complaint,
    "ratings": Survey,
    "outreach": Delivery,
    "chats": Conversation,
}


def _flush(session: Session, tables: dict[str, list[dict[str, Any]]], made: dict[str, int]) -> None:
    for name, model in MODELS.items():
        rows = tables[name]
        if rows:
            session.execute(insert(model), rows)
            made[name] = made.get(name, 0) + len(rows)
            rows.clear()


def _one_customer(
    rng: random.Random,
    cid: int,
    now: datetime,
    tables: dict[str, list[dict[str, Any]]],
    messages: list[dict[str, Any]],
) -> None:
    joined = now - timedelta(days=rng.uniform(1, 730))
    tenure = (now - joined).total_seconds() / 86400
    # A quarter stopped buying some time ago; the others are still with us.
    active_until = now if rng.random() > 0.25 else joined + timedelta(days=rng.uniform(0, tenure))
    # Their own pace: about four orders over an average year with us, some much keener than others.
    yearly = ORDERS_PER_CUSTOMER * rng.lognormvariate(0, 0.7) / 1.28
    span = (active_until - joined).total_seconds() / 86400
    count = min(60, int(yearly * span / 365 + rng.random()))
    moments = sorted(joined + timedelta(days=rng.uniform(0, span)) for _ in range(count))
    customer: dict[str, Any] = {
        "id": cid,
        "first_name": "Bench",
        "last_name": f"Customer{cid}",
        "email": f"c{cid}@bench.example",
        "created_at": joined,
        "tags": [],
        "churn_reasons": [],
    }
    tables["customers"].append(customer)
    for n, placed in enumerate(moments):
        age = (now - placed).days
        status = (
            OrderStatus.CANCELLED
            if rng.random() < 0.04
            else OrderStatus.PLACED
            if age < 2
            else OrderStatus.SHIPPED
            if age < 4
            else OrderStatus.DELIVERED
        )
        tables["orders"].append(
            {
                "number": f"B{cid}-{n}",
                "customer_id": cid,
                "status": status,
                "total": Decimal(rng.randint(900, 15000)) / 100,
                "placed_at": placed,
                "delivered_at": placed + timedelta(days=3) if status is OrderStatus.DELIVERED else None,
            }
        )
    draw = rng.random()
    if draw < 0.125:  # a membership
        started = joined + timedelta(days=rng.uniform(0, tenure / 2))
        membership = rng.choices(
            [
                SubscriptionStatus.ACTIVE,
                SubscriptionStatus.PAUSED,
                SubscriptionStatus.CANCEL_REQUESTED,
                SubscriptionStatus.CANCELLED,
            ],
            weights=[75, 8, 7, 10],
        )[0]
        changed = started + (now - started) * rng.uniform(0.5, 1)
        tables["memberships"].append(
            {
                "customer_id": cid,
                "product_id": 2,
                "status": membership,
                "monthly_price": Decimal("19.00"),
                "started_at": started,
                "paused_at": changed if membership is SubscriptionStatus.PAUSED else None,
                "cancel_requested_at": changed
                if membership in (SubscriptionStatus.CANCEL_REQUESTED, SubscriptionStatus.CANCELLED)
                else None,
                "cancelled_at": changed if membership is SubscriptionStatus.CANCELLED else None,
            }
        )
    if rng.random() < 0.08:  # a complaint in the last year (or since joining)
        filed = now - timedelta(days=rng.uniform(0, min(365, tenure)))
        case_status = rng.choices(
            [
                ComplaintStatus.OPEN,
                ComplaintStatus.IN_PROGRESS,
                ComplaintStatus.RESOLVED,
                ComplaintStatus.CLOSED,
            ],
            weights=[5, 5, 20, 70],
        )[0]
        due = filed + timedelta(days=2)
        resolved = (
            filed + timedelta(days=rng.uniform(0.2, 4))
            if case_status in (ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED)
            else None
        )
        tables["complaints"].append(
            {
                "customer_id": cid,
                "category": ComplaintCategory.DELIVERY,
                "severity": Severity.MEDIUM,
                "team": "logistics",
                "description": "late parcel",
                "status": case_status,
                "sla_due_at": due,
                "created_at": filed,
                "resolved_at": None if resolved is None or resolved > now else resolved,
            }
        )
    if rng.random() < 0.12:  # a rating in the last 200 days
        tables["ratings"].append(
            {
                "customer_id": cid,
                "score": rng.choices([1, 2, 3, 4, 5], weights=[8, 8, 14, 30, 40])[0],
                "created_at": now - timedelta(days=rng.uniform(0, min(200, tenure))),
            }
        )
    if rng.random() < 0.3:  # our campaign messages in the last five months, a third answered
        for n in range(rng.randint(1, 4)):
            sent = now - timedelta(days=rng.uniform(0, min(150, tenure)))
            replied = sent + timedelta(hours=rng.uniform(1, 48)) if rng.random() < 0.33 else None
            tables["outreach"].append(
                {
                    "idempotency_key": f"bench:campaign:{n}:customer:{cid}",
                    "kind": OutreachKind.CAMPAIGN,
                    "customer_id": cid,
                    "status": DeliveryStatus.SENT,
                    "payload": {},
                    "scheduled_for": sent,
                    "created_at": sent,
                    "sent_at": sent,
                    "replied_at": replied if replied is not None and replied < now else None,
                }
            )
    if rng.random() < 0.25:  # they wrote to us
        wrote = sorted(joined + timedelta(days=rng.uniform(0, tenure)) for _ in range(rng.randint(1, 3)))
        tables["chats"].append(
            {
                "id": cid,  # one conversation per customer who wrote: the customer's id serves
                "sender_id": f"web:bench-{cid}",
                "customer_id": cid,
                "channel": Channel.WEB,
                "started_at": wrote[0],
                "last_message_at": wrote[-1],
            }
        )
        messages.extend(
            {
                "conversation_id": cid,
                "direction": Direction.INBOUND,
                "author": Author.CUSTOMER,
                "text": "hello",
                "_status": "processed",
                "created_at": at,
            }
            for at in wrote
        )
        customer["last_contact_at"] = wrote[-1]


# ----- the nights -----


@dataclass
class Night:
    """One nightly refresh as the scheduler runs it, measured."""

    now: datetime
    customers: int = 0
    moved: int = 0
    knowledge_seconds: float = 0.0  # segments, then churn risk (knowledge.refresh_everybody)
    drift_seconds: float = 0.0  # checkins.drift
    statements_knowledge: int = 0
    statements_drift: int = 0
    statements_by_verb: dict[str, int] = field(default_factory=dict)
    drift: dict[str, int] = field(default_factory=dict)
    commit_seconds: float = 0.0
    stopped_by_budget: bool = False

    def as_dict(self) -> dict[str, Any]:
        seconds = self.knowledge_seconds + self.drift_seconds + self.commit_seconds
        statements = self.statements_knowledge + self.statements_drift
        return {
            "now": self.now.isoformat(timespec="seconds"),
            "customers": self.customers,
            "moved": self.moved,
            "knowledge_seconds": round(self.knowledge_seconds, 1),
            "drift_seconds": round(self.drift_seconds, 1),
            "commit_seconds": round(self.commit_seconds, 1),
            "seconds": round(seconds, 1),
            "customers_per_second": round(self.customers / seconds) if seconds > 0 else None,
            "statements": statements,
            "statements_knowledge": self.statements_knowledge,
            "statements_drift": self.statements_drift,
            "statements_by_verb": dict(sorted(self.statements_by_verb.items())),
            "drift": self.drift,
            "stopped_by_budget": self.stopped_by_budget,
        }


def nightly_refresh(factory: sessionmaker[Session], counter: StatementCounter, now: datetime) -> Night:
    """`scheduler.jobs.refresh_customers_once`'s two calls in its one transaction, each timed and
    its statements counted (the COMMIT goes with the drift step's)."""
    night = Night(now)
    began = start = time.monotonic()
    before, step = counter.count, "knowledge"
    try:
        with factory.begin() as session:
            run = knowledge.refresh_everybody(session=session, now=now)
            night.knowledge_seconds = time.monotonic() - start
            night.statements_knowledge = counter.count - before
            if run is None:
                raise RuntimeError(f"the refresh for {now:%Y-%m-%d} had already run")
            night.customers, night.moved = run.customers, run.changed
            start, before, step = time.monotonic(), counter.count, "drift"
            night.drift = checkins.drift(session=session, now=now)
            night.drift_seconds = time.monotonic() - start
        night.statements_drift = counter.count - before
        night.commit_seconds = time.monotonic() - began - night.knowledge_seconds - night.drift_seconds
    except OverBudget:  # rolled back: what the unfinished step had done until then
        night.stopped_by_budget = True
        setattr(night, f"{step}_seconds", time.monotonic() - start)
        setattr(night, f"statements_{step}", counter.count - before)
    night.statements_by_verb = dict(counter.by_verb)
    counter.by_verb.clear()
    return night


def measure_refresh(
    database_url: str, *, customers: int = CUSTOMERS, budget: float = BUDGET_SECONDS, nights: int = 2
) -> dict[str, Any]:
    """Build the population into an EMPTY database, then run `nights` nightly refreshes a day apart."""
    now = datetime.now(timezone.utc).replace(hour=2, minute=30, second=0, microsecond=0)
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        started = time.monotonic()
        made = _populate_within(engine, customers, now - timedelta(days=1))
        generation = time.monotonic() - started
        with Session(engine) as session:
            orders = session.scalar(select(func.count(Order.id))) or 0
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        counter = StatementCounter(engine, deadline=time.monotonic() + budget)
        measured = []
        try:
            for n in range(nights):
                night = nightly_refresh(factory, counter, now + timedelta(days=n))
                measured.append(night.as_dict())
                if night.stopped_by_budget:
                    break
        finally:
            counter.close()
        with Session(engine) as session:
            episodes = session.scalar(select(func.count(DriftEpisode.id))) or 0
            webhook_events = session.scalar(select(func.count(WebhookDelivery.id))) or 0
    finally:
        engine.dispose()
    return {
        "customers": customers,
        "orders": orders,
        "made": made,
        "generation_seconds": round(generation, 1),
        "budget_seconds": budget,
        "nights": measured,
        "drift_episodes": episodes,
        "webhook_events": webhook_events,
        "stopped_by_budget": any(n["stopped_by_budget"] for n in measured),
    }


def _populate_within(engine: Engine, customers: int, now: datetime) -> dict[str, int]:
    """`populate`, stopped with `OverBudget` if it takes longer than GENERATION_BUDGET_SECONDS."""
    counter = StatementCounter(engine, deadline=time.monotonic() + GENERATION_BUDGET_SECONDS)
    try:
        return populate(engine, customers=customers, now=now)
    finally:
        counter.close()


def refresh(var_dir: Path, *, customers: int = CUSTOMERS, database_url: str | None = None) -> dict[str, Any]:
    """The figures on a fresh CRM (a SQLite file under `var_dir` unless a URL is given)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (var_dir / f"crm.db{suffix}").unlink(missing_ok=True)
    result = measure_refresh(database_url or f"sqlite:///{var_dir / 'crm.db'}", customers=customers)
    return {"database": "postgresql" if database_url else "sqlite", "load_average": _load(), **result}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def main(argv: list[str] | None = None) -> int:
    from bot.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database (default: SQLite under var/)")
    args = parser.parse_args(argv)
    print(f"load average {_load()}; building {args.customers:,} customers ...", file=sys.stderr, flush=True)
    result = refresh(
        PROJECT_ROOT / "var" / "bench" / "refresh", customers=args.customers, database_url=args.database_url
    )
    from bench.report import refresh_rows

    for area, figure, value in refresh_rows(result):
        print(f"{area}  {figure}  {value}")
    return 1 if result["stopped_by_budget"] else 0


if __name__ == "__main__":
    sys.exit(main())
