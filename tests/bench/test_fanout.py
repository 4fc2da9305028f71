"""The campaign fan-out as the bench runs it: queued for the whole population, sent by the
scheduler's sender through the policy gate and a real gateway (stand-in Rasa behind it), and
audited for losses and duplicates."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bench import fanout
from bench.ledger import audit_campaign
from bot.crm.demo import demo_day, load_demo_data
from bot.crm.models import Author, Conversation, Delivery, DeliveryStatus, Message, OutboundStatus
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(120)
POPULATION = 30


@pytest.fixture
def campaign(gateway: RunningGateway, rasa: StandInRasa) -> fanout.Campaigned:
    rasa.intents["EXTERNAL_campaign"] = [{"text": "Our winter roast is here."}]
    with gateway.crm() as crm:
        load_demo_data(session=crm, today=demo_day(datetime.now(timezone.utc)), customers=POPULATION)
        queued = fanout.queue_campaign(session=crm, now=datetime.now(timezone.utc))
        crm.commit()
    return queued


def send(gateway: RunningGateway, campaign_id: int, *, deadline: float) -> fanout.SendRun:
    with gateway.crm() as crm:
        ids = [i for i, _ in fanout.campaign_deliveries(session=crm, campaign_id=campaign_id)]
    return fanout.send_campaign(
        database_url=gateway.settings.database_url,
        gateway_url=gateway.url,
        token=gateway.settings.internal_api_token,
        weekly_cap=3,
        delivery_ids=ids,
        concurrency=4,
        deadline=deadline,
    )


def test_everyone_gets_the_campaign_once_or_is_skipped_by_the_gate(
    gateway: RunningGateway, rasa: StandInRasa, campaign: fanout.Campaigned
) -> None:
    assert campaign.deliveries == POPULATION

    run = send(gateway, campaign.campaign_id, deadline=time.monotonic() + 60)

    with gateway.crm() as crm:
        ledger = audit_campaign(session=crm, campaign_id=campaign.campaign_id, telegram_sent=[])
        opted_out = crm.scalar(select(Delivery.id).where(Delivery.status == DeliveryStatus.SKIPPED).limit(1))
    assert run.sent == ledger.sent == ledger.messages == ledger.web_waiting == len(rasa.trigger_calls)
    assert ledger.sent + ledger.skipped == POPULATION and ledger.open == 0
    assert run.outcomes["skipped"] == ledger.skipped and opted_out is not None  # about 1 in 5 opted out
    assert (ledger.losses(), ledger.duplicates()) == (0, 0)


def test_what_the_time_budget_leaves_unsent_stays_queued(
    gateway: RunningGateway, rasa: StandInRasa, campaign: fanout.Campaigned
) -> None:
    run = send(gateway, campaign.campaign_id, deadline=time.monotonic())

    assert run.outcomes == {fanout.NOT_STARTED: POPULATION} and rasa.trigger_calls == []
    with gateway.crm() as crm:
        ledger = audit_campaign(session=crm, campaign_id=campaign.campaign_id, telegram_sent=[])
    assert (ledger.open, ledger.sent, ledger.losses()) == (POPULATION, 0, 0)


def test_the_ledger_counts_a_missing_or_doubled_campaign_message(
    gateway: RunningGateway, campaign: fanout.Campaigned
) -> None:
    send(gateway, campaign.campaign_id, deadline=time.monotonic() + 60)
    with gateway.crm() as crm:
        campaign_messages = [
            m
            for m in crm.scalars(select(Message).where(Message.author == Author.BOT).order_by(Message.id))
            if (m.payload or {}).get("proactive") == "EXTERNAL_campaign"  # not the demo's own chats
        ]
        first, second = campaign_messages[:2]
        crm.add(
            Message(
                conversation_id=first.conversation_id,
                direction=first.direction,
                author=Author.BOT,
                text=first.text,
                payload=first.payload,
                delivery_status=OutboundStatus.QUEUED,
            )
        )
        crm.delete(second)
        crm.flush()
        chat = crm.get_one(Conversation, first.conversation_id).sender_id.split(":", 1)[1]
        telegram = [{"chat_id": chat, "text": "Hi"}, {"chat_id": chat, "text": "Hi"}]
        ledger = audit_campaign(session=crm, campaign_id=campaign.campaign_id, telegram_sent=telegram)
        crm.rollback()
    assert (ledger.lost, ledger.duplicated, ledger.telegram_received_twice) == (1, 1, 1)
    assert (ledger.losses(), ledger.duplicates()) == (1, 2)


def test_trigger_intent_straight_at_rasa(rasa: StandInRasa) -> None:
    entities = [{"campaign_text": f"Hi {n}"} for n in range(6)]
    run = fanout.trigger_directly(
        rasa_url=rasa.url,
        token="standin-rasa-token",
        entities=entities,
        concurrency=3,
        deadline=time.monotonic() + 30,
    )
    assert run.outcomes == {"error": 6}  # the stand-in does not know EXTERNAL_campaign yet
    rasa.intents["EXTERNAL_campaign"] = [{"text": "news"}]
    run = fanout.trigger_directly(
        rasa_url=rasa.url,
        token="standin-rasa-token",
        entities=entities,
        concurrency=3,
        deadline=time.monotonic() + 30,
    )
    assert run.sent == 6 and run.concurrency == 3
    with rasa.lock:
        calls = rasa.trigger_calls[-6:]
    assert sorted(c["entities"]["campaign_text"] for c in calls) == [f"Hi {n}" for n in range(6)]
    assert len({c["sender"] for c in calls}) == 6  # fresh conversations
