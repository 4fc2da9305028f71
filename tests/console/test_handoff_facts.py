"""A hand-over carries what the bot gathered (issue 17): the queue and the chat page show the facts
noted with the request (a complaint's category, order and words), escaped, through the real gateway."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.crm import handoffs
from bot.crm.models import Conversation, Customer
from tests.console.conftest import ConsoleClient
from tests.gateway.harness import RunningGateway, connect

pytestmark = pytest.mark.timeout(90)

WORDS = "<script>alert(1)</script> coffee all over the box"


async def test_the_queue_and_the_chat_page_show_the_facts_gathered_escaped(
    desk_gateway: RunningGateway, console: dict[str, ConsoleClient]
) -> None:
    visitor = await connect(desk_gateway)
    await visitor.say("hi")
    await visitor.reply()
    with desk_gateway.crm() as crm:
        conversation = crm.scalars(select(Conversation).order_by(Conversation.id.desc())).first()
        assert conversation is not None
        handoff, _ = handoffs.open_handoff(
            session=crm,
            customer=crm.get_one(Customer, conversation.customer_id),
            conversation=conversation,
            reason="complaint",
            facts={"Complaint about": "delivery", "Order": "CL-100200", "What happened": WORDS},
        )
        crm.commit()
        handoff_id = handoff.id
    alex = console["alex"]

    queue = await asyncio.to_thread(alex.http.get, "/queue")
    chat = await asyncio.to_thread(alex.http.get, f"/chats/{handoff_id}")

    escaped = (
        "Complaint about: delivery · Order: CL-100200 · What happened: &lt;script&gt;alert(1)&lt;/script&gt;"
    )
    for page in (queue, chat):
        assert page.status_code == 200
        assert escaped in page.text
        assert "<script>alert(1)" not in page.text
