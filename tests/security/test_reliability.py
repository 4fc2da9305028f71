"""Issue 15, item 8: the reliability claims read from the code, each proven (it failed on the code
of the time) and then fixed.

a. Replies Rasa gave that could not be stored are fetched from the tracker, not asked for again.
b. The weekly contact cap counts every proactive send (direct, scheduler, hand-back) and two
   senders cannot race past it.
c. A visitor who stops reading holds up nobody else's messages.
d. An outlet that fails in an unexpected way records the failure; the message is retried later."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.websockets import WebSocket

from bot.crm.consent import set_consent
from bot.crm.db import engine_for, make_engine
from bot.crm.models import (
    Author,
    Channel,
    ChannelIdentity,
    ConsentPurpose,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Direction,
    InboundStatus,
    Message,
    OutboundStatus,
    OutreachKind,
    utcnow,
)
from bot.gateway import web
from bot.gateway.inbound import CASE_ANSWER_INTENT
from bot.gateway.outlets import Outbound
from bot.gateway.tokens import visitor_of
from bot.gateway.web import WebOutlet
from scheduler.policy import KIND_OF_INTENT, Policy, decide
from scheduler.sender import Gateway, HttpGateway, Sender, SendResult
from standins.telegram_botapi import StandInBotApi
from tests.console.conftest import ConsoleClient, console, desk_gateway, hand_off
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import (
    INTERNAL_TOKEN,
    RunningGateway,
    close_sockets,
    connect,
    copy_crm,
    gateway_settings,
    running_gateway,
    wait_until,
)
from tests.gateway.standin_rasa import StandInRasa
from tests.scheduler.standin_gateway import StandInGateway
from tests.telegram.conftest import gateway, gateway_env, telegram

__all__ = ["console", "crm_template", "desk_gateway", "gateway", "gateway_env", "rasa", "telegram"]

pytestmark = pytest.mark.timeout(120)

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
NEVER_QUIET = Policy(time(0, 0), time(0, 0), weekly_cap=3)


@contextmanager
def gateway_on(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, crm_template: Path, rasa: StandInRasa
) -> Iterator[RunningGateway]:
    """A real gateway whose CRM is SQLite (its own copy) or the test PostgreSQL database."""
    copy_crm(crm_template, tmp_path / "var")
    overrides = {"DATABASE_URL": request.getfixturevalue("pg_scratch")} if database == "postgresql" else {}
    settings = gateway_settings(tmp_path / "var", rasa.url, **overrides)
    try:
        with running_gateway(settings) as running:
            yield running
    finally:
        # The gateway's engine is cached per URL (bot.crm.db.engine_for) and outlives it: close its
        # connections now, not whenever later tests push it out of the cache.
        engine_for(settings.database_url).dispose()


@contextmanager
def crm_of(gateway: RunningGateway) -> Iterator[Session]:
    """A session on the gateway's CRM whose connections are closed afterwards (PostgreSQL too)."""
    engine = make_engine(gateway.settings.database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def messages_of(gateway: RunningGateway, sender_id: str) -> list[Message]:
    with crm_of(gateway) as crm:
        conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
        if conversation is None:
            return []
        query = select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
        return list(crm.scalars(query))


# ---- a. replies that could not be stored ----------------------------------------------------------


def block_bot_replies(engine: Engine) -> None:
    """The CRM refuses to store bot messages (a disk or database fault), like a real outage would."""
    with engine.begin() as db:
        if engine.dialect.name == "sqlite":
            db.execute(
                text(
                    "CREATE TRIGGER block_bot_replies BEFORE INSERT ON message WHEN NEW.author = 'bot' "
                    "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                )
            )
            return
        db.execute(
            text(
                "CREATE OR REPLACE FUNCTION block_bot_replies() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF NEW.author = 'bot' THEN RAISE EXCEPTION 'injected fault'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        db.execute(
            text(
                "CREATE TRIGGER block_bot_replies BEFORE INSERT ON message "
                "FOR EACH ROW EXECUTE FUNCTION block_bot_replies()"
            )
        )


def unblock_bot_replies(engine: Engine) -> None:
    with engine.begin() as db:
        if engine.dialect.name == "sqlite":
            db.execute(text("DROP TRIGGER block_bot_replies"))
        else:
            db.execute(text("DROP TRIGGER block_bot_replies ON message"))
            db.execute(text("DROP FUNCTION block_bot_replies()"))


@pytest.mark.parametrize("database", DATABASES)
async def test_a_turn_whose_replies_could_not_be_stored_is_not_run_a_second_time(
    database: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    crm_template: Path,
    rasa: StandInRasa,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with gateway_on(database, request, tmp_path, crm_template, rasa) as gateway:
        engine = make_engine(gateway.settings.database_url)
        block_bot_replies(engine)
        try:
            visitor = await connect(gateway)
            sender = f"web:{visitor_of(gateway.settings.secret_key, visitor.token)}"
            await visitor.say("my parcel is late again")
            # The live try and at least one retry of the sweep both failed to store the answer.
            wait_until(
                lambda: len([r for r in caplog.records if _inbox_trouble(r)]) >= 2,
                what="two failed tries to store the replies",
            )
        finally:
            unblock_bot_replies(engine)
        answer = await visitor.next(
            lambda f: f["type"] == "message" and f["message"]["author"] == "bot", timeout=15
        )
        wait_until(
            lambda: (
                [m.delivery_status for m in messages_of(gateway, sender) if m.direction == Direction.INBOUND]
                == [InboundStatus.PROCESSED]
            ),
            what="the message to be processed",
        )
        stored = [(m.author, m.text) for m in messages_of(gateway, sender) if m.author == Author.BOT]
        await close_sockets(gateway)
        engine.dispose()

    turns = [call["message"] for call in rasa.webhook_calls if call["sender"] == sender]
    assert turns == ["my parcel is late again"]  # Rasa ran the turn once (one complaint, not two)
    assert answer["message"]["text"] == "You said: my parcel is late again"
    assert stored == [(Author.BOT, "You said: my parcel is late again")]


def _inbox_trouble(record: logging.LogRecord) -> bool:
    return record.name == "bot.gateway.inbox" and record.levelno >= logging.WARNING


# ---- b. the weekly contact cap ---------------------------------------------------------------------


def web_customer(gateway: RunningGateway, external_id: str) -> int:
    with crm_of(gateway) as crm:
        customer = Customer(first_name="Cap", timezone="UTC")
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id=external_id))
        crm.add(customer)
        crm.commit()
        return customer.id


def post_proactive(gateway: RunningGateway, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/internal/proactive",
        json=body,
        headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        timeout=10,
    )


@pytest.mark.parametrize("database", DATABASES)
def test_sends_through_the_internal_proactive_path_count_toward_the_weekly_cap(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, crm_template: Path, rasa: StandInRasa
) -> None:
    rasa.intents["EXTERNAL_campaign"] = [{"text": "Our summer offers are here."}]
    with gateway_on(database, request, tmp_path, crm_template, rasa) as gateway:
        customer_id = web_customer(gateway, f"cap-{database}-{tmp_path.name}")
        campaign = {"customer_id": customer_id, "intent": "EXTERNAL_campaign"}
        first_three = [post_proactive(gateway, campaign).status_code for _ in range(3)]
        fourth = post_proactive(gateway, campaign)
        followup = post_proactive(gateway, {"customer_id": customer_id, "intent": "EXTERNAL_checkin"})
        with crm_of(gateway) as crm:
            customer = crm.get_one(Customer, customer_id)
            verdict = decide(
                session=crm, customer=customer, kind=OutreachKind.SILENCE, now=utcnow(), policy=NEVER_QUIET
            )

    assert first_three == [200, 200, 200]
    assert (fourth.status_code, fourth.json()) == (429, {"error": "frequency_cap"})
    assert followup.status_code == 200  # a revisit of their own case is service, not capped
    assert [c["name"] for c in rasa.trigger_calls] == ["EXTERNAL_campaign"] * 3 + ["EXTERNAL_checkin"]
    assert verdict.reason == "frequency_cap"  # the scheduler's gate counts the same sends


def test_every_proactive_intent_of_the_domain_has_a_kind_the_cap_counts(project_root: Path) -> None:
    listed = re.findall(r"^  - (EXTERNAL_\w+)\s*$", (project_root / "domain.yml").read_text(), re.M)
    # The gateway's reply to a customer's answer about a case is no outreach: it answers their message.
    external = set(listed) - {CASE_ANSWER_INTENT}
    assert external and external <= set(KIND_OF_INTENT)


async def test_a_hand_back_counts_as_a_contact_for_the_weekly_cap(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: dict[str, ConsoleClient]
) -> None:
    alex = console["alex"]
    chat = await hand_off(desk_gateway, rasa)
    assert (await asyncio.to_thread(alex.post, f"/handoffs/{chat.handoff_id}/claim")).status_code == 200
    response = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/handback")
    assert response.status_code == 200 and response.json()["followed_up"] is True

    with desk_gateway.crm() as crm:
        conversation = crm.get_one(Conversation, chat.conversation_id)
        customer = crm.get_one(Customer, conversation.customer_id)
        once_a_week = Policy(time(0, 0), time(0, 0), weekly_cap=1)
        verdict = decide(
            session=crm, customer=customer, kind=OutreachKind.SILENCE, now=utcnow(), policy=once_a_week
        )
    assert verdict.reason == "frequency_cap"


class BothAtOnce:
    """Hands each send to the stand-in gateway only once both senders are sending (or after a
    while, when only one of them ever does): the two sends overlap as in production."""

    def __init__(self, inner: Gateway) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(2, timeout=3)

    def send(self, *, customer_id: int, intent: str, entities: dict[str, object], key: str) -> SendResult:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return self.inner.send(customer_id=customer_id, intent=intent, entities=entities, key=key)


def test_two_senders_at_once_cannot_race_past_the_weekly_cap(crm_engine: Engine) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    factory = sessionmaker(bind=crm_engine, expire_on_commit=False)
    with factory.begin() as session:
        customer = Customer(first_name="Race", timezone="UTC")
        customer.identities.append(
            ChannelIdentity(channel=Channel.WEB, external_id=f"race-{now.timestamp()}")
        )
        session.add(customer)
        session.flush()
        set_consent(
            session=session, customer=customer, purpose=ConsentPurpose.MARKETING, granted=True, source="t"
        )
        for n in range(2):  # two of this week's three already went out
            session.add(
                Delivery(
                    idempotency_key=f"race:{customer.id}:sent:{n}",
                    kind=OutreachKind.CAMPAIGN,
                    customer_id=customer.id,
                    status=DeliveryStatus.SENT,
                    sent_at=now - timedelta(days=n + 1),
                )
            )
        waiting = [
            Delivery(
                idempotency_key=f"race:{customer.id}:due:{n}",
                kind=OutreachKind.CAMPAIGN,
                customer_id=customer.id,
                status=DeliveryStatus.QUEUED,
                scheduled_for=now - timedelta(minutes=1),
            )
            for n in range(2)
        ]
        session.add_all(waiting)
        session.flush()
        customer_id, due_ids = customer.id, [d.id for d in waiting]

    with StandInGateway() as standin:
        shared = BothAtOnce(HttpGateway(standin.url, standin.token))
        senders = [
            Sender(factory, shared, NEVER_QUIET, clock=lambda: now, rate_per_second=0) for _ in due_ids
        ]
        outcomes: list[str] = []
        threads = [
            threading.Thread(target=lambda s=s, d=d: outcomes.append(s.process(d)))
            for s, d in zip(senders, due_ids, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        received = standin.per_customer()[customer_id]

    with factory() as session:
        skipped = session.scalars(
            select(Delivery.skip_reason).where(
                Delivery.id.in_(due_ids), Delivery.status == DeliveryStatus.SKIPPED
            )
        ).all()
    assert sorted(outcomes) == ["sent", "skipped"]
    assert received == 1  # three this week, not four
    assert skipped == ["frequency_cap"]


# ---- c. a visitor who stops reading ------------------------------------------------------------------


async def _open_socket(name: str, events: list[str], *, reads: bool = True) -> WebSocket:
    """A real Starlette websocket whose client either reads what it is sent or never does."""
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await asyncio.Event().wait()  # the client says nothing more
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] != "websocket.send":
            return
        if reads:
            events.append(f"{name}:{json.loads(message['text'])['type']}")
            return
        try:
            await asyncio.Event().wait()  # its buffers are full: the write never completes
        except asyncio.CancelledError:
            events.append(f"{name}:gave up")
            raise

    socket = WebSocket({"type": "websocket", "path": "/webchat/ws", "headers": []}, receive, send)
    await socket.accept()
    return socket


def _outbound(message_id: int, sender_id: str) -> Outbound:
    return Outbound(message_id, sender_id, "bot", f"answer {message_id}", (), None, utcnow())


async def test_a_visitor_who_stops_reading_holds_up_nobody_elses_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web, "SEND_TIMEOUT", 2.0)
    events: list[str] = []
    outlet = WebOutlet()
    stuck, second_tab = await _open_socket("stuck", events, reads=False), await _open_socket("tab", events)
    other = await _open_socket("other", events)
    outlet.connect("web:a", stuck)
    outlet.connect("web:a", second_tab)
    outlet.connect("web:b", other)
    try:
        # As the retry sweep does: one conversation's answer after the other's.
        await outlet.deliver(_outbound(1, "web:a"))
        await outlet.deliver(_outbound(2, "web:b"))
        for _ in range(100):
            if {"tab:message", "other:message"} <= set(events):
                break
            await asyncio.sleep(0.02)
        prompt = list(events)
        assert "stuck:gave up" not in prompt  # both got their message before the stuck one timed out
        assert {"tab:message", "other:message"} <= set(prompt)
        await asyncio.sleep(web.SEND_TIMEOUT + 0.5)  # the stuck socket's write is given up
        dropped = outlet.socket_count("web:a") == 1  # the second tab stays
    finally:
        for sender_id, socket in (("web:a", stuck), ("web:a", second_tab), ("web:b", other)):
            outlet.disconnect(sender_id, socket)

    assert "stuck:gave up" in events and dropped


# ---- d. an outlet that fails in an unexpected way --------------------------------------------------


CHAT = 700_555_001


def test_an_answer_telegram_could_not_parse_is_recorded_and_retried_not_left_queued(
    gateway: RunningGateway, rasa: StandInRasa, telegram: StandInBotApi
) -> None:
    with gateway.crm() as crm:
        customer = Customer(first_name="Ben")
        customer.identities.append(ChannelIdentity(channel=Channel.TELEGRAM, external_id=str(CHAT)))
        crm.add(customer)
        crm.commit()
        customer_id = customer.id
    telegram.answers.append((200, '{"ok": true, "result": {}}'))  # PTB cannot make a Message of it

    response = post_proactive(gateway, {"customer_id": customer_id, "intent": "EXTERNAL_checkin"})

    assert response.status_code == 200, response.text
    body = response.json()
    [status] = [m["status"] for m in body["messages"]]
    with gateway.crm() as crm:
        first_try = crm.get_one(Message, body["messages"][0]["id"])
        recorded = (first_try.delivery_status, first_try.attempts, first_try.error)
    assert status == "queued"
    assert recorded[:2] == (OutboundStatus.QUEUED, 1) and "KeyError" in (recorded[2] or "")
    sent = wait_until(lambda: telegram.sent_to(CHAT), what="the retry to deliver it")
    assert [m["text"] for m in sent] == ["Hi again! Is everything fine with your order?"]

    def recorded_as_sent() -> bool:
        with gateway.crm() as crm:
            later = crm.get_one(Message, body["messages"][0]["id"])
            return (later.delivery_status, later.error) == (OutboundStatus.SENT, None)

    wait_until(recorded_as_sent, what="the retried delivery to be recorded")
