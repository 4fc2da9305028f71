"""Contract of the upserts, on SQLite and PostgreSQL: created, the same payload again changing
nothing, an older event not rolling state back, references between records, and the audit log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.actions.lookups import latest_order
from bot.actions.orders import order_slots
from bot.crm.consent import set_consent
from bot.crm.models import (
    AuditLog,
    Consent,
    ConsentPurpose,
    Customer,
    Delivery,
    InteractionEvent,
    Order,
    OrderLine,
    OutreachKind,
    Subscription,
    SubscriptionStatus,
)
from bot.crm.models.base import utcnow
from scheduler.checkins import delivery_checks
from tests.api.conftest import BASE, Shop, T, customer, order, product


def seed(shop: Shop) -> None:
    """A customer and a product, as a shop sends them before its orders."""
    assert shop.post("/customers", customer()).status_code == 201
    assert shop.post("/products", product()).status_code == 201


def audit_rows(shop: Shop) -> list[AuditLog]:
    with shop.db() as db:
        return list(db.scalars(select(AuditLog).where(AuditLog.actor.like("api:%")).order_by(AuditLog.id)))


def test_a_customer_is_created_then_the_same_payload_changes_nothing(shop: Shop) -> None:
    body = customer(email="ulla@example.com", timezone="Europe/Berlin", birthday="1990-04-02", language="de")

    first = shop.post("/customers", body)
    again = shop.post("/customers", body)

    assert (first.status_code, first.headers["CareLoop-Outcome"]) == (201, "created")
    assert (again.status_code, again.headers["CareLoop-Outcome"]) == (200, "unchanged")
    assert first.json() == again.json() == shop.get("/customers/cus_1", key="read").json()
    record = first.json()
    assert {k: record[k] for k in ("first_name", "email", "timezone", "birthday", "language")} == {
        "first_name": "Ulla",
        "email": "ulla@example.com",
        "timezone": "Europe/Berlin",
        "birthday": "1990-04-02",
        "language": "de",
    }
    assert record["email_verified"] is False  # the bot mails an address once the customer confirmed it
    with shop.db() as db:
        assert db.scalar(select(func.count()).select_from(Customer)) == 1
    (created,) = audit_rows(shop)  # the unchanged repeat is not a write
    assert (created.actor, created.action, created.entity, created.entity_id) == (
        "api:shop backend",
        "api_created",
        "customer",
        record["id"],
    )
    assert "ulla@example.com" not in str(created.details)  # field names, never values


def test_an_older_event_does_not_roll_a_customer_back(shop: Shop) -> None:
    shop.post("/customers", customer(minutes=10, email="new@example.com"))

    late = shop.post("/customers", customer(minutes=5, email="old@example.com", phone="+49 30 1234"))
    newer = shop.post("/customers", customer(minutes=20, phone="+49 30 9999"))

    assert (late.status_code, late.headers["CareLoop-Outcome"]) == (200, "stale")
    assert late.json()["email"] == "new@example.com" and late.json()["phone"] is None
    assert newer.headers["CareLoop-Outcome"] == "updated"
    assert newer.json()["email"] == "new@example.com"  # left out: left as it was
    assert newer.json()["phone"] == "+49 30 9999"
    assert newer.json()["updated_at"] == T(20)
    assert [row.action for row in audit_rows(shop)] == ["api_created", "api_updated"]
    assert audit_rows(shop)[1].details == {"fields": ["phone"], "stale": False}


def test_null_clears_a_field_and_an_email_change_needs_a_new_confirmation(shop: Shop) -> None:
    shop.post("/customers", customer(email="a@example.com", phone="+4930123"))
    with shop.db() as db:
        db.scalars(select(Customer)).one().email_verified_at = utcnow()
        db.commit()

    same = shop.post("/customers", customer(minutes=1, email="a@example.com"))
    changed = shop.post("/customers", customer(minutes=2, email="b@example.com", phone=None))

    assert same.json()["email_verified"] is True
    assert changed.json()["email_verified"] is False
    assert changed.json()["phone"] is None


def test_marketing_consent_lands_in_the_crm_consent_and_a_newer_opt_out_in_chat_stands(shop: Shop) -> None:
    consent = {"granted": True, "source": "checkout", "at": T(1)}
    created = shop.post("/customers", customer(minutes=1, marketing_consent=consent))
    assert created.json()["marketing_consent"] == {"granted": True, "source": "shop:checkout", "at": T(1)}
    again = shop.post("/customers", customer(minutes=1, marketing_consent=consent))
    assert again.headers["CareLoop-Outcome"] == "unchanged"

    with shop.db() as db:
        ulla = db.scalars(select(Customer)).one()
        assert db.scalar(select(func.count()).select_from(InteractionEvent)) == 1  # the repeat logged nothing
        set_consent(  # she opts out in a chat after that
            session=db,
            customer=ulla,
            purpose=ConsentPurpose.MARKETING,
            granted=False,
            source="web:chat",
            now=BASE + timedelta(minutes=30),
        )
        db.commit()

    stale = shop.post("/customers", customer(minutes=40, marketing_consent={**consent, "at": T(20)}))
    later = shop.post(
        "/customers", customer(minutes=50, marketing_consent={"granted": True, "source": "newsletter_form"})
    )

    assert stale.json()["marketing_consent"]["granted"] is False  # her newer choice stands
    assert later.json()["marketing_consent"] == {
        "granted": True,
        "source": "shop:newsletter_form",
        "at": T(50),
    }
    with shop.db() as db:
        assert db.scalar(select(func.count()).select_from(Consent)) == 1


def test_a_product_gets_its_sku_from_its_id_and_a_taken_sku_is_a_conflict(shop: Shop) -> None:
    created = shop.post("/products", product(category="grinders", description="<b>Burr</b>\nsteel"))
    taken = shop.post("/products", product("prod_2", sku="prod_1"))
    missing = shop.post("/products", {"external_id": "prod_3", "occurred_at": T(0), "name": "No price"})

    assert created.status_code == 201
    assert {k: created.json()[k] for k in ("sku", "category", "price", "description")} == {
        "sku": "prod_1",
        "category": "grinders",
        "price": "40.00",
        "description": "<b>Burr</b>\nsteel",
    }
    assert taken.status_code == 409
    assert taken.json()["errors"] == [{"field": "sku", "reason": "is the SKU of another product"}]
    assert missing.status_code == 422
    assert missing.json()["errors"] == [{"field": "price", "reason": "is required for a new product"}]


def test_an_order_goes_through_its_status_changes(shop: Shop) -> None:
    seed(shop)

    placed = shop.post("/orders", order(minutes=1))
    paid = shop.post("/orders", order(status="paid", minutes=2))
    shipped = shop.post(
        "/orders", {**order(status="shipped", minutes=3), "carrier": "DHL", "tracking_code": "JJD0001"}
    )
    delivered = shop.post("/orders", order(status="delivered", minutes=4))

    assert [r.status_code for r in (placed, paid, shipped, delivered)] == [201, 200, 200, 200]
    assert placed.json()["total"] == "80.00"  # the sum of the lines
    assert placed.json()["lines"] == [{"product_external_id": "prod_1", "quantity": 2, "unit_price": "40.00"}]
    assert paid.json()["status"] == "placed" and paid.json()["paid_at"] == T(2)  # paid, waiting to ship
    assert delivered.json() | {"lines": None} == {
        "object": "order",
        "id": placed.json()["id"],
        "external_id": "ord_1",
        "number": "1001",
        "customer_external_id": "cus_1",
        "status": "delivered",
        "total": "80.00",
        "carrier": "DHL",
        "tracking_code": "JJD0001",
        "placed_at": T(1),
        "paid_at": T(2),
        "shipped_at": T(3),
        "delivered_at": T(4),
        "expected_at": None,
        "lines": None,
        "updated_at": T(4),
    }
    with shop.db() as db:
        assert db.scalar(select(func.count()).select_from(OrderLine)) == 1  # lines replaced, not added


def test_out_of_order_status_changes_fill_in_times_but_never_roll_the_status_back(shop: Shop) -> None:
    seed(shop)
    shop.post("/orders", order(status="delivered", minutes=10))

    shipped_late = shop.post("/orders", {**order(status="shipped", minutes=5), "carrier": "UPS"})
    placed_late = shop.post("/orders", order(status="placed", minutes=1))
    shipped_again = shop.post("/orders", {**order(status="shipped", minutes=5), "carrier": "UPS"})

    assert shipped_late.headers["CareLoop-Outcome"] == "updated"  # it filled in the shipping time
    record = placed_late.json()
    assert (record["status"], record["carrier"]) == ("delivered", None)
    assert (record["placed_at"], record["shipped_at"], record["delivered_at"]) == (T(1), T(5), T(10))
    assert shipped_again.headers["CareLoop-Outcome"] == "stale"


def test_an_order_refers_to_records_the_crm_knows(shop: Shop) -> None:
    seed(shop)

    unknown_customer = shop.post("/orders", order(customer_external_id="cus_404"))
    unknown_product = shop.post(
        "/orders", order(lines=[{"product_external_id": "prod_404", "quantity": 1, "unit_price": "1.00"}])
    )
    no_number = shop.post("/orders", {k: v for k, v in order().items() if k != "number"})
    shop.post("/orders", order())
    same_number = shop.post("/orders", order("ord_2"))

    assert unknown_customer.status_code == unknown_product.status_code == no_number.status_code == 422
    assert unknown_customer.json()["errors"] == [
        {"field": "customer_external_id", "reason": "names no customer known here: send the customer first"}
    ]
    assert unknown_product.json()["errors"][0]["field"] == "lines[0].product_external_id"
    assert no_number.json()["errors"] == [{"field": "number", "reason": "is required for a new order"}]
    assert same_number.status_code == 409
    with shop.db() as db:
        assert db.scalar(select(func.count()).select_from(Order)) == 1


def test_a_delivered_order_gets_the_delivery_check(shop: Shop) -> None:
    seed(shop)
    shop.post("/orders", order(status="delivered", minutes=4))
    delivered_at = BASE + timedelta(minutes=4)

    with shop.db() as db:
        assert delivery_checks(session=db, now=delivered_at + timedelta(days=1)) == 0  # not yet
        assert delivery_checks(session=db, now=delivered_at + timedelta(days=2, minutes=1)) == 1
        check = db.scalars(select(Delivery).where(Delivery.kind == OutreachKind.DELIVERY_CHECK)).one()
        assert check.payload == {"order_id": "1001"}


def test_a_subscription_is_started_paused_renewed_and_cancelled_in_time_order(shop: Shop) -> None:
    seed(shop)
    shop.post("/products", product("plan_1", name="Beans monthly", price="15.00", is_plan=True))
    sub = {"external_id": "sub_1", "customer_external_id": "cus_1", "product_external_id": "plan_1"}

    started = shop.post("/subscriptions", {**sub, "event": "started", "occurred_at": T(1)})
    paused = shop.post("/subscriptions", {**sub, "event": "paused", "occurred_at": T(3)})
    renewed_late = shop.post("/subscriptions", {**sub, "event": "renewed", "occurred_at": T(2)})
    cancelled = shop.post("/subscriptions", {**sub, "event": "cancelled", "occurred_at": T(4)})

    assert started.status_code == 201
    assert (started.json()["status"], started.json()["monthly_price"], started.json()["started_at"]) == (
        "active",
        "15.00",
        T(1),
    )
    assert paused.json()["status"] == "paused"
    assert renewed_late.json()["status"] == "paused"  # older than the pause: recorded, not applied
    assert renewed_late.json()["renewed_at"] == T(2)
    assert (cancelled.json()["status"], cancelled.json()["cancelled_at"]) == ("cancelled", T(4))


def test_a_renewal_leaves_a_cancellation_asked_for_in_chat_pending(shop: Shop) -> None:
    seed(shop)
    sub = {"external_id": "sub_1", "customer_external_id": "cus_1", "product_external_id": "prod_1"}
    shop.post("/subscriptions", {**sub, "event": "started", "occurred_at": T(1)})
    with shop.db() as db:
        db.scalars(select(Subscription)).one().status = SubscriptionStatus.CANCEL_REQUESTED
        db.commit()

    renewed = shop.post("/subscriptions", {**sub, "event": "renewed", "occurred_at": T(2)})

    assert renewed.json()["status"] == "cancel_requested"


def test_a_refund_is_requested_then_decided_and_never_more_than_the_order(shop: Shop) -> None:
    seed(shop)
    shop.post("/orders", order())
    refund = {"external_id": "re_1", "order_external_id": "ord_1", "amount": "20.00", "reason": "broken"}

    requested = shop.post("/refunds", {**refund, "status": "requested", "occurred_at": T(2)})
    approved = shop.post("/refunds", {**refund, "status": "approved", "occurred_at": T(3)})
    too_much = shop.post(
        "/refunds",
        {**refund, "external_id": "re_2", "amount": "80.01", "status": "requested", "occurred_at": T(3)},
    )

    assert requested.status_code == 201
    assert (approved.json()["status"], approved.json()["requested_at"], approved.json()["decided_at"]) == (
        "approved",
        T(2),
        T(3),
    )
    assert too_much.status_code == 422
    assert too_much.json()["errors"] == [
        {"field": "amount", "reason": "is more than the order's total (80.00)"}
    ]


def test_every_resource_reads_back_by_its_external_id_and_a_missing_one_is_404(shop: Shop) -> None:
    seed(shop)
    shop.post("/orders", order())
    shop.post(
        "/subscriptions",
        {
            "external_id": "a/b:c",
            "customer_external_id": "cus_1",
            "product_external_id": "prod_1",
            "event": "started",
            "occurred_at": T(1),
        },
    )
    shop.post(
        "/refunds",
        {
            "external_id": "re_1",
            "order_external_id": "ord_1",
            "amount": "1.00",
            "status": "requested",
            "occurred_at": T(2),
        },
    )

    for path in (
        "/customers/cus_1",
        "/products/prod_1",
        "/orders/ord_1",
        "/subscriptions/a/b:c",
        "/refunds/re_1",
    ):
        response = shop.get(path, key="read")
        assert response.status_code == 200, path
        assert response.json()["external_id"] == path.split("/", 2)[2]
    missing = shop.get("/orders/ord_404", key="read")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_what_the_bot_says_about_an_order_follows_the_api_at_once(shop: Shop) -> None:
    seed(shop)
    shop.post("/orders", order(minutes=1))

    def bot_reads() -> dict[str, object]:
        with shop.db() as db:
            ulla = db.scalars(select(Customer)).one()
            found = latest_order(session=db, customer_id=ulla.id)  # what action_check_order_status reads
            assert found is not None
            return {event["name"]: event["value"] for event in order_slots(found, ulla.timezone)}

    assert bot_reads()["order_state"] == "placed"
    shop.post("/orders", order(status="shipped", minutes=2, carrier="DHL", tracking_code="JJD0001"))
    assert {k: bot_reads()[k] for k in ("order_state", "order_carrier", "order_tracking")} == {
        "order_state": "shipped",
        "order_carrier": "DHL",
        "order_tracking": "JJD0001",
    }
