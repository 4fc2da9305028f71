"""Known web visitors: a shop vouches for its logged-in customer with an HMAC of their external id.
A real gateway (uvicorn, a real websocket) on SQLite and on PostgreSQL, Rasa stood in at the network
boundary: what the actions would see is the customer behind the conversation's sender id."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.db import engine_for
from bot.crm.identity import user_hash
from bot.crm.models import ChannelIdentity, Conversation, Customer
from bot.crm.queries import find_customer
from bot.gateway import tokens
from tests.factories import make_customer, make_order
from tests.gateway.harness import (
    RunningGateway,
    WebVisitor,
    close_sockets,
    copy_crm,
    gateway_settings,
    running_gateway,
)
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(60)

SHOP_ID, OTHER_SHOP_ID = "cust-7", "cust-8"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def gateway(
    request: pytest.FixtureRequest, tmp_path: Path, crm_template: Path, rasa: StandInRasa
) -> AsyncIterator[RunningGateway]:
    """A real gateway whose CRM knows two shop customers, cust-7 (with an order) and cust-8."""
    if request.param == "postgresql":
        settings = gateway_settings(
            tmp_path / "var", rasa.url, DATABASE_URL=str(request.getfixturevalue("pg_scratch"))
        )
    else:
        copy_crm(crm_template, tmp_path / "var")
        settings = gateway_settings(tmp_path / "var", rasa.url)
    with running_gateway(settings) as running:
        with crm_of(running) as crm:
            ulla = make_customer(crm, external_id=SHOP_ID, first_name="Ulla", last_name="Shop")
            make_order(crm, ulla, number="SHOP-7001")
            make_customer(crm, external_id=OTHER_SHOP_ID, first_name="Otto", last_name="Other")
            crm.commit()
        yield running
        await close_sockets(running)


def crm_of(gateway: RunningGateway) -> Session:
    """A session on the gateway's CRM (the process-wide engine, which pg_scratch disposes of)."""
    return Session(engine_for(gateway.settings.database_url))


def secret(gateway: RunningGateway) -> str:
    return gateway.settings.widget_identity_secret


def customer_id_of(gateway: RunningGateway, external_id: str) -> int:
    with crm_of(gateway) as crm:
        return int(crm.scalars(select(Customer.id).where(Customer.external_id == external_id)).one())


async def hello(
    gateway: RunningGateway, token: str | None = None, **claim: Any
) -> tuple[WebVisitor, dict[str, Any], str]:
    """Open the widget's websocket with `claim` (external_id, user_hash) in the hello; return the
    visitor, its ready frame and its sender id."""
    token = token or await asyncio.to_thread(gateway.new_token)
    socket = await websockets.connect(gateway.ws_url, max_size=2**20)
    gateway.sockets.append(socket)
    visitor = WebVisitor(socket, token)
    await visitor.send({"type": "hello", "token": token, **claim})
    ready = await visitor.next(lambda f: f["type"] == "ready")
    visitor_id = tokens.visitor_of(gateway.settings.secret_key, token)
    return visitor, ready, f"web:{visitor_id}"


def customer_behind(gateway: RunningGateway, sender_id: str) -> Customer | None:
    """The customer the actions would find for this conversation (they look it up by sender id)."""
    with crm_of(gateway) as crm:
        customer = find_customer(session=crm, sender_id=sender_id)
        if customer is not None:
            crm.expunge(customer)
        return customer


async def test_a_valid_hash_attaches_the_visitor_to_that_shop_customer(gateway: RunningGateway) -> None:
    visitor, ready, sender = await hello(
        gateway, external_id=SHOP_ID, user_hash=user_hash(secret(gateway), SHOP_ID)
    )
    assert ready["identity"] == "verified"
    await visitor.say("where is my order?")
    await visitor.reply()

    ulla = customer_id_of(gateway, SHOP_ID)
    known = customer_behind(gateway, sender)
    assert known is not None and known.id == ulla
    with crm_of(gateway) as crm:
        conversation = crm.scalars(select(Conversation).where(Conversation.sender_id == sender)).one()
        assert conversation.customer_id == ulla


@pytest.mark.parametrize(
    "claim, reason",
    [
        pytest.param(lambda s: {"external_id": SHOP_ID, "user_hash": "0" * 64}, "forged", id="forged"),
        pytest.param(lambda s: {"external_id": SHOP_ID}, "missing", id="missing-hash"),
        pytest.param(lambda s: {"external_id": SHOP_ID, "user_hash": ""}, "missing", id="empty-hash"),
        pytest.param(
            lambda s: {"external_id": SHOP_ID, "user_hash": user_hash(s, OTHER_SHOP_ID)},
            "forged",
            id="another-customers-hash",
        ),
        pytest.param(
            lambda s: {"external_id": OTHER_SHOP_ID, "user_hash": user_hash(s, SHOP_ID)},
            "forged",
            id="hash-replayed-for-another-id",
        ),
        pytest.param(
            lambda s: {"external_id": SHOP_ID, "user_hash": user_hash("not-the-secret", SHOP_ID)},
            "forged",
            id="hash-made-with-another-secret",
        ),
        pytest.param(
            lambda s: {"external_id": "cust-404", "user_hash": user_hash(s, "cust-404")},
            "unknown_customer",
            id="valid-hash-unknown-customer",
        ),
        pytest.param(
            lambda s: {"external_id": 7, "user_hash": user_hash(s, "7")}, "malformed", id="not-a-string"
        ),
    ],
)
async def test_a_claim_the_hash_does_not_prove_leaves_the_visitor_anonymous_and_logs_why(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture, claim: Any, reason: str
) -> None:
    caplog.set_level(logging.INFO, logger="bot.gateway.web")
    sent = claim(secret(gateway))
    visitor, ready, sender = await hello(gateway, **sent)
    assert ready["identity"] == "anonymous"
    await visitor.say("where is my order?")
    await visitor.reply()

    stranger = customer_behind(gateway, sender)
    assert stranger is not None and stranger.external_id is None  # a new anonymous customer
    assert stranger.id not in (customer_id_of(gateway, SHOP_ID), customer_id_of(gateway, OTHER_SHOP_ID))
    refusals = [r.getMessage() for r in caplog.records if "web identity refused" in r.getMessage()]
    assert refusals == [f"web identity refused sender={sender} reason={reason}"]
    if sent.get("user_hash"):
        assert all(sent["user_hash"] not in r.getMessage() for r in caplog.records)


async def test_an_anonymous_visitor_who_logs_in_keeps_the_conversation_now_the_customers(
    gateway: RunningGateway,
) -> None:
    visitor, ready, sender = await hello(gateway)
    assert ready["identity"] == "anonymous"
    await visitor.say("hi, I have a question")
    await visitor.reply()
    anonymous = customer_behind(gateway, sender)
    assert anonymous is not None and anonymous.external_id is None
    await visitor.socket.close()

    # The shop page reloads after the log-in: the same visitor token, now with the identity.
    again, ready, same_sender = await hello(
        gateway, token=visitor.token, external_id=SHOP_ID, user_hash=user_hash(secret(gateway), SHOP_ID)
    )
    assert ready["identity"] == "verified" and same_sender == sender
    await again.say("where is my order?")
    await again.reply()

    ulla = customer_id_of(gateway, SHOP_ID)
    assert customer_behind(gateway, sender).id == ulla  # type: ignore[union-attr]
    history = gateway.history(visitor.token).json()["messages"]
    assert [m["text"] for m in history if m["author"] == "customer"] == [
        "hi, I have a question",
        "where is my order?",
    ]
    with crm_of(gateway) as crm:
        conversation = crm.scalars(select(Conversation).where(Conversation.sender_id == sender)).one()
        assert conversation.customer_id == ulla
        left_behind = crm.scalars(
            select(ChannelIdentity).where(ChannelIdentity.customer_id == anonymous.id)
        ).all()
        assert left_behind == []  # the anonymous row keeps no way to reach the visitor


async def test_a_visitor_known_as_one_customer_is_never_handed_to_another(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.gateway.web")
    visitor, ready, sender = await hello(
        gateway, external_id=SHOP_ID, user_hash=user_hash(secret(gateway), SHOP_ID)
    )
    await visitor.say("my order please")
    await visitor.reply()
    await visitor.socket.close()

    # Another customer logs in on the same browser, and the old token is presented with their hash.
    _, ready, _ = await hello(
        gateway,
        token=visitor.token,
        external_id=OTHER_SHOP_ID,
        user_hash=user_hash(secret(gateway), OTHER_SHOP_ID),
    )
    assert ready["identity"] == "anonymous"
    assert customer_behind(gateway, sender).id == customer_id_of(gateway, SHOP_ID)  # type: ignore[union-attr]
    assert f"web identity refused sender={sender} reason=another_customer" in caplog.messages


def test_the_demo_shop_logs_in_as_a_demo_customer_with_a_hash_made_on_the_server(
    gateway: RunningGateway,
) -> None:
    anonymous = httpx.get(gateway.url + "/demo", timeout=10)
    assert anonymous.status_code == 200
    assert "Log in as a demo customer" in anonymous.text and "Not logged in" in anonymous.text
    assert f'<option value="{SHOP_ID}">Ulla Shop ({SHOP_ID})</option>' in anonymous.text
    assert "user_hash" not in anonymous.text.split("<script")[-2]  # no identity in the config

    page = httpx.get(gateway.url + "/demo", params={"customer": SHOP_ID}, timeout=10)
    expected = user_hash(secret(gateway), SHOP_ID)
    assert "Logged in as Ulla Shop" in page.text
    assert f'{{"external_id": "{SHOP_ID}", "user_hash": "{expected}"}}' in page.text
    assert secret(gateway) not in page.text
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert len(re.findall(r"<script nonce=", page.text)) == 1 and f'<script nonce="{nonce}">' in page.text

    # A customer the switch does not offer gets no hash: the page is anonymous.
    stranger = httpx.get(gateway.url + "/demo", params={"customer": "cust-404"}, timeout=10)
    assert "Not logged in" in stranger.text and "user_hash" not in stranger.text.split("<script")[-2]
