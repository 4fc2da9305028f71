"""End to end: the scheduler's revisit of a resolved complaint reaches a web customer (widget
protocol over a real websocket) and a Telegram customer (stand-in Bot API); "no, still broken"
reopens the case in the CRM and the bot offers a person. Real scheduler, gateway, Rasa and actions."""

from __future__ import annotations

import asyncio
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from bot.crm.complaints import file_complaint, resolve_complaint
from bot.crm.models import Channel, Complaint, ComplaintCategory, ComplaintStatus, Delivery, DeliveryStatus
from tests.e2e.outreach.conftest import OutreachStack
from tests.gateway.harness import WebVisitor, wait_until

pytestmark = pytest.mark.e2e

CHECKIN = re.compile(r"We sorted out your delivery problem — is everything fine now\?")
REOPENED = re.compile(r"I've reopened case #(\d+) with top priority")
OFFER = "Would you like me to bring in a person from our team right now?"


def open_case(stack: OutreachStack, *, channel: Channel, external_id: str, first_name: str) -> int:
    """A customer with an open delivery complaint (its revisit is queued, not yet due)."""
    with stack.crm() as session:
        customer = stack.customer(session, channel=channel, external_id=external_id, first_name=first_name)
        filed = file_complaint(
            session=session,
            customer=customer,
            category=ComplaintCategory.DELIVERY,
            description="the parcel never came",
            order=None,
            angry=False,
        )
        session.commit()
        return filed.complaint.id


def resolve_days_ago(stack: OutreachStack, complaint_id: int, days: int = 4) -> None:
    """The team fixed the case `days` ago, so its revisit (three days after a fix) is due now."""
    with stack.crm() as session:
        complaint = session.get_one(Complaint, complaint_id)
        resolve_complaint(
            session=session,
            complaint=complaint,
            resolution="a new parcel was sent",
            now=datetime.now(timezone.utc) - timedelta(days=days),
        )
        session.commit()


def case(stack: OutreachStack, complaint_id: int) -> tuple[ComplaintStatus, DeliveryStatus]:
    with stack.crm() as session:
        complaint = session.get_one(Complaint, complaint_id)
        delivery = session.scalars(select(Delivery).where(Delivery.complaint_id == complaint_id)).one()
        return complaint.status, delivery.status


def recorded_as_sent(stack: OutreachStack, complaint_id: int) -> None:
    """The scheduler records the delivery once the gateway answers (the customer may see it first)."""
    wait_until(
        lambda: case(stack, complaint_id) == (ComplaintStatus.RESOLVED, DeliveryStatus.SENT),
        timeout=30,
        what="the revisit to be recorded as sent",
    )


def test_a_web_customer_says_it_is_still_broken_and_the_case_is_reopened(outreach: OutreachStack) -> None:
    # The widget's side runs on its own event loop: Playwright's sync API holds this thread's loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, web_checkin(outreach)).result()


async def web_checkin(outreach: OutreachStack) -> None:
    visitor_id, token = await asyncio.to_thread(outreach.web_visitor)
    complaint_id = await asyncio.to_thread(
        open_case, outreach, channel=Channel.WEB, external_id=visitor_id, first_name="Wanda"
    )
    socket = await websockets.connect(outreach.url.replace("http", "ws") + "/webchat/ws")
    try:
        visitor = WebVisitor(socket, token)
        await visitor.send({"type": "hello", "token": token})
        await visitor.next(lambda f: f["type"] == "ready")
        await asyncio.sleep(3)  # several sweeps and sends: an unresolved case is not revisited
        assert not [f for f in visitor.frames if f["type"] == "message"]
        await asyncio.to_thread(resolve_days_ago, outreach, complaint_id)

        checkin = await visitor.reply(timeout=60)  # the scheduler's send job finds it within a second or two
        assert CHECKIN.search(checkin["text"]), checkin
        assert [b["title"] for b in checkin["buttons"]] == ["Yes, all good", "No, still a problem"]
        await asyncio.to_thread(recorded_as_sent, outreach, complaint_id)

        await visitor.say("no, still broken")
        replies = [await visitor.reply(timeout=60), await visitor.reply(timeout=60)]
    finally:
        await socket.close()
    texts = [r["text"] for r in replies]
    reopened = REOPENED.search(texts[0])
    assert reopened and int(reopened.group(1)) == complaint_id, texts
    assert texts[1] == OFFER
    assert [b["title"] for b in replies[1]["buttons"]] == ["Yes, please", "No, thanks"]
    status, _ = await asyncio.to_thread(case, outreach, complaint_id)
    assert status is ComplaintStatus.REOPENED


def test_a_telegram_customer_says_it_is_still_broken_and_the_case_is_reopened(
    outreach: OutreachStack,
) -> None:
    telegram, chat_id = outreach.telegram, outreach.new_chat_id()
    complaint_id = open_case(outreach, channel=Channel.TELEGRAM, external_id=str(chat_id), first_name="Theo")
    resolve_days_ago(outreach, complaint_id)

    [checkin] = wait_until(lambda: telegram.sent_to(chat_id), timeout=60, what="the check-in on Telegram")
    assert CHECKIN.search(checkin["text"]), checkin
    assert buttons(checkin) == ["Yes, all good", "No, still a problem"]
    recorded_as_sent(outreach, complaint_id)

    telegram.user_writes(chat_id, "no, still broken", first_name="Theo")
    answer = wait_until(
        lambda: telegram.sent_to(chat_id)[1:3] if len(telegram.sent_to(chat_id)) >= 3 else None,
        timeout=60,
        what="the bot's answer on Telegram",
    )
    reopened = REOPENED.search(answer[0]["text"])
    assert reopened and int(reopened.group(1)) == complaint_id, answer
    assert answer[1]["text"] == OFFER and buttons(answer[1]) == ["Yes, please", "No, thanks"]
    time.sleep(1)  # nothing more follows
    assert len(telegram.sent_to(chat_id)) == 3
    assert case(outreach, complaint_id)[0] is ComplaintStatus.REOPENED


def buttons(sent: dict[str, Any]) -> list[str]:
    markup = sent.get("reply_markup")
    keyboard = (json.loads(markup) if isinstance(markup, str) else markup or {}).get("inline_keyboard", [])
    return [button["text"] for row in keyboard for button in row]
