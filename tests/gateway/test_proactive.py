"""POST /internal/proactive: only with the internal token, only EXTERNAL_* intents, delivered on the
customer's most recent reachable channel, and never twice for the same idempotency key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.crm.models import Channel, ChannelIdentity, Customer, Message, OutboundStatus, utcnow
from tests.gateway.harness import INTERNAL_TOKEN, RunningGateway, connect
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(60)


def post(
    gateway: RunningGateway,
    body: Any,
    token: str | None = INTERNAL_TOKEN,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(
        f"{gateway.url}/internal/proactive", json=body, headers={**auth, **(headers or {})}, timeout=10
    )


def make_web_customer(gateway: RunningGateway, visitor_id: str, *, seen_minutes_ago: float = 0) -> int:
    with gateway.crm() as crm:
        customer = Customer(first_name="Pat", last_name="Proactive")
        customer.identities.append(
            ChannelIdentity(
                channel=Channel.WEB,
                external_id=visitor_id,
                last_seen_at=utcnow() - timedelta(minutes=seen_minutes_ago),
            )
        )
        crm.add(customer)
        crm.commit()
        return customer.id


@pytest.mark.parametrize("token", [None, "wrong-token", INTERNAL_TOKEN + "x", INTERNAL_TOKEN[:-1]])
def test_without_the_internal_token_nothing_happens(
    gateway: RunningGateway, rasa: StandInRasa, token: str | None
) -> None:
    response = post(gateway, {"customer_id": 1, "intent": "EXTERNAL_checkin"}, token=token)
    basic = post(
        gateway,
        {"customer_id": 1, "intent": "EXTERNAL_checkin"},
        None,
        {"Authorization": f"Basic {INTERNAL_TOKEN}"},
    )
    assert response.status_code == basic.status_code == 401
    assert rasa.trigger_calls == []


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": 1, "intent": "greet"},
        {"customer_id": 1, "intent": "EXTERNAL_"},
        {"customer_id": 1, "intent": "EXTERNAL_x; drop"},
        {"intent": "EXTERNAL_checkin"},
        {"customer_id": 1, "sender_id": "web:x", "intent": "EXTERNAL_checkin"},
        {"customer_id": "1", "intent": "EXTERNAL_checkin"},
        {"customer_id": True, "intent": "EXTERNAL_checkin"},
        {"customer_id": 1, "intent": "EXTERNAL_checkin", "entities": ["not", "an", "object"]},
        {"customer_id": 1, "intent": "EXTERNAL_checkin", "idempotency_key": ""},
        ["a", "list"],
    ],
)
def test_malformed_requests_are_refused(gateway: RunningGateway, rasa: StandInRasa, body: Any) -> None:
    response = post(gateway, body)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"
    assert rasa.trigger_calls == []


def test_invalid_json_and_huge_bodies_are_refused(gateway: RunningGateway) -> None:
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}", "Content-Type": "application/json"}
    bad = httpx.post(f"{gateway.url}/internal/proactive", content=b"{nope", headers=headers, timeout=10)
    huge = httpx.post(
        f"{gateway.url}/internal/proactive", content=b"x" * 100_000, headers=headers, timeout=10
    )
    assert (bad.status_code, huge.status_code) == (400, 400)
    assert "larger than" in huge.json()["detail"]


def test_unknown_and_unreachable_customers_are_reported(gateway: RunningGateway, rasa: StandInRasa) -> None:
    assert post(gateway, {"customer_id": 999_999, "intent": "EXTERNAL_checkin"}).status_code == 404
    assert post(gateway, {"sender_id": "web:nobody", "intent": "EXTERNAL_checkin"}).status_code == 404
    assert post(gateway, {"sender_id": "fax:123", "intent": "EXTERNAL_checkin"}).status_code == 400
    with gateway.crm() as crm:
        blocked = Customer(first_name="Blocked")
        blocked.identities.append(ChannelIdentity(channel=Channel.WEB, external_id="gone", reachable=False))
        telegram_only = Customer(first_name="NoTelegramHere")  # this gateway runs no Telegram
        telegram_only.identities.append(ChannelIdentity(channel=Channel.TELEGRAM, external_id="42"))
        crm.add_all([blocked, telegram_only])
        crm.commit()
        ids = blocked.id, telegram_only.id
    for customer_id in ids:
        response = post(gateway, {"customer_id": customer_id, "intent": "EXTERNAL_checkin"})
        assert (response.status_code, response.json()["error"]) == (409, "unreachable")
    assert rasa.trigger_calls == []


async def test_a_proactive_message_reaches_a_connected_visitor_and_is_stored(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    from bot.gateway.tokens import visitor_of

    visitor_id = visitor_of(gateway.settings.secret_key, visitor.token)
    assert visitor_id is not None
    customer_id = make_web_customer(gateway, visitor_id)

    response = post(
        gateway,
        {"customer_id": customer_id, "intent": "EXTERNAL_checkin", "entities": {"order_id": "CL-1"}},
        headers={"X-CareLoop-Actor": "scheduler"},
    )
    pushed = await visitor.reply()

    assert response.status_code == 200
    result = response.json()
    assert result["sender_id"] == f"web:{visitor_id}" and result["replayed"] is False
    assert result["messages"] == [{"id": pushed["id"], "status": "sent"}]
    assert pushed["text"] == "Hi again! Is everything fine with your order?"
    assert rasa.trigger_calls == [
        {"sender": f"web:{visitor_id}", "name": "EXTERNAL_checkin", "entities": {"order_id": "CL-1"}}
    ]
    with gateway.crm() as crm:
        stored = crm.get_one(Message, pushed["id"])
        assert stored.payload == {"proactive": "EXTERNAL_checkin"}
        assert stored.delivery_status in (OutboundStatus.SENT, OutboundStatus.DELIVERED)


def test_the_same_idempotency_key_never_sends_twice(gateway: RunningGateway, rasa: StandInRasa) -> None:
    customer_id = make_web_customer(gateway, "idem-visitor")
    body = {
        "customer_id": customer_id,
        "intent": "EXTERNAL_checkin",
        "idempotency_key": "checkin:customer:7:d1",
    }

    first, second = post(gateway, body), post(gateway, body)
    other_key = post(gateway, {**body, "idempotency_key": "checkin:customer:7:d2"})

    assert first.status_code == second.status_code == 200
    assert second.json()["messages"] == first.json()["messages"] and second.json()["replayed"] is True
    assert first.json()["messages"][0]["status"] == "queued"  # the visitor is away: waits for them
    assert other_key.json()["messages"][0]["id"] != first.json()["messages"][0]["id"]
    assert len(rasa.trigger_calls) == 2


def test_the_most_recently_used_reachable_identity_is_chosen(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    customer_id = make_web_customer(gateway, "old-browser", seen_minutes_ago=600)
    with gateway.crm() as crm:
        crm.add(ChannelIdentity(customer_id=customer_id, channel=Channel.WEB, external_id="new-phone"))
        crm.add(
            ChannelIdentity(
                customer_id=customer_id, channel=Channel.WEB, external_id="newest", reachable=False
            )
        )
        crm.commit()
        crm.execute(
            ChannelIdentity.__table__.update()
            .where(ChannelIdentity.external_id == "new-phone")
            .values(last_seen_at=utcnow() - timedelta(minutes=5))
        )
        crm.commit()

    response = post(gateway, {"customer_id": customer_id, "intent": "EXTERNAL_checkin"})

    assert response.json()["sender_id"] == "web:new-phone"


def test_rasa_trouble_is_reported_and_nothing_is_stored(gateway: RunningGateway, rasa: StandInRasa) -> None:
    customer_id = make_web_customer(gateway, "trouble-visitor")
    unknown = post(gateway, {"customer_id": customer_id, "intent": "EXTERNAL_unknown"})
    rasa.status = 500
    down = post(gateway, {"customer_id": customer_id, "intent": "EXTERNAL_checkin", "idempotency_key": "k1"})
    rasa.status = 200
    retried = post(
        gateway, {"customer_id": customer_id, "intent": "EXTERNAL_checkin", "idempotency_key": "k1"}
    )

    assert (unknown.status_code, unknown.json()["error"]) == (422, "rasa_refused")
    assert (down.status_code, down.json()["error"]) == (503, "rasa_unavailable")
    assert retried.status_code == 200 and retried.json()["replayed"] is False  # a failed try is no send
    with gateway.crm() as crm:
        assert len(crm.scalars(select(Message)).all()) == 1
