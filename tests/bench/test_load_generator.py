"""The load generator times each turn until the whole answer is in, tells answers, holding answers
and silence apart, and the ledger counts every loss and duplicate; checked against a real gateway
in front of a stand-in Rasa whose faults can be switched on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from bench.chat_load import WebChatCustomer, gateway_talk, rasa_talk, run_level
from bench.conversations import COMPLAINT, ORDER_QUESTION, RETENTION, Script
from bench.ledger import audit_chat
from bench.population import ChatCustomer
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import CHANNEL_SECRET, StandInRasa

pytestmark = pytest.mark.timeout(60)

MakeCustomer = Callable[..., ChatCustomer]


def ws_url(gateway: RunningGateway) -> str:
    return gateway.ws_url


def two_replies(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"text": f"About '{body['message']}':"}, {"text": "here is the answer."}]


async def test_a_turn_lasts_until_the_whole_answer_arrived_and_nothing_is_lost(
    gateway: RunningGateway, rasa: StandInRasa, new_customer: MakeCustomer
) -> None:
    rasa.replies, rasa.delay = two_replies, 0.3
    customer = new_customer()
    async with WebChatCustomer(ws_url(gateway), customer, answer_timeout=10) as visitor:
        turns = [await visitor.say(text, "test") for text in ("hi", "where is my order?")]

    assert [(t.outcome, t.replies, t.holding) for t in turns] == [("answered", 2, False)] * 2
    assert all(t.latency is not None and t.latency >= 0.3 for t in turns)
    assert rasa.messages == ["hi", "where is my order?"]
    with gateway.crm() as crm:
        ledger = audit_chat(
            session=crm,
            sent={customer.sender_id: visitor.sent},
            received={customer.sender_id: visitor.received},
        )
    assert ledger.as_dict() == {
        "sent": 2,
        "stored": 2,
        "lost": 0,
        "duplicated": 0,
        "answered": 2,
        "holding_only": 0,
        "unanswered": 0,
        "replies_stored": 4,
        "replies_undelivered": 0,
        "replies_received_twice": 0,
        "losses": 0,
        "duplicates": 0,
    }


async def test_rasa_down_means_a_holding_answer_first_and_the_real_answer_later(
    gateway: RunningGateway, rasa: StandInRasa, new_customer: MakeCustomer
) -> None:
    rasa.status = 500
    first_try = threading.Event()

    def back_two_seconds_after_the_first_try(_body: dict[str, Any]) -> None:
        # Timed from the message's arrival, not the test's start: on a loaded machine the customer
        # may need longer than 2 s to connect, and Rasa must still be down when the message comes.
        if not first_try.is_set():
            first_try.set()
            threading.Timer(2.0, lambda: setattr(rasa, "status", 200)).start()

    rasa.on_message = back_two_seconds_after_the_first_try
    customer = new_customer()
    async with WebChatCustomer(ws_url(gateway), customer, answer_timeout=20) as visitor:
        turn = await visitor.say("where is my order?", "test")

    assert (turn.outcome, turn.holding, turn.replies) == ("answered", True, 1)
    assert turn.latency is not None and turn.latency >= 2.0
    with gateway.crm() as crm:
        ledger = audit_chat(
            session=crm,
            sent={customer.sender_id: visitor.sent},
            received={customer.sender_id: visitor.received},
        )
    assert (ledger.answered, ledger.replies_stored, ledger.losses(), ledger.duplicates()) == (1, 2, 0, 0)


async def test_a_message_the_bot_leaves_unanswered_is_counted_as_a_loss(
    gateway: RunningGateway, new_customer: MakeCustomer
) -> None:
    customer = new_customer()
    async with WebChatCustomer(ws_url(gateway), customer, answer_timeout=10) as visitor:
        turn = await visitor.say("silence", "test")  # the stand-in answers this with nothing

    assert turn.outcome == "silent" and turn.replies == 0
    with gateway.crm() as crm:
        ledger = audit_chat(
            session=crm,
            sent={customer.sender_id: visitor.sent},
            received={customer.sender_id: visitor.received},
        )
    assert (ledger.stored, ledger.unanswered, ledger.losses()) == (1, 1, 1)


async def test_the_ledger_counts_messages_never_stored_replies_never_seen_and_replies_seen_twice(
    gateway: RunningGateway, new_customer: MakeCustomer
) -> None:
    customer = new_customer()
    async with WebChatCustomer(ws_url(gateway), customer, answer_timeout=10) as visitor:
        await visitor.say("hello", "test")
        await visitor.say("still there?", "test")
    first, second = visitor.received

    def audit(crm: Session, sent: list[str], received: list[int]) -> dict[str, int]:
        return audit_chat(
            session=crm, sent={customer.sender_id: sent}, received={customer.sender_id: received}
        ).as_dict()

    with gateway.crm() as crm:
        assert audit(crm, visitor.sent, [first, second])["losses"] == 0
        never_arrived = audit(crm, [*visitor.sent, "bench-never-stored"], [first, second])
        assert (never_arrived["lost"], never_arrived["losses"]) == (1, 1)
        not_shown = audit(crm, visitor.sent, [first])
        assert (not_shown["replies_undelivered"], not_shown["losses"]) == (1, 1)
        shown_twice = audit(crm, visitor.sent, [first, second, second])
        assert (shown_twice["replies_received_twice"], shown_twice["duplicates"]) == (1, 1)


async def test_a_level_holds_every_conversation_through_the_gateway(
    gateway: RunningGateway, rasa: StandInRasa, new_customer: MakeCustomer
) -> None:
    scripts: list[Script] = [COMPLAINT, RETENTION, ORDER_QUESTION, COMPLAINT, RETENTION]
    conversations = [(new_customer(f"CL-90000{n}"), script) for n, script in enumerate(scripts)]
    log: dict[str, tuple[list[str], list[int]]] = {}

    level = await run_level("gateway", conversations, 3, gateway_talk(ws_url(gateway), 10, log))

    assert level.customers == 3 and level.outcomes() == {"answered": sum(len(s.turns) for s in scripts)}
    assert len(level.latencies()) == len(level.turns) and level.seconds > 0
    assert "You said: CL-900000" in {
        f"You said: {m}" for m in rasa.messages
    }  # the order number was filled in
    with gateway.crm() as crm:
        ledger = audit_chat(
            session=crm,
            sent={sender: sent for sender, (sent, _) in log.items()},
            received={sender: received for sender, (_, received) in log.items()},
        )
    assert ledger.sent == len(level.turns) and ledger.losses() == 0 and ledger.duplicates() == 0


async def test_the_same_conversations_straight_to_rasa(rasa: StandInRasa, new_customer: MakeCustomer) -> None:
    conversations = [(new_customer(), COMPLAINT), (new_customer(), Script("quiet", ("hello", "silence")))]
    async with httpx.AsyncClient(timeout=10) as client:
        level = await run_level("rasa", conversations, 2, rasa_talk(client, rasa.url, CHANNEL_SECRET))

    assert level.outcomes() == {"answered": len(COMPLAINT.turns) + 1, "silent": 1}
    assert len(rasa.messages) == len(COMPLAINT.turns) + 2
    with rasa.lock:
        assert {call["metadata"]["channel"] for call in rasa.webhook_calls} == {"web"}
