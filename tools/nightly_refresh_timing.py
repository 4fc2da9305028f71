"""Time the nightly refresh (segments, then churn risk) on N synthetic customers.

    PYTHONPATH=. .venvs/app/bin/python tools/nightly_refresh_timing.py 100000 [DATABASE_URL]

Without a URL it migrates a fresh SQLite file in a temporary directory. Each customer gets 0-10
orders over 18 months; a tenth have a complaint, a fifth a rating. It prints the first pass (every
customer's first segment is history) and the next night's (only the moves).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.crm import knowledge
from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Customer,
    Order,
    OrderStatus,
    Severity,
    Survey,
)

NOW = datetime(2026, 12, 4, 2, 30, tzinfo=timezone.utc)


def populate(session: Session, count: int, rng: random.Random) -> int:
    """Write the synthetic customers and their history; return how many orders."""
    session.execute(
        insert(Customer),
        [{"first_name": f"C{i}", "created_at": NOW - timedelta(days=600), "tags": []} for i in range(count)],
    )
    ids = session.scalars(select(Customer.id)).all()
    orders = [
        {
            "number": f"N{cid}-{k}",
            "customer_id": cid,
            "status": OrderStatus.DELIVERED,
            "total": Decimal(rng.randint(10, 300)),
            "placed_at": NOW - timedelta(days=rng.uniform(1, 540)),
        }
        for cid in ids
        for k in range(rng.randint(0, 10))
    ]
    session.execute(insert(Order), orders)
    session.execute(
        insert(Complaint),
        [
            {
                "customer_id": cid,
                "category": ComplaintCategory.DELIVERY,
                "severity": Severity.LOW,
                "team": "logistics",
                "status": rng.choice([ComplaintStatus.OPEN, ComplaintStatus.CLOSED]),
                "sla_due_at": NOW - timedelta(days=1),
                "created_at": NOW - timedelta(days=rng.uniform(1, 200)),
                "description": "x",
            }
            for cid in rng.sample(ids, count // 10)
        ],
    )
    session.execute(
        insert(Survey),
        [
            {
                "customer_id": cid,
                "score": rng.randint(1, 5),
                "created_at": NOW - timedelta(days=rng.uniform(1, 100)),
            }
            for cid in rng.sample(ids, count // 5)
        ],
    )
    return len(orders)


def timed_pass(session: Session, now: datetime) -> str:
    started = time.perf_counter()
    run = knowledge.refresh_everybody(session=session, now=now)
    session.commit()
    assert run is not None
    return f"{time.perf_counter() - started:.1f} s ({run.customers} customers, {run.changed} moved)"


def main() -> None:
    count = int(sys.argv[1])
    url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{tempfile.mkdtemp()}/crm.db"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        orders = populate(session, count, random.Random(1))
        session.commit()
    print(f"{count} customers, {orders} orders")
    with Session(engine) as session:
        print("first nightly pass:", timed_pass(session, NOW))
    with Session(engine) as session:
        print("next night:", timed_pass(session, NOW + timedelta(days=1)))


if __name__ == "__main__":
    main()
