"""Issue 15, item 7: a button 54 messages old was still accepted. Only buttons of the bot's recent
messages may be clicked (rule and reasons: `bot.crm.transcript.offered_button`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bot.crm import transcript
from bot.crm.models import Author, Direction, InboundStatus, Message
from bot.gateway import wording
from tests.gateway.fixtures import crm_template, rasa
from tests.gateway.harness import (
    RunningGateway,
    close_sockets,
    connect,
    copy_crm,
    gateway_settings,
    running_gateway,
)
from tests.gateway.standin_rasa import StandInRasa

__all__ = ["crm_template", "rasa"]

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
BUTTONS = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]


class Talk:
    """A conversation written straight into the CRM."""

    def __init__(self, session: Session, conversation_id: int) -> None:
        self.session, self.conversation_id = session, conversation_id

    @classmethod
    def new(cls, session: Session, sender_id: str) -> Talk:
        stored = transcript.store_inbound(session=session, sender_id=sender_id, text="hi", now=NOW)
        return cls(session, stored.conversation.id)

    def bot(self, *, buttons: bool = False) -> Message:
        return transcript.store_outbound(
            session=self.session,
            conversation_id=self.conversation_id,
            author=Author.BOT,
            text="Is everything fine?" if buttons else "Noted.",
            payload={"buttons": BUTTONS} if buttons else None,
            now=NOW,
        )

    def chat(self, count: int) -> None:
        """`count` more messages, alternately the customer's and the bot's, none with buttons."""
        for n in range(count):
            if n % 2:
                self.bot()
            else:
                self.session.add(
                    Message(
                        conversation_id=self.conversation_id,
                        direction=Direction.INBOUND,
                        author=Author.CUSTOMER,
                        text=f"message {n}",
                        delivery_status=InboundStatus.PROCESSED,
                    )
                )
        self.session.flush()

    def click(self, message: Message, index: int = 0, now: datetime = NOW) -> dict[str, str] | None:
        return transcript.offered_button(
            session=self.session,
            conversation_id=self.conversation_id,
            message_id=message.id,
            index=index,
            now=now,
        )


def test_the_latest_buttons_can_be_clicked(session: Session) -> None:
    talk = Talk.new(session, "web:stale-latest")
    menu = talk.bot(buttons=True)

    assert talk.click(menu, 1) == {"title": "No", "payload": "/deny"}
    talk.chat(19)
    assert talk.click(menu) == {"title": "Yes", "payload": "/affirm"}  # 19 messages on: still live


def test_a_button_54_messages_old_is_stale(session: Session) -> None:
    talk = Talk.new(session, "web:stale-54")
    menu = talk.bot(buttons=True)
    talk.chat(54)

    assert talk.click(menu) is None


def test_a_button_20_messages_old_is_stale(session: Session) -> None:
    talk = Talk.new(session, "web:stale-20")
    menu = talk.bot(buttons=True)
    talk.chat(20)

    assert talk.click(menu) is None


def test_three_newer_menus_make_a_button_stale(session: Session) -> None:
    talk = Talk.new(session, "web:stale-menus")
    first = talk.bot(buttons=True)
    second = talk.bot(buttons=True)
    talk.bot(buttons=True)

    assert talk.click(first) is not None  # two newer menus: a turn may end with two
    talk.bot(buttons=True)
    assert talk.click(first) is None
    assert talk.click(second) is not None


def test_a_button_older_than_a_day_is_stale(session: Session) -> None:
    talk = Talk.new(session, "web:stale-day")
    evening = talk.bot(buttons=True)

    assert talk.click(evening, now=NOW + timedelta(hours=23, minutes=59)) is not None
    assert talk.click(evening, now=NOW + timedelta(hours=24)) is None


# ----- through the gateway: the customer is told, Rasa gets nothing -----


@pytest.fixture
async def gateway(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> AsyncIterator[RunningGateway]:
    copy_crm(crm_template, tmp_path / "var")
    with running_gateway(gateway_settings(tmp_path / "var", rasa.url)) as running:
        yield running
        await close_sockets(running)


async def test_an_old_click_is_answered_with_the_stale_button_wording(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    await visitor.say("menu")
    menu = await visitor.reply()
    sender = rasa.webhook_calls[0]["sender"]
    with gateway.crm() as crm:  # a long talk since: 54 messages
        conversation = transcript.find_conversation(session=crm, sender_id=sender)
        assert conversation is not None
        Talk(crm, conversation.id).chat(54)
        crm.commit()

    stale = await visitor.click(menu["id"], 0)
    await visitor.say("menu")
    fresh_menu = await visitor.reply()
    fresh = await visitor.click(fresh_menu["id"], 0)
    await visitor.reply()

    assert (stale["type"], stale["code"], stale["text"]) == ("notice", "stale_button", wording.STALE_BUTTON)
    assert fresh["type"] == "ack"
    assert rasa.messages == ["menu", "menu", "/check_order_status"]
