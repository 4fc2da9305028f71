"""Issue 15, item 7: an agent cannot add notes to a chat another agent holds.

Internal notes are part of handling a chat, and the agent holding it reads them while talking to
the customer, so a note is written by the agent holding the chat, or by an admin (the desk's lead),
who may add one to any chat. Any other agent is refused with a message saying who holds the chat
(or that it waits to be claimed, or is finished), and is not offered the note form. Through the
real gateway and console, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.crm.models import AgentNote
from tests.console.conftest import ConsoleClient, HandedOff, hand_off
from tests.gateway.fixtures import rasa
from tests.gateway.harness import RunningGateway, close_sockets
from tests.gateway.standin_rasa import StandInRasa
from tests.security.console_stack import database_url, gateway_with_console

__all__ = ["database_url", "rasa"]

pytestmark = pytest.mark.timeout(120)

Consoles = dict[str, ConsoleClient]
ONLY = "Only the agent handling it or an admin can add notes."


@pytest.fixture
async def desk(tmp_path: Path, database_url: str, rasa: StandInRasa) -> AsyncIterator[RunningGateway]:
    with gateway_with_console(tmp_path, database_url, rasa) as (gateway, _):
        yield gateway
        await close_sockets(gateway)


@pytest.fixture
def console(desk: RunningGateway) -> Iterator[Consoles]:
    clients = {name: ConsoleClient(desk, name).login() for name in ("alex", "sam", "ada")}
    yield clients
    for client in clients.values():
        client.close()


def notes(gateway: RunningGateway, chat: HandedOff) -> list[tuple[str, int | None]]:
    with gateway.crm() as crm:
        rows = crm.scalars(
            select(AgentNote).where(AgentNote.handoff_id == chat.handoff_id).order_by(AgentNote.id)
        )
        return [(n.text, n.agent_id) for n in rows]


def note(agent: ConsoleClient, chat: HandedOff, text: str) -> tuple[int, str]:
    response = agent.post(f"/chats/{chat.handoff_id}/notes", {"text": text})
    return response.status_code, response.json().get("error", "")


def offers_the_note_form(agent: ConsoleClient, chat: HandedOff) -> bool:
    page = agent.http.get(f"/chats/{chat.handoff_id}")
    assert page.status_code == 200, page.text
    return 'id="note-form"' in page.text


async def test_only_the_agent_holding_a_chat_or_an_admin_adds_notes(
    desk: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex, sam, ada = console["alex"], console["sam"], console["ada"]
    chat = await hand_off(desk, rasa)

    assert note(sam, chat, "Claim me later") == (
        403,
        f"This chat is waiting in the queue: claim it first. {ONLY}",
    )
    assert alex.post(f"/handoffs/{chat.handoff_id}/claim").status_code == 200

    assert note(sam, chat, "Customer already got a refund, just close it") == (
        403,
        f"Alex Agent is handling this chat. {ONLY}",
    )
    assert not offers_the_note_form(sam, chat)
    assert notes(desk, chat) == []

    assert note(alex, chat, "Second late parcel") == (200, "")
    assert note(ada, chat, "Offer express shipping") == (200, "")
    assert offers_the_note_form(alex, chat) and offers_the_note_form(ada, chat)
    texts = [n["text"] for n in alex.state(chat.handoff_id)["notes"]]
    assert texts == ["Second late parcel", "Offer express shipping"]

    assert alex.post(f"/chats/{chat.handoff_id}/close", {"resolution": "Reshipped"}).status_code == 200
    status, error = note(alex, chat, "Afterthought")
    assert status == 403 and error.startswith("This chat is finished")
    assert note(ada, chat, "Reviewed: well handled") == (200, "")
    assert [text for text, _ in notes(desk, chat)] == [
        "Second late parcel",
        "Offer express shipping",
        "Reviewed: well handled",
    ]
