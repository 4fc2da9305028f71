"""When Rasa is down, slow or broken the customer hears at once that we have their message, nothing
is lost, nothing is answered twice, and the conversation carries on when Rasa is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.crm.models import Author, DeliveryStatus, Direction
from bot.gateway import wording
from standins.servers import ServerThread, free_port
from tests.gateway.harness import (
    RunningGateway,
    WebVisitor,
    close_sockets,
    connect,
    copy_crm,
    gateway_settings,
    running_gateway,
    wait_until,
)
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(90)


async def test_rasa_down_gives_a_holding_answer_keeps_the_messages_and_answers_them_when_back(
    tmp_path: Path, crm_template: Path
) -> None:
    copy_crm(crm_template, tmp_path / "var")
    rasa_port = free_port()  # nothing listens here yet
    settings = gateway_settings(tmp_path / "var", f"http://127.0.0.1:{rasa_port}")
    rasa = StandInRasa()
    with running_gateway(settings) as gateway:
        visitor = await connect(gateway)
        started = time.monotonic()
        await visitor.say("where is my order?")
        holding = await visitor.reply()
        waited = time.monotonic() - started
        await visitor.say("hello?")
        with pytest.raises(AssertionError, match="no matching frame"):
            await visitor.reply(timeout=1.5)  # told once per wait, not once per message

        sender = f"web:{_visitor_id(gateway, visitor.token)}"
        waiting = gateway.messages(sender)
        assert [
            (m.author, m.text, m.delivery_status) for m in waiting if m.direction == Direction.INBOUND
        ] == [
            (Author.CUSTOMER, "where is my order?", DeliveryStatus.RECEIVED),
            (Author.CUSTOMER, "hello?", DeliveryStatus.RECEIVED),
        ]
        assert waiting[0].attempts >= 1 and "unreachable" in (waiting[0].error or "")

        with ServerThread(rasa.app(), port=rasa_port):  # Rasa comes back
            answers = [(await visitor.reply(timeout=15))["text"] for _ in range(2)]
            assert rasa.messages == ["where is my order?", "hello?"]
            wait_until(
                lambda: all(
                    m.delivery_status == DeliveryStatus.PROCESSED
                    for m in gateway.messages(sender)
                    if m.direction == Direction.INBOUND
                ),
                what="both messages to be processed",
            )
            await close_sockets(gateway)

    assert (holding["author"], holding["text"]) == ("system", wording.HOLDING)
    assert waited < 1.0
    assert answers == ["You said: where is my order?", "You said: hello?"]


async def test_an_answer_rasa_gave_after_the_gateway_stopped_waiting_is_found_and_not_asked_again(
    tmp_path: Path, crm_template: Path, rasa: StandInRasa
) -> None:
    rasa.delay = 3.0  # longer than the gateway's patience (2 s); the answer is lost on the way
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(tmp_path / "var", rasa.url, GATEWAY_RASA_PATIENCE="2")
    with running_gateway(settings) as gateway:
        visitor = await connect(gateway)
        await visitor.say("slow question")
        holding = await visitor.reply(timeout=5)
        wait_until(lambda: rasa.messages, what="Rasa to get the message")
        rasa.delay = 0.0
        answer = await visitor.reply(timeout=15)
        sender = rasa.webhook_calls[0]["sender"]
        inbound = [m for m in gateway.messages(sender) if m.direction == Direction.INBOUND]
        await close_sockets(gateway)

    assert holding["text"] == wording.HOLDING
    assert answer["text"] == "You said: slow question"
    assert rasa.messages == ["slow question"]  # recovered from the tracker, not asked again
    assert [(m.delivery_status, m.attempts) for m in inbound] == [(DeliveryStatus.PROCESSED, 2)]


async def test_a_broken_rasa_is_retried_until_it_answers(gateway: RunningGateway, rasa: StandInRasa) -> None:
    rasa.status = 500
    visitor = await connect(gateway)
    await visitor.say("are you there?")
    assert (await visitor.reply())["text"] == wording.HOLDING
    await asyncio.sleep(1.2)
    rasa.status = 200
    assert (await visitor.reply(timeout=15))["text"] == "You said: are you there?"


async def test_messages_stored_before_a_restart_are_answered_after_it(
    tmp_path: Path, crm_template: Path
) -> None:
    copy_crm(crm_template, tmp_path / "var")
    rasa_port = free_port()
    settings = gateway_settings(tmp_path / "var", f"http://127.0.0.1:{rasa_port}")
    with running_gateway(settings) as gateway:
        visitor = await connect(gateway)
        await visitor.say("sent just before the crash")
        holding = await visitor.reply()
        await visitor.send({"type": "received", "ids": [holding["id"]]})
        await asyncio.sleep(0.3)
        token = visitor.token
        await close_sockets(gateway)

    rasa = StandInRasa()
    with ServerThread(rasa.app(), port=rasa_port), running_gateway(settings) as restarted:
        wait_until(lambda: rasa.messages == ["sent just before the crash"], what="the startup retry")
        back = await connect(restarted, token)
        answer = await back.reply()
        await close_sockets(restarted)

    assert answer["text"] == "You said: sent just before the crash"


def _visitor_id(gateway: RunningGateway, token: str) -> str:
    from bot.gateway.tokens import visitor_of

    visitor_id = visitor_of(gateway.settings.secret_key, token)
    assert visitor_id is not None
    return visitor_id


async def test_a_burst_while_rasa_is_busy_gets_every_real_answer_once_in_order_without_writing_again(
    tmp_path: Path, crm_template: Path, rasa: StandInRasa
) -> None:
    # One message at a time in Rasa: 8 customers with 2 messages each queue for ~6 s, far beyond
    # the gateway's 1.5 s, and (like Rasa 3.6) a turn whose caller hangs up is dropped unsaved.
    rasa.workers, rasa.think = 1, 0.4
    copy_crm(crm_template, tmp_path / "var")
    # The retry sweep comes far too late to be what answers them: the answers must come on their own.
    settings = gateway_settings(tmp_path / "var", rasa.url, GATEWAY_RETRY_SECONDS="600")
    with running_gateway(settings) as gateway:
        visitors = await asyncio.gather(*(connect(gateway) for _ in range(8)))

        async def talk(visitor: WebVisitor, n: int) -> list[str]:
            await visitor.say(f"first {n}")
            await visitor.say(f"second {n}")  # at once: the customer does not wait
            heard: list[str] = []
            while len([text for text in heard if text != wording.HOLDING]) < 2:
                heard.append((await visitor.reply(timeout=60))["text"])
            return heard

        heard = await asyncio.gather(*(talk(visitor, n) for n, visitor in enumerate(visitors)))
        senders = [f"web:{_visitor_id(gateway, v.token)}" for v in visitors]
        transcripts = [gateway.messages(sender) for sender in senders]
        await close_sockets(gateway)

    for n, said in enumerate(heard):
        assert [text for text in said if text != wording.HOLDING] == [
            f"You said: first {n}",
            f"You said: second {n}",
        ]
        assert said.count(wording.HOLDING) <= 1  # told once per wait
    assert any(wording.HOLDING in said for said in heard)  # Rasa really was too slow for some
    for messages in transcripts:
        inbound = [(m.delivery_status, m.attempts) for m in messages if m.direction == Direction.INBOUND]
        assert inbound == [(DeliveryStatus.PROCESSED, 1)] * 2
        assert [m.author for m in messages].count(Author.BOT) == 2  # no answer stored twice
    assert sorted(rasa.messages) == sorted(f"{w} {n}" for n in range(8) for w in ("first", "second"))
    assert rasa.dropped == []  # Rasa's work was never thrown away
