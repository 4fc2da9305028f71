"""When Rasa is down, slow or broken the customer hears at once that we have their message, nothing
is lost, nothing is answered twice, and the conversation carries on when Rasa is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.crm.models import Author, DeliveryStatus, Direction
from bot.gateway import wording
from tests.gateway.harness import (
    RunningGateway,
    close_sockets,
    connect,
    copy_crm,
    gateway_settings,
    running_gateway,
    wait_until,
)
from tests.gateway.servers import ServerThread, free_port
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


async def test_slow_rasa_answer_is_found_later_and_the_message_is_not_sent_twice(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    rasa.delay = 3.0  # longer than the gateway waits (1.5 s); Rasa carries on regardless
    visitor = await connect(gateway)
    await visitor.say("slow question")
    holding = await visitor.reply(timeout=5)
    rasa.delay = 0.0
    answer = await visitor.reply(timeout=15)

    assert holding["text"] == wording.HOLDING
    assert answer["text"] == "You said: slow question"
    assert rasa.messages == ["slow question"]  # recovered from the tracker, not asked again
    sender = rasa.webhook_calls[0]["sender"]
    inbound = [m for m in gateway.messages(sender) if m.direction == Direction.INBOUND]
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
