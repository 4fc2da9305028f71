"""Backfill speed: the bulk importer's orders/s on a 100,000-order CSV, and the inbound API's
upserts/s in batches of 1,000, each on a fresh CRM; then a count that nothing was lost or doubled.

`python -m bench.importing [--orders N] [--database-url URL]` prints these figures alone; `make
bench` runs them first (before the stack starts, so nothing competes with them).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from bot.api.routes import InboundApi
from bot.api.throttle import TokenBuckets
from bot.crm.db import make_engine
from bot.crm.importer import Options, import_files
from bot.crm.integrations import create_key
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, ApiScope, Customer, Order, OrderLine, Role
from bot.gateway.store import Crm

ORDERS = 100_000
CUSTOMERS_PER_ORDER = 0.25  # 4 orders per customer
PRODUCTS = 200
API_RECORDS = 20_000  # customers then orders, in batches of 1,000
BATCH = 1000
BUDGET_SECONDS = 240.0  # per figure: a slow build stops early and says so, it does not stall the bench


def write_shop_files(directory: Path, *, orders: int, seed: int = 7) -> dict[str, int]:
    """customers.csv, products.csv and orders.csv as a shop exports them (an order's line items on
    rows of their own; a third of the orders also shipped later); return how many of each."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    customers = max(1, int(orders * CUSTOMERS_PER_ORDER))
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=400)
    with (directory / "customers.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "occurred_at", "first_name", "last_name", "email", "timezone"])
        for n in range(customers):
            at = start + timedelta(minutes=n)
            writer.writerow([f"c{n}", _iso(at), "Ada", f"Shopper{n}", f"c{n}@shop.example", "Europe/Berlin"])
    with (directory / "products.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "occurred_at", "name", "price", "category"])
        for n in range(PRODUCTS):
            writer.writerow([f"p{n}", _iso(start), f"Product {n}", f"{5 + n % 50}.90", "beans"])
    rows = 0
    with (directory / "orders.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "external_id",
                "occurred_at",
                "status",
                "customer_external_id",
                "number",
                "carrier",
                "tracking_code",
                "line_product_external_id",
                "line_quantity",
                "line_unit_price",
            ]
        )
        for n in range(orders):
            placed = start + timedelta(days=1, seconds=300 * n)
            head = [f"o{n}", _iso(placed), "placed", f"c{n % customers}", f"#{100000 + n}", "", ""]
            for _ in range(rng.randint(1, 3)):
                product = rng.randrange(PRODUCTS)
                writer.writerow([*head, f"p{product}", rng.randint(1, 2), f"{5 + product % 50}.90"])
                rows += 1
            if n % 3 == 0:
                shipped = placed + timedelta(days=1)
                writer.writerow([f"o{n}", _iso(shipped), "shipped", "", "", "DHL", f"TRK{n}", "", "", ""])
                rows += 1
    return {"customers": customers, "products": PRODUCTS, "orders": orders, "order_rows": rows}


def measure_import(
    database_url: str, directory: Path, *, orders: int, budget: float = BUDGET_SECONDS
) -> dict[str, Any]:
    """Import the shop's files into a fresh CRM; orders/s over the orders file alone (as far as
    the budget allows: `imported` says how many)."""
    made = write_shop_files(directory, orders=orders)
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        files = [directory / name for name in ("customers.csv", "products.csv", "orders.csv")]
        options = Options(progress=False)
        first = import_files(engine, files[:2], options)
        started, cpu = time.monotonic(), time.process_time()
        tally = import_files(engine, files[2:], replace(options, deadline=started + budget))
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        with Session(engine) as session:  # before the re-run, which goes on where a budget stopped
            stored = session.scalar(select(func.count(Order.id)))
        again_started = time.monotonic()
        again = import_files(engine, files[2:], replace(options, deadline=again_started + budget))
        again_seconds = time.monotonic() - again_started
        with Session(engine) as session:
            lines = session.scalar(select(func.count(OrderLine.id)))
    finally:
        engine.dispose()
    counts = tally.counts["orders.csv"]
    imported = counts.get("created", 0)  # each order is created once, by its first row
    return {
        **made,
        "customers_products_seconds": round(first.seconds, 1),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),  # the machine is shared: CPU time says what load took away
        "imported": imported,
        "stopped_by_budget": tally.stopped,
        "orders_per_second": round(imported / seconds, 1),
        "records": dict(counts),
        "rerun_seconds": round(again_seconds, 1),
        "rerun_stopped_by_budget": again.stopped,
        "rerun_records": dict(again.counts["orders.csv"]),
        "stored_orders": stored,
        "stored_lines": lines,
        "rejected": len(tally.rejected) + len(again.rejected),
    }


def measure_api(
    database_url: str, *, records: int = API_RECORDS, budget: float = BUDGET_SECONDS
) -> dict[str, Any]:
    """POST /api/v1/batch (1,000 records a request) in process, through the whole API: key, JSON,
    validation, the CRM lane; customers first, then an order for each."""
    upgrade(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        admin = Agent(username="bench-admin", display_name="Bench", role=Role.ADMIN, password_hash="x")
        session.add(admin)
        session.flush()
        _, key = create_key(session=session, name="bench", scope=ApiScope.WRITE, agent_id=admin.id)
        session.commit()
    crm = Crm(database_url, name="crm-api")
    api = InboundApi(crm, buckets=TokenBuckets(rate_per_second=1000, burst=1000))
    crm.start()
    half = records // 2
    at = _iso(datetime.now(timezone.utc) - timedelta(days=1))
    bodies = [_customer(n, at) for n in range(half)] + [_order(n, at) for n in range(half)]
    product = {
        "type": "product",
        "data": {"external_id": "bench-p", "occurred_at": at, "name": "B", "price": "9"},
    }
    failed = sent = 0
    try:
        app = Starlette(routes=[Mount("/api/v1", app=api.app())])
        with TestClient(app, base_url="http://bench.test/api/v1") as client:
            headers = {"Authorization": f"Bearer {key}"}
            client.post("/batch", json={"records": [product]}, headers=headers).raise_for_status()
            started, cpu = time.monotonic(), time.process_time()
            for start in range(0, len(bodies), BATCH):
                if time.monotonic() > started + budget:
                    break
                answer = client.post(
                    "/batch", json={"records": bodies[start : start + BATCH]}, headers=headers
                )
                answer.raise_for_status()
                failed += answer.json()["counts"]["failed"]
                sent += len(bodies[start : start + BATCH])
            seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        with Session(engine) as session:
            stored = (
                session.scalar(select(func.count(Customer.id))),
                session.scalar(select(func.count(Order.id))),
            )
    finally:
        crm.close()
        engine.dispose()
    return {
        "records": len(bodies),
        "sent": sent,
        "batch": BATCH,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "per_second": round(sent / seconds, 1),
        "failed": failed,
        "stored_customers": stored[0],
        "stored_orders": stored[1],
    }


def _customer(n: int, at: str) -> dict[str, Any]:
    data = {
        "external_id": f"api-c{n}",
        "occurred_at": at,
        "first_name": "Bo",
        "email": f"api{n}@shop.example",
    }
    return {"type": "customer", "data": data}


def _order(n: int, at: str) -> dict[str, Any]:
    line = {"product_external_id": "bench-p", "quantity": 1, "unit_price": "9.00"}
    data = {
        "external_id": f"api-o{n}",
        "occurred_at": at,
        "status": "placed",
        "customer_external_id": f"api-c{n}",
        "number": f"A-{n}",
        "lines": [line],
    }
    return {"type": "order", "data": data}


def backfill(var_dir: Path, *, orders: int = ORDERS, database_url: str | None = None) -> dict[str, Any]:
    """Both figures, each on a fresh CRM (SQLite files under `var_dir` unless a URL is given)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    for name in ("import.db", "api.db"):
        for suffix in ("", "-wal", "-shm"):
            (var_dir / f"{name}{suffix}").unlink(missing_ok=True)
    imported = measure_import(
        database_url or f"sqlite:///{var_dir / 'import.db'}", var_dir / "files", orders=orders
    )
    api = measure_api(database_url or f"sqlite:///{var_dir / 'api.db'}")
    return {"database": "postgresql" if database_url else "sqlite", "import": imported, "api": api}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    from bot.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=ORDERS)
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database (default: SQLite under var/)")
    args = parser.parse_args(argv)
    result = backfill(
        PROJECT_ROOT / "var" / "bench" / "import", orders=args.orders, database_url=args.database_url
    )
    from bench.report import import_rows

    for area, figure, value in import_rows(result):
        print(f"{area}  {figure}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
