"""The bench CRM: the deterministic demo population at bench size, and the customers who chat.

Generating 10,000 demo customers takes minutes, so a migrated template is kept under var/bench/
and reused while the CRM code (models, migrations, demo data) is unchanged; each run works on a
copy. The demo CRM under var/ is never touched.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.demo import load_demo_data
from bot.crm.migrate import upgrade
from bot.crm.models import (
    Channel,
    ChannelIdentity,
    Customer,
    Order,
    OrderStatus,
    Product,
    Subscription,
    SubscriptionStatus,
)
from bot.gateway import tokens
from bot.settings import PROJECT_ROOT

CRM_SOURCES = PROJECT_ROOT / "bot" / "crm"
CHAT_ORDER_BASE = 900_000  # order numbers CL-9xxxxx, far above the demo's


@dataclass(frozen=True)
class ChatCustomer:
    """A customer the load generator plays: a web visitor with one recent order and a membership."""

    sender_id: str
    token: str  # the visitor's signed token (what the widget keeps in localStorage)
    first_name: str
    order_number: str


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def crm_fingerprint(customers: int, root: Path = CRM_SOURCES) -> str:
    """Changes whenever the CRM code or the population size does."""
    digest = hashlib.sha256(str(customers).encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def crm_template(directory: Path, customers: int, today: date) -> Path:
    """A migrated CRM holding `customers` demo customers, built once per CRM code version."""
    template = directory / f"crm-template-{customers}-{crm_fingerprint(customers)}.db"
    if template.exists():
        return template
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f"crm-template-{customers}-*.db"):
        stale.unlink()
    scratch = template.with_suffix(".partial")
    scratch.unlink(missing_ok=True)
    upgrade(sqlite_url(scratch))
    engine = make_engine(sqlite_url(scratch))
    with Session(engine) as session:
        load_demo_data(session=session, today=today, customers=customers)
        session.commit()
    engine.dispose()
    scratch.replace(template)
    return template


def copy_crm(template: Path, var_dir: Path) -> str:
    """A fresh copy of the template as `var_dir/crm.db`; its URL."""
    var_dir.mkdir(parents=True, exist_ok=True)
    target = var_dir / "crm.db"
    shutil.copyfile(template, target)
    return sqlite_url(target)


def prefer_telegram(*, session: Session) -> int:
    """Customers who have Telegram last wrote to us there, so proactive messages go to Telegram
    (the gateway picks a customer's most recently used identity); returns how many."""
    last_contact = (
        select(Customer.last_contact_at).where(Customer.id == ChannelIdentity.customer_id).scalar_subquery()
    )
    result = session.execute(
        update(ChannelIdentity)
        .where(ChannelIdentity.channel == Channel.TELEGRAM)
        .values(last_seen_at=last_contact)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)


def add_chat_customers(*, session: Session, count: int, secret_key: str, first: int) -> list[ChatCustomer]:
    """`count` standard customers (numbers from `first` on), each with a web identity, one order
    delivered three days ago and an active Bean Club Plus membership."""
    plan = session.scalars(select(Product).where(Product.sku == "PLAN-PLUS")).one()
    now = datetime.now(timezone.utc)
    added = []
    for number in range(first, first + count):
        visitor_id, token = tokens.new_visitor(secret_key)
        first_name = f"Bench{number}"
        customer = Customer(first_name=first_name, last_name="Customer", timezone="Europe/Berlin")
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=visitor_id))
        session.add(customer)
        session.flush()
        order_number = f"CL-{CHAT_ORDER_BASE + number}"
        session.add(
            Order(
                number=order_number,
                customer_id=customer.id,
                status=OrderStatus.DELIVERED,
                total=Decimal("32.00"),
                placed_at=now - timedelta(days=5),
                delivered_at=now - timedelta(days=3),
                carrier="DHL",
                tracking_code=f"TRK-BENCH-{number}",
            )
        )
        session.add(
            Subscription(
                customer_id=customer.id,
                product_id=plan.id,
                status=SubscriptionStatus.ACTIVE,
                monthly_price=plan.price,
                started_at=now - timedelta(days=400),
            )
        )
        added.append(ChatCustomer(f"web:{visitor_id}", token, first_name, order_number))
    return added


def bench_sender_id() -> str:
    """A conversation id nobody in the CRM has (for calling Rasa directly)."""
    return f"web:{uuid.uuid4()}"
