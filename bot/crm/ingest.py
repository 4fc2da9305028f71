"""Idempotent upserts of the shop's records by their own ids, in the order events happened.

Each write names a record by the shop's `external_id` and carries `occurred_at`, the time of the
event it reports. The rules, enforced here for the API and any importer alike:
- the same payload twice changes nothing (`unchanged`, and nothing is audited);
- an event older than the newest one applied to a record does not roll its state back (`stale`);
  it may still fill in a milestone the record lacks (a `paid` event arriving after `shipped`
  leaves the order shipped and records when it was paid);
- a field left out of the payload is left as it is; `null` clears it;
- every change is in the audit log under the API key's name (`api:<name>`), naming the fields
  changed, never their values.
A "delivered" order needs nothing more: the scheduler's delivery check (scheduler/checkins.py)
picks up delivered orders by their delivery time.

Many records at once (the API's batch, the bulk importer) go through `upsert_many`: the same
upserts, with the rows they name fetched up front and their writes flushed together (`Batch`).
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state

from bot.api.schemas import (
    ConsentIn,
    CustomerIn,
    OrderEvent,
    OrderIn,
    ProductIn,
    RefundIn,
    RefundState,
    SubscriptionEvent,
    SubscriptionIn,
    _In,
)
from bot.crm import knowledge
from bot.crm.addresses import address_of
from bot.crm.addresses import assign as assign_address
from bot.crm.consent import set_consent
from bot.crm.models import (
    Consent,
    ConsentPurpose,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
)
from bot.crm.queries import record_audit

DEFAULT_CATEGORY = "general"


class Outcome(str, enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the same payload again, or nothing new in it
    STALE = "stale"  # older than what the record already reflects: nothing rolled back


class Refused(Exception):
    """A record that cannot be written as sent: `kind` is invalid, conflict or not-found."""

    def __init__(self, kind: str, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.kind, self.field, self.reason = kind, field, reason


@dataclass(frozen=True)
class Upserted:
    outcome: Outcome
    record: dict[str, Any]
    row: Any = None


Synced = Customer | Product | Order | Subscription | Refund
Record = CustomerIn | ProductIn | OrderIn | SubscriptionIn | RefundIn  # what RESOURCES parse


def _by_external_id(session: Session, model: type[Synced], external_id: str) -> Any:
    return session.scalar(select(model).where(model.external_id == external_id))


def _required(model: type[Synced], external_id: str, field: str, what: str, batch: Batch) -> Any:
    row = batch.find(model, external_id)
    if row is None:
        raise Refused("invalid", field, f"names no {what} known here: send the {what} first")
    if row.id is None:  # made earlier in this batch: its id is needed to refer to it
        batch.session.flush()
    return row


def _alive(row: Synced) -> bool:
    """Whether `row` is (or is about to be) in the database: a row made in a savepoint that was
    rolled back is not."""
    state = instance_state(row)
    return bool(state.persistent or state.pending)


@dataclass
class Batch:
    """Upserts sharing one transaction, made fast without changing what they do.

    `prefetch` reads the rows the records name (by external id, order number, SKU) in one query per
    kind, and every row an upsert makes or renumbers is remembered, so `find` and `holder` answer what
    a query at that moment would without asking the database. When `deferred`, writes are not flushed
    record by record: the audit entries wait for `flush`, which writes everything at once. Every
    refusal (`Refused`) is raised before its upsert changes anything, so a refused record needs no
    savepoint; a database error at the flush is for the caller to retry record by record."""

    session: Session
    deferred: bool = False
    _rows: dict[tuple[type, str | None], Any] = field(default_factory=dict)
    _holders: dict[tuple[type, str], Any] = field(default_factory=dict)  # order numbers, SKUs
    _audits: list[tuple[Synced, str, dict[str, Any]]] = field(default_factory=list)
    _to_refresh: set[int] = field(default_factory=set)  # customers whose orders changed

    def find(self, model: type[Synced], external_id: str) -> Any:
        """The row the shop calls `external_id`, or None."""
        key = (model, external_id)
        row = self._rows.get(key)
        if key not in self._rows or (row is not None and not _alive(row)):
            row = self._rows[key] = _by_external_id(self.session, model, external_id)
        return row

    def holder(self, model: type[Order] | type[Product], value: str) -> Any:
        """The order with this number, or the product with this SKU; None when it is free."""
        column = "number" if model is Order else "sku"
        key = (model, value)
        row = self._holders.get(key)
        if key in self._holders and (row is None or (_alive(row) and getattr(row, column) == value)):
            return row
        row = self._holders[key] = self.session.scalar(select(model).where(getattr(model, column) == value))
        return row

    def remember(self, row: Synced) -> None:
        """Note a row made or renumbered here, so that later look-ups see it."""
        self._rows[(type(row), row.external_id)] = row
        if isinstance(row, Order):
            self._holders[(Order, row.number)] = row
        elif isinstance(row, Product):
            self._holders[(Product, row.sku)] = row

    def prefetch(self, items: Iterable[tuple[str, Any]]) -> None:
        """Read, one query per kind, every row these (resource, data) records name."""
        wanted: dict[type[Synced], set[str]] = {model: set() for model in MODELS.values()}
        numbers: dict[type[Order] | type[Product], set[str]] = {Order: set(), Product: set()}
        for resource, data in items:
            if not isinstance(data, Record):
                continue
            wanted[MODELS[resource]].add(data.external_id)
            for name, named in REFERENCES:
                value = getattr(data, name, None)
                if value is not None:
                    wanted[named].add(value)
            for line in getattr(data, "lines", None) or ():
                wanted[Product].add(line.product_external_id)
            if isinstance(data, OrderIn) and data.number is not None:
                numbers[Order].add(data.number)
            if isinstance(data, ProductIn):
                numbers[Product].add(data.sku or data.external_id)
        for model, ids in wanted.items():
            found = {row.external_id: row for row in _rows_where(self.session, model, "external_id", ids)}
            self._rows.update({(model, one): found.get(one) for one in ids})
        for model, values in numbers.items():
            column = "number" if model is Order else "sku"
            found = {getattr(row, column): row for row in _rows_where(self.session, model, column, values)}
            self._holders.update({(model, one): found.get(one) for one in values})

    def audit(self, row: Synced, actor: str, details: dict[str, Any]) -> None:
        if self.deferred:
            self._audits.append((row, actor, details))
        else:
            _write_audit(self.session, row, actor, details)

    def refresh(self, customer_id: int) -> None:
        """Recompute what the CRM knows of a customer whose orders changed: now, or once per
        customer at `flush` (in the same transaction) when deferred."""
        if self.deferred:
            self._to_refresh.add(customer_id)
        else:
            knowledge.refresh_customer(session=self.session, customer_id=customer_id)

    def flush(self) -> None:
        """Write what the upserts changed, then their audit entries (which need the rows' ids), then
        refresh the customers whose orders changed."""
        self.session.flush()
        for row, actor, details in self._audits:
            _write_audit(self.session, row, actor, details)
        self._audits.clear()
        self.session.flush()
        if self._to_refresh:  # all at once: the MVC threshold and stats in a few queries, not per customer
            knowledge.refresh_customers(session=self.session, customer_ids=sorted(self._to_refresh))
        self._to_refresh.clear()


REFERENCES = (
    ("customer_external_id", Customer),
    ("product_external_id", Product),
    ("order_external_id", Order),
)
IN_CHUNK = 500  # values per IN (...): well under SQLite's limit of bound parameters


def _rows_where(session: Session, model: type, column: str, values: set[str]) -> list[Any]:
    ordered = sorted(values)
    rows: list[Any] = []
    for start in range(0, len(ordered), IN_CHUNK):
        chunk = ordered[start : start + IN_CHUNK]
        rows += session.scalars(select(model).where(getattr(model, column).in_(chunk)))
    return rows


def _write_audit(session: Session, row: Synced, actor: str, details: dict[str, Any]) -> None:
    outcome = details.pop("outcome")
    record_audit(
        session=session,
        actor=actor[:60],
        action=f"api_{outcome}",
        entity=row.__tablename__,
        entity_id=row.id,
        details=details,
    )


def _is_stale(row: Synced, occurred_at: datetime) -> bool:
    return row.external_updated_at is not None and occurred_at < row.external_updated_at


def _assign(row: Synced, values: dict[str, Any]) -> list[str]:
    """Set the values that differ; the names of those changed."""
    changed = []
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


def _milestone(row: Synced, name: str, at: datetime, *, fresh: bool, earliest: bool = False) -> list[str]:
    """Record when a step happened: a fresh event sets it, a stale one only fills a gap; a start
    (`earliest`) keeps the first time it was told."""
    current = getattr(row, name)
    if current == at or (current is not None and not fresh and not earliest):
        return []
    if earliest and current is not None and current <= at:
        return []
    setattr(row, name, at)
    return [name]


def _finish(
    batch: Batch,
    row: Synced,
    *,
    actor: str,
    created: bool,
    stale: bool,
    changed: Iterable[str],
    occurred_at: datetime,
) -> Outcome:
    """Note the event's time, audit a change, and name the outcome."""
    changed = sorted(set(changed))
    if not stale and (row.external_updated_at is None or occurred_at > row.external_updated_at):
        row.external_updated_at = occurred_at
    if not batch.deferred:
        batch.session.flush()
    if created:
        outcome = Outcome.CREATED
    elif changed:
        outcome = Outcome.UPDATED
    else:
        return Outcome.STALE if stale else Outcome.UNCHANGED
    batch.audit(row, actor, {"outcome": outcome.value, "fields": changed, "stale": stale})
    return outcome


# Customers ------------------------------------------------------------------------------------


def upsert_customer(
    *, session: Session, data: CustomerIn, actor: str, batch: Batch | None = None
) -> Upserted:
    """Create or update a customer, and their marketing consent as of its own time."""
    batch = batch or Batch(session)
    customer = batch.find(Customer, data.external_id)
    created = customer is None
    if customer is None:
        customer = Customer(external_id=data.external_id, tags=[])
        session.add(customer)
        batch.remember(customer)
    stale = not created and _is_stale(customer, data.occurred_at)
    values = data.given("first_name", "last_name", "email", "phone", "language", "timezone", "birthday")
    if created:
        values = {"language": data.language, "timezone": data.timezone, **values}
    changed = [] if stale else _assign(customer, values)
    if "address" in data.model_fields_set and not stale:
        address = data.address.checked() if data.address else None
        if assign_address(customer, address, now=data.occurred_at):
            changed.append("address")
    if "email" in changed:
        customer.email_verified_at = None  # the bot mails an address only once it is confirmed
    if data.marketing_consent is not None:
        session.flush()  # the consent refers to the customer's id
        changed += _consent(session, customer, data.marketing_consent, data.occurred_at)
    outcome = _finish(
        batch,
        customer,
        actor=actor,
        created=created,
        stale=stale,
        changed=changed,
        occurred_at=data.occurred_at,
    )
    return _upserted(batch, outcome, customer)


def _consent(session: Session, customer: Customer, consent: ConsentIn, occurred_at: datetime) -> list[str]:
    """Apply the shop's consent unless the CRM holds a newer choice (e.g. an opt-out in chat)."""
    at = consent.at or occurred_at
    current = _marketing_consent(session, customer)
    if current is not None and (current.changed_at > at or current.granted == consent.granted):
        return []  # a newer choice stands; the same choice again is no change (and no new event)
    changed = set_consent(
        session=session,
        customer=customer,
        purpose=ConsentPurpose.MARKETING,
        granted=consent.granted,
        source=f"shop:{consent.source}",
        now=at,
    )
    return ["marketing_consent"] if changed else []


def _marketing_consent(session: Session, customer: Customer) -> Consent | None:
    return session.scalar(
        select(Consent).where(Consent.customer_id == customer.id, Consent.purpose == ConsentPurpose.MARKETING)
    )


def customer_record(session: Session, customer: Customer) -> dict[str, Any]:
    consent = _marketing_consent(session, customer)
    return {
        "object": "customer",
        "id": customer.id,
        "external_id": customer.external_id,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "email": customer.email,
        "email_verified": customer.email_verified_at is not None,
        "phone": customer.phone,
        "language": customer.language,
        "timezone": customer.timezone,
        "birthday": customer.birthday.isoformat() if customer.birthday else None,
        "address": address.as_dict() if (address := address_of(customer)) else None,
        "marketing_consent": None
        if consent is None
        else {"granted": consent.granted, "source": consent.source, "at": _iso(consent.changed_at)},
        "updated_at": _iso(customer.external_updated_at),
    }


# Products -------------------------------------------------------------------------------------


def upsert_product(*, session: Session, data: ProductIn, actor: str, batch: Batch | None = None) -> Upserted:
    batch = batch or Batch(session)
    product = batch.find(Product, data.external_id)
    created = product is None
    values = data.given("sku", "name", "category", "price", "is_plan", "active", "description")
    if product is None:
        values = _new_product_values(data, values)
        _sku_unused(batch, values["sku"])
        product = Product(external_id=data.external_id, launched_at=data.occurred_at, **values)
        session.add(product)
    stale = not created and _is_stale(product, data.occurred_at)
    if not created and not stale and values.get("sku") not in (None, product.sku):
        _sku_unused(batch, values["sku"])
    changed = [] if stale else _assign(product, values)
    batch.remember(product)
    outcome = _finish(
        batch,
        product,
        actor=actor,
        created=created,
        stale=stale,
        changed=changed,
        occurred_at=data.occurred_at,
    )
    return _upserted(batch, outcome, product)


def _new_product_values(data: ProductIn, values: dict[str, Any]) -> dict[str, Any]:
    for name in ("name", "price"):
        if values.get(name) is None:
            raise Refused("invalid", name, "is required for a new product")
    sku = values.get("sku") or data.external_id
    if len(sku) > 32:
        raise Refused("invalid", "sku", "is required when external_id is longer than 32 characters")
    return {"category": DEFAULT_CATEGORY, "is_plan": False, "active": True, **values, "sku": sku}


def _sku_unused(batch: Batch, sku: str) -> None:
    if batch.holder(Product, sku) is not None:
        raise Refused("conflict", "sku", "is the SKU of another product")


def product_record(product: Product) -> dict[str, Any]:
    return {
        "object": "product",
        "id": product.id,
        "external_id": product.external_id,
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "price": _money(product.price),
        "is_plan": product.is_plan,
        "active": product.active,
        "description": product.description,
        "updated_at": _iso(product.external_updated_at),
    }


# Orders ---------------------------------------------------------------------------------------

ORDER_STATUS = {  # `paid` is a time beside the status (bot/crm/models/commerce.py says why)
    OrderEvent.PLACED: OrderStatus.PLACED,
    OrderEvent.PAID: None,
    OrderEvent.SHIPPED: OrderStatus.SHIPPED,
    OrderEvent.DELIVERED: OrderStatus.DELIVERED,
    OrderEvent.CANCELLED: OrderStatus.CANCELLED,
    OrderEvent.RETURNED: OrderStatus.RETURNED,
}
ORDER_MILESTONE = {
    OrderEvent.PAID: "paid_at",
    OrderEvent.SHIPPED: "shipped_at",
    OrderEvent.DELIVERED: "delivered_at",
}


def upsert_order(*, session: Session, data: OrderIn, actor: str, batch: Batch | None = None) -> Upserted:
    """Create or update an order and its lines, as of one status change."""
    batch = batch or Batch(session)
    order = batch.find(Order, data.external_id)
    created = order is None
    lines = _lines(batch, data) if data.lines is not None else None
    values = data.given("number", "total", "carrier", "tracking_code", "expected_at")
    if data.customer_external_id is not None:
        customer = _required(Customer, data.customer_external_id, "customer_external_id", "customer", batch)
        values["customer_id"] = customer.id
    if lines is not None and "total" not in values:
        values["total"] = sum((line.quantity * line.unit_price for line in lines), Decimal("0.00"))
    if order is None:
        order = _new_order(batch, data, values)
    stale = not created and _is_stale(order, data.occurred_at)
    changed: list[str] = []
    if not stale:
        if values.get("number") not in (None, order.number):
            _number_unused(batch, values["number"])
        changed += _assign(order, values)
        batch.remember(order)
        if ORDER_STATUS[data.status] is not None and order.status != ORDER_STATUS[data.status]:
            order.status = ORDER_STATUS[data.status]
            changed.append("status")
        if lines is not None:
            changed += _replace_lines(order, lines)
    placed_at = data.placed_at or (data.occurred_at if data.status is OrderEvent.PLACED else None)
    if placed_at is not None:
        changed += _milestone(order, "placed_at", placed_at, fresh=not stale, earliest=True)
    if data.status in ORDER_MILESTONE:
        changed += _milestone(order, ORDER_MILESTONE[data.status], data.occurred_at, fresh=not stale)
    outcome = _finish(
        batch,
        order,
        actor=actor,
        created=created,
        stale=stale,
        changed=changed,
        occurred_at=data.occurred_at,
    )
    if outcome in (Outcome.CREATED, Outcome.UPDATED):  # their value may have moved them to another segment
        batch.refresh(order.customer_id)
    return _upserted(batch, outcome, order)


def _new_order(batch: Batch, data: OrderIn, values: dict[str, Any]) -> Order:
    if "customer_id" not in values:
        raise Refused("invalid", "customer_external_id", "is required for a new order")
    if values.get("number") is None:
        raise Refused("invalid", "number", "is required for a new order")
    if values.get("total") is None:
        raise Refused("invalid", "total", "is required for a new order without lines")
    _number_unused(batch, values["number"])
    order = Order(
        external_id=data.external_id,
        number=values["number"],
        customer_id=values["customer_id"],
        total=values["total"],
        status=ORDER_STATUS[data.status] or OrderStatus.PLACED,
        placed_at=data.placed_at or data.occurred_at,
    )
    batch.session.add(order)
    batch.remember(order)
    return order


def _number_unused(batch: Batch, number: str) -> None:
    if batch.holder(Order, number) is not None:
        raise Refused("conflict", "number", "is the number of another order")


def _lines(batch: Batch, data: OrderIn) -> list[OrderLine]:
    """The order's lines as sent, each product known (new, unsaved rows)."""
    lines = []
    for index, line in enumerate(data.lines or ()):
        product = _required(
            Product, line.product_external_id, f"lines[{index}].product_external_id", "product", batch
        )
        lines.append(OrderLine(product_id=product.id, quantity=line.quantity, unit_price=line.unit_price))
    return lines


def _replace_lines(order: Order, lines: list[OrderLine]) -> list[str]:
    def key(line: OrderLine) -> tuple[int, int, Decimal]:
        return (line.product_id, line.quantity, Decimal(line.unit_price))

    if [key(line) for line in order.lines] == [key(line) for line in lines]:
        return []
    order.lines.clear()
    order.lines.extend(lines)
    return ["lines"]


def order_record(session: Session, order: Order) -> dict[str, Any]:
    customer = session.get(Customer, order.customer_id)
    return {
        "object": "order",
        "id": order.id,
        "external_id": order.external_id,
        "number": order.number,
        "customer_external_id": customer.external_id if customer else None,
        "status": order.status.value,
        "total": _money(order.total),
        "carrier": order.carrier,
        "tracking_code": order.tracking_code,
        "placed_at": _iso(order.placed_at),
        "paid_at": _iso(order.paid_at),
        "shipped_at": _iso(order.shipped_at),
        "delivered_at": _iso(order.delivered_at),
        "expected_at": _iso(order.expected_at),
        "lines": [
            {
                "product_external_id": line.product.external_id if line.product else None,
                "quantity": line.quantity,
                "unit_price": _money(line.unit_price),
            }
            for line in order.lines
        ],
        "updated_at": _iso(order.external_updated_at),
    }


# Subscriptions --------------------------------------------------------------------------------

SUBSCRIPTION_STATUS = {
    SubscriptionEvent.STARTED: SubscriptionStatus.ACTIVE,
    SubscriptionEvent.RENEWED: SubscriptionStatus.ACTIVE,
    SubscriptionEvent.PAUSED: SubscriptionStatus.PAUSED,
    SubscriptionEvent.CANCELLED: SubscriptionStatus.CANCELLED,
}
SUBSCRIPTION_MILESTONE = {
    SubscriptionEvent.RENEWED: "renewed_at",
    SubscriptionEvent.PAUSED: "paused_at",
    SubscriptionEvent.CANCELLED: "cancelled_at",
}


def upsert_subscription(
    *, session: Session, data: SubscriptionIn, actor: str, batch: Batch | None = None
) -> Upserted:
    """Create or update a membership as of one event (started, renewed, paused, cancelled)."""
    batch = batch or Batch(session)
    subscription = batch.find(Subscription, data.external_id)
    created = subscription is None
    values = data.given("monthly_price")
    if data.customer_external_id is not None:
        customer = _required(Customer, data.customer_external_id, "customer_external_id", "customer", batch)
        values["customer_id"] = customer.id
    plan = None
    if data.product_external_id is not None:
        plan = _required(Product, data.product_external_id, "product_external_id", "product", batch)
        values["product_id"] = plan.id
    if subscription is None:
        subscription = _new_subscription(session, data, values, plan)
        batch.remember(subscription)
    stale = not created and _is_stale(subscription, data.occurred_at)
    changed: list[str] = []
    if not stale:
        changed += _assign(subscription, values)
        status = _subscription_status(subscription, data.event)
        if subscription.status != status:
            subscription.status = status
            changed.append("status")
    if data.event is SubscriptionEvent.STARTED:
        changed += _milestone(subscription, "started_at", data.occurred_at, fresh=not stale, earliest=True)
    else:
        changed += _milestone(
            subscription, SUBSCRIPTION_MILESTONE[data.event], data.occurred_at, fresh=not stale
        )
    outcome = _finish(
        batch,
        subscription,
        actor=actor,
        created=created,
        stale=stale,
        changed=changed,
        occurred_at=data.occurred_at,
    )
    if "status" in changed:  # a membership change moves the churn risk
        batch.refresh(subscription.customer_id)
    return _upserted(batch, outcome, subscription)


def _subscription_status(subscription: Subscription, event: SubscriptionEvent) -> SubscriptionStatus:
    """The status after `event`. A renewal leaves a cancellation the customer asked for in chat
    pending: it still takes effect at the end of the billing month, as the bot promised."""
    if event is SubscriptionEvent.RENEWED and subscription.status is SubscriptionStatus.CANCEL_REQUESTED:
        return subscription.status
    return SUBSCRIPTION_STATUS[event]


def _new_subscription(
    session: Session, data: SubscriptionIn, values: dict[str, Any], plan: Product | None
) -> Subscription:
    if "customer_id" not in values:
        raise Refused("invalid", "customer_external_id", "is required for a new subscription")
    if plan is None:
        raise Refused("invalid", "product_external_id", "is required for a new subscription")
    subscription = Subscription(
        external_id=data.external_id,
        customer_id=values["customer_id"],
        product_id=plan.id,
        status=SUBSCRIPTION_STATUS[data.event],
        monthly_price=values.get("monthly_price") or plan.price,
        started_at=data.occurred_at,  # the first event told is the best start known until `started`
    )
    session.add(subscription)
    return subscription


def subscription_record(session: Session, subscription: Subscription) -> dict[str, Any]:
    customer = session.get(Customer, subscription.customer_id)
    plan = session.get(Product, subscription.product_id)
    return {
        "object": "subscription",
        "id": subscription.id,
        "external_id": subscription.external_id,
        "customer_external_id": customer.external_id if customer else None,
        "product_external_id": plan.external_id if plan else None,
        "status": subscription.status.value,
        "monthly_price": _money(subscription.monthly_price),
        "started_at": _iso(subscription.started_at),
        "renewed_at": _iso(subscription.renewed_at),
        "paused_at": _iso(subscription.paused_at),
        "cancel_requested_at": _iso(subscription.cancel_requested_at),
        "cancelled_at": _iso(subscription.cancelled_at),
        "updated_at": _iso(subscription.external_updated_at),
    }


# Refunds --------------------------------------------------------------------------------------

REFUND_STATUS = {state: RefundStatus(state.value) for state in RefundState}


def upsert_refund(*, session: Session, data: RefundIn, actor: str, batch: Batch | None = None) -> Upserted:
    batch = batch or Batch(session)
    refund = batch.find(Refund, data.external_id)
    created = refund is None
    values = data.given("amount", "reason")
    order = None
    if data.order_external_id is not None:
        order = _required(Order, data.order_external_id, "order_external_id", "order", batch)
        values.update(order_id=order.id, customer_id=order.customer_id)
    stale = not created and _is_stale(refund, data.occurred_at)
    if not stale:  # checked before anything changes (Batch: a refusal needs no savepoint)
        _within_total(session, values.get("amount"), values.get("order_id", refund and refund.order_id))
    if refund is None:
        refund = _new_refund(session, data, values, order)
        batch.remember(refund)
    changed: list[str] = []
    if not stale:
        changed += _assign(refund, values)
        if refund.status != REFUND_STATUS[data.status]:
            refund.status = REFUND_STATUS[data.status]
            changed.append("status")
    if data.status is not RefundState.REQUESTED:
        changed += _milestone(refund, "decided_at", data.occurred_at, fresh=not stale, earliest=True)
    outcome = _finish(
        batch,
        refund,
        actor=actor,
        created=created,
        stale=stale,
        changed=changed,
        occurred_at=data.occurred_at,
    )
    return _upserted(batch, outcome, refund)


def _new_refund(session: Session, data: RefundIn, values: dict[str, Any], order: Order | None) -> Refund:
    if order is None:
        raise Refused("invalid", "order_external_id", "is required for a new refund")
    if values.get("amount") is None:
        raise Refused("invalid", "amount", "is required for a new refund")
    refund = Refund(
        external_id=data.external_id,
        order_id=order.id,
        customer_id=order.customer_id,
        amount=values["amount"],
        status=REFUND_STATUS[data.status],
        requested_at=data.occurred_at,
    )
    session.add(refund)
    return refund


def _within_total(session: Session, amount: Decimal | None, order_id: int | None) -> None:
    order = session.get(Order, order_id) if order_id is not None else None
    if amount is not None and order is not None and amount > order.total:
        raise Refused("invalid", "amount", f"is more than the order's total ({_money(order.total)})")


def refund_record(session: Session, refund: Refund) -> dict[str, Any]:
    order = session.get(Order, refund.order_id)
    return {
        "object": "refund",
        "id": refund.id,
        "external_id": refund.external_id,
        "order_external_id": order.external_id if order else None,
        "amount": _money(refund.amount),
        "reason": refund.reason,
        "status": refund.status.value,
        "requested_at": _iso(refund.requested_at),
        "decided_at": _iso(refund.decided_at),
        "updated_at": _iso(refund.external_updated_at),
    }


# Reading and dispatch -------------------------------------------------------------------------

Upsert = Callable[..., Upserted]
UPSERTS: dict[str, Upsert] = {
    "customer": upsert_customer,
    "product": upsert_product,
    "order": upsert_order,
    "subscription": upsert_subscription,
    "refund": upsert_refund,
}
MODELS: dict[str, type[Synced]] = {
    "customer": Customer,
    "product": Product,
    "order": Order,
    "subscription": Subscription,
    "refund": Refund,
}


def record_of(*, session: Session, resource: str, external_id: str) -> dict[str, Any] | None:
    """The record the shop knows by `external_id`, as the API shows it; None when there is none."""
    row = _by_external_id(session, MODELS[resource], external_id)
    return None if row is None else _record(session, row)


def _record(session: Session, row: Synced) -> dict[str, Any]:
    if isinstance(row, Customer):
        return customer_record(session, row)
    if isinstance(row, Product):
        return product_record(row)
    if isinstance(row, Order):
        return order_record(session, row)
    if isinstance(row, Subscription):
        return subscription_record(session, row)
    return refund_record(session, row)


def _upserted(batch: Batch, outcome: Outcome, row: Synced) -> Upserted:
    """The outcome with the record as the API shows it; in a deferred batch the record is made
    after the flush (it shows ids), by `upsert_many`."""
    return Upserted(outcome, {} if batch.deferred else _record(batch.session, row), row)


Item = tuple[str, Any]  # (resource, its validated model); anything else is passed through as it is
Result = Upserted | Refused | IntegrityError


def upsert_many(*, session: Session, items: Sequence[Item], actor: str, records: bool = True) -> list[Any]:
    """Upsert each (resource, model) record; for each, its `Upserted`, the `Refused` that stopped
    it, or the `IntegrityError` of a concurrent writer (anything not a model comes back as it is).

    Fast path: one savepoint for all, rows prefetched, one flush. A database error there (another
    writer made the same row meanwhile) rolls that savepoint back and the records are written again
    one savepoint each, as the single upserts do, so only the record concerned fails. An error of any
    other kind fails the call as a whole, and the caller's transaction writes none of them. Without
    `records`, an `Upserted` carries its outcome and row but not the record the API shows."""
    begin_for_savepoints(session)
    batch = Batch(session, deferred=True)
    batch.prefetch(items)
    try:
        with session.begin_nested():
            results = [_try(batch, resource, data, actor) for resource, data in items]
            batch.flush()
    except IntegrityError:
        return [_one_in_savepoint(session, resource, data, actor) for resource, data in items]
    if not records:
        return results
    return [
        Upserted(done.outcome, _record(session, done.row), done.row) if isinstance(done, Upserted) else done
        for done in results
    ]


def _try(batch: Batch, resource: str, data: Any, actor: str) -> Any:
    if not isinstance(data, _In):
        return data
    try:
        return UPSERTS[resource](session=batch.session, data=data, actor=actor, batch=batch)
    except Refused as refused:
        return refused


def _one_in_savepoint(session: Session, resource: str, data: Any, actor: str) -> Any:
    if not isinstance(data, _In):
        return data
    try:
        with session.begin_nested():
            return UPSERTS[resource](session=session, data=data, actor=actor)
    except (Refused, IntegrityError) as error:
        return error


def begin_for_savepoints(session: Session) -> None:
    """Open the transaction on SQLite before the first savepoint. Python's sqlite3 begins one only
    before a write, so a SAVEPOINT issued first starts it, and releasing that savepoint commits it:
    the first records would be written even if the work failed later (or was a dry run)."""
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    if isinstance(dbapi, sqlite3.Connection) and not dbapi.in_transaction:
        connection.exec_driver_sql("BEGIN")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _money(value: Decimal | None) -> str | None:
    return f"{Decimal(value):.2f}" if value is not None else None
