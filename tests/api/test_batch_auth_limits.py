"""The API's doors, on SQLite and PostgreSQL: keys and scopes, the batch answering per record with
a failing record touching nothing, size and rate limits, one problem shape for every refusal,
hostile input stored as sent or refused by field, and an OpenAPI description of every route."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.routing import Route

from bot.api.routes import UPSERTS
from bot.api.schemas import MAX_BATCH
from bot.crm.models import ApiKey, Customer, Order
from tests.api.conftest import Shop, T, customer, order, product

PROBLEM_KEYS = {"type", "title", "status", "detail", "errors"}


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert (body["type"], body["status"]) == (f"/api/v1/problems/{kind}", status)
    assert body["title"] and body["detail"]
    assert all(set(error) == {"field", "reason"} for error in body["errors"])
    return dict(body)


def customers(shop: Shop) -> int:
    with shop.db() as db:
        return int(db.scalar(select(func.count()).select_from(Customer)) or 0)


def test_no_unknown_or_revoked_key_gets_a_401_and_writes_nothing(shop: Shop) -> None:
    shop.keys["unknown"] = "clk_" + "x" * 43
    shop.keys["not ours"] = "sk_live_123"
    for key in ("none", "unknown", "revoked", "not ours"):
        response = shop.post("/customers", customer(), key=key)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(shop.get("/customers/cus_1", key=key), 401, "unauthenticated")
    basic = shop.client.post(
        "/customers", json=customer(), headers={"Authorization": f"Basic {shop.keys['write']}"}
    )
    assert_problem(basic, 401, "unauthenticated")
    assert customers(shop) == 0


def test_a_read_key_reads_but_may_not_write(shop: Shop) -> None:
    refused = shop.post("/customers", customer(), key="read")
    batch = shop.post("/batch", {"records": [{"type": "customer", "data": customer()}]}, key="read")
    shop.post("/customers", customer())

    assert_problem(refused, 403, "read-only-key")
    assert_problem(batch, 403, "read-only-key")
    assert shop.get("/customers/cus_1", key="read").status_code == 200
    assert customers(shop) == 1


def test_a_key_records_its_last_use(shop: Shop) -> None:
    with shop.db() as db:
        assert db.scalar(select(ApiKey.last_used_at).where(ApiKey.name == "reporting")) is None
    shop.get("/customers/cus_1", key="read")
    with shop.db() as db:
        assert db.scalar(select(ApiKey.last_used_at).where(ApiKey.name == "reporting")) is not None


def test_a_batch_answers_per_record_and_a_failing_record_touches_nothing(shop: Shop) -> None:
    records = [
        {"type": "customer", "data": customer()},
        {"type": "product", "data": product()},
        {"type": "order", "data": order()},
        {"type": "order", "data": order("ord_2")},  # the same number as ord_1: refused by the CRM
        {"type": "customer", "data": customer("cus_2", email="not an address")},  # refused by its fields
        {"type": "coupon", "data": {}},
        "not a record",
        {"type": "customer", "data": customer("cus_3")},
        {"type": "customer", "data": customer()},  # the first record again
    ]

    response = shop.post("/batch", {"records": records})

    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"created": 4, "updated": 0, "unchanged": 1, "stale": 0, "failed": 4}
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(records)))
    assert [r["status"] for r in results] == [201, 201, 201, 409, 422, 422, 422, 201, 200]
    assert results[3]["problem"]["errors"] == [
        {"field": "number", "reason": "is the number of another order"}
    ]
    assert results[4]["problem"]["errors"] == [{"field": "data.email", "reason": "is not an email address"}]
    assert results[5]["problem"]["errors"][0]["field"] == "type"
    assert results[2]["record"]["total"] == "80.00"
    with shop.db() as db:
        assert db.scalar(select(func.count()).select_from(Order)) == 1
        assert set(db.scalars(select(Customer.external_id))) == {"cus_1", "cus_3"}


def test_a_batch_of_more_than_1000_records_is_refused_whole(shop: Shop) -> None:
    records = [{"type": "customer", "data": customer(f"c{n}")} for n in range(MAX_BATCH + 1)]

    body = assert_problem(shop.post("/batch", {"records": records}), 413, "too-large")

    assert body["errors"] == [{"field": "records", "reason": "has more than 1,000 records"}]
    assert customers(shop) == 0
    assert_problem(shop.post("/batch", {"records": []}), 422, "invalid")


def test_a_body_over_the_limit_is_413(shop: Shop) -> None:
    shop.api.max_body = 2048
    big = customer(first_name="x" * 80, last_name="y" * 80) | {"padding": "z" * 3000}

    assert_problem(shop.post("/customers", big), 413, "too-large")
    streamed = shop.client.post(  # no Content-Length: the limit holds while reading
        "/customers",
        content=(chunk for chunk in [b'{"external_id": "', b"a" * 4096, b'"}']),
        headers={"Authorization": f"Bearer {shop.keys['write']}", "Content-Type": "application/json"},
    )
    assert_problem(streamed, 413, "too-large")


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_do_not(shop: Shop) -> None:
    shop.api.buckets.burst = 3
    shop.api.buckets._buckets.clear()
    for _ in range(3):
        assert shop.get("/customers/cus_1").status_code == 404

    limited = shop.get("/customers/cus_1")
    other_key = shop.get("/customers/cus_1", key="read")
    shop.clock.now += 1.0  # one token back (1 a second)
    again = shop.get("/customers/cus_1")

    assert_problem(limited, 429, "rate-limited")
    assert limited.headers["Retry-After"] == "1"
    assert other_key.status_code == 404
    assert again.status_code == 404


def test_every_refusal_has_the_same_problem_shape(shop: Shop) -> None:
    write = {"Authorization": f"Bearer {shop.keys['write']}"}
    assert_problem(shop.client.post("/customers", content=b"{not json", headers=write), 400, "malformed")
    assert_problem(shop.client.post("/customers", content=b"\xff\xfe", headers=write), 400, "malformed")
    assert_problem(
        shop.client.post("/customers", content=b"a=1", headers={**write, "Content-Type": "text/plain"}),
        415,
        "unsupported-media-type",
    )
    assert_problem(shop.client.get("/coupons/1", headers=write), 404, "not-found")
    assert_problem(shop.client.delete("/customers/cus_1", headers=write), 405, "method-not-allowed")
    assert_problem(shop.post("/customers", ["a list"]), 422, "invalid")


def test_invalid_fields_are_each_named_with_a_reason(shop: Shop) -> None:
    body = {
        "external_id": "has space",
        "occurred_at": "2026-01-01T10:00:00",
        "timezone": "Mars/Olympus",
        "language": "english",
        "birthday": "2999-01-01",
        "marketing_consent": {"granted": "yes", "source": "Checkout Page"},
        "shoe_size": 42,
    }

    problem = assert_problem(shop.post("/customers", body), 422, "invalid")

    assert {e["field"]: e["reason"] for e in problem["errors"]} == {
        "external_id": "is 1 to 64 ASCII characters without spaces",
        "occurred_at": "needs a time zone, e.g. 2026-05-01T10:00:00Z",
        "timezone": "is not a time zone of the IANA database, e.g. Europe/Berlin",
        "language": "is a language code like en or pt-BR",
        "birthday": "is not a plausible birthday (1900 to today)",
        "marketing_consent.granted": "Input should be a valid boolean",
        "marketing_consent.source": "is a lower-case word like checkout or newsletter_form",
        "shoe_size": "is not a field of this resource",
    }
    assert problem["detail"] == "8 fields are invalid: nothing was written."
    future = shop.post("/customers", customer(occurred_at="2999-01-01T00:00:00Z"))
    assert assert_problem(future, 422, "invalid")["errors"] == [
        {"field": "occurred_at", "reason": "is in the future"}
    ]
    assert customers(shop) == 0


def test_hostile_text_is_stored_as_sent_or_refused_by_its_field(shop: Shop) -> None:
    html = "<script>alert(1)</script>'\"&"
    stored = shop.post("/customers", customer(first_name=html, last_name="Zoë 👩‍💻 O'Brien"))
    decomposed = shop.post("/customers", customer("cus_2", first_name="Zoe\u0308"))  # e + combining diaeresis

    assert stored.status_code == 201
    assert (stored.json()["first_name"], stored.json()["last_name"]) == (html, "Zoë 👩‍💻 O'Brien")
    assert decomposed.json()["first_name"] == "Zoë"  # stored NFC, as typed text is compared
    write = {"Authorization": f"Bearer {shop.keys['write']}", "Content-Type": "application/json"}
    for field, raw, reason in [
        ("first_name", '"a\\u0000b"', "contains a control or invisible character (U+0000)"),
        ("first_name", '"\\ud800"', "is not valid Unicode text (a lone surrogate)"),
        ("first_name", '"evil\\u202etxt.exe"', "contains a control or invisible character (U+202E)"),
        ("last_name", '"line\\nbreak"', "contains a control or invisible character (U+000A)"),
        ("first_name", f'"{"x" * 81}"', "String should have at most 80 characters"),
        ("external_id", '"cus_\\u00e9"', "is 1 to 64 ASCII characters without spaces"),
    ]:
        payload = f'{{"external_id": "cus_9", "occurred_at": "{T(0)}", "{field}": {raw}}}'
        if field == "external_id":
            payload = f'{{"external_id": {raw}, "occurred_at": "{T(0)}"}}'
        problem = assert_problem(
            shop.client.post("/customers", content=payload.encode(), headers=write), 422, "invalid"
        )
        assert problem["errors"] == [{"field": field, "reason": reason}], raw
    huge = shop.post("/products", product(description="x" * 1_000_000))
    assert_problem(huge, 413, "too-large")
    assert customers(shop) == 2


def test_the_openapi_description_lists_every_route(shop: Shop) -> None:
    response = shop.client.get("/openapi.json")  # public, like the README

    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    assert spec["servers"] == [{"url": "http://shop.test/api/v1"}]
    routes = {
        (route.path.replace(":path}", "}"), method.lower())
        for route in shop.api.routes()
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {(path, method) for path, operations in spec["paths"].items() for method in operations}
    assert described == routes
    assert len(routes) == 12
    order_body = spec["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert order_body == {"$ref": "#/components/schemas/OrderIn"}
    assert "status" in spec["components"]["schemas"]["OrderIn"]["required"]


def test_a_batch_that_fails_as_a_whole_writes_none_of_its_records(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(**_: Any) -> None:
        raise RuntimeError("the database connection was lost")  # what a 500 mid-batch looks like

    monkeypatch.setitem(UPSERTS, "refund", crash)
    records = [
        {"type": "customer", "data": customer()},
        {"type": "customer", "data": customer("cus_2")},
        {"type": "refund", "data": {"external_id": "re_1", "occurred_at": T(0), "status": "requested"}},
    ]

    assert_problem(shop.post("/batch", {"records": records}), 500, "server-error")

    assert customers(shop) == 0


def test_logs_carry_ids_never_the_key_or_the_customers_data(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    shop.post("/customers", customer(email="ulla@example.com"))
    shop.post(
        "/batch", {"records": [{"type": "customer", "data": customer("cus_2", email="bror@example.com")}]}
    )
    shop.post("/customers", customer(), key="revoked")

    assert "api upsert customer id=1 key=1 outcome=created" in caplog.text
    for secret in (*shop.keys.values(), "ulla@example.com", "bror@example.com", "Ulla", "cus_2"):
        assert secret not in caplog.text
