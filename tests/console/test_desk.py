"""The agents' desk through the real gateway (stand-in Rasa): roles, CSRF, claiming, routing while a
person is in charge (also with Rasa down), agent replies with delivery status, typing both ways,
transfer, close, hand back, and chats returned to the queue when their agent went away."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from bot.crm.models import (
    HANDOFF_CALLBACK,
    Agent,
    AuditLog,
    Author,
    Conversation,
    ConversationStatus,
    Direction,
    Handoff,
    HandoffStatus,
    InboundStatus,
    Message,
    utcnow,
)
from bot.gateway import wording
from tests.console.conftest import HANDBACK, ConsoleClient, HandedOff, hand_off
from tests.gateway.harness import RunningGateway, wait_until
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(90)

Consoles = dict[str, ConsoleClient]


def handoff_row(gateway: RunningGateway, handoff_id: int) -> Handoff:
    with gateway.crm() as crm:
        return crm.get_one(Handoff, handoff_id)


def conversation_status(gateway: RunningGateway, conversation_id: int) -> ConversationStatus:
    with gateway.crm() as crm:
        return crm.get_one(Conversation, conversation_id).status


async def next_frame(socket: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == kind:
                return dict(frame)

    return await asyncio.wait_for(read(), timeout)


async def claimed(
    gateway: RunningGateway, rasa: StandInRasa, agent: ConsoleClient, **kwargs: Any
) -> HandedOff:
    chat = await hand_off(gateway, rasa, **kwargs)
    response = await asyncio.to_thread(agent.post, f"/handoffs/{chat.handoff_id}/claim")
    assert response.status_code == 200, response.text
    await chat.visitor.reply()  # "Alex from our team is here now…"
    return chat


async def said_while_rasa_is_down(
    gateway: RunningGateway, rasa: StandInRasa, chat: HandedOff, text: str
) -> Message:
    """Rasa goes down; the customer says `text`; it is routed with the tracker failure noted."""
    rasa.status = 503
    await chat.visitor.say(text)
    message: Message = wait_until(
        lambda: next((m for m in gateway.messages(chat.sender_id) if m.text == text and m.error), None),
        what="the message routed with the tracker failure noted",
    )
    return message


# ---- who may do what ------------------------------------------------------------------------


async def test_a_marketer_cannot_open_or_work_chats(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    chat = await hand_off(desk_gateway, rasa)
    marketer = console["mo"]
    for path in (
        "/queue",
        "/queue.json",
        f"/chats/{chat.handoff_id}",
        f"/chats/{chat.handoff_id}/state.json",
    ):
        assert (await asyncio.to_thread(marketer.http.get, path)).status_code == 403, path
    for path in (
        f"/handoffs/{chat.handoff_id}/claim",
        f"/chats/{chat.handoff_id}/messages",
        f"/chats/{chat.handoff_id}/notes",
    ):
        assert (await asyncio.to_thread(marketer.post, path, {"text": "hi"})).status_code == 403, path
    with pytest.raises(websockets.InvalidStatusCode):
        await marketer.socket()
    assert handoff_row(desk_gateway, chat.handoff_id).status == HandoffStatus.QUEUED

    admin = console["ada"]  # admins work chats too
    assert (await asyncio.to_thread(admin.http.get, "/queue")).status_code == 200
    logged_out = ConsoleClient(desk_gateway, "nobody")
    response = await asyncio.to_thread(logged_out.http.get, "/queue")
    logged_out.close()
    assert response.status_code == 303 and response.headers["location"].endswith("/console/login")


async def test_every_change_needs_the_session_csrf_token(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    chat = await hand_off(desk_gateway, rasa)
    alex = console["alex"]
    assert (
        await asyncio.to_thread(alex.post, f"/handoffs/{chat.handoff_id}/claim", csrf="forged")
    ).status_code == 403
    assert (
        await asyncio.to_thread(alex.post, f"/handoffs/{chat.handoff_id}/claim", csrf=console["sam"].csrf)
    ).status_code == 403
    assert handoff_row(desk_gateway, chat.handoff_id).status == HandoffStatus.QUEUED
    await asyncio.to_thread(alex.post, f"/handoffs/{chat.handoff_id}/claim")
    await chat.visitor.reply()
    forged = {
        "messages": {"text": "hello"},
        "notes": {"text": "note"},
        "transfer": {"agent_id": "2"},
        "close": {"resolution": "done"},
        "handback": {},
    }
    for action, data in forged.items():
        response = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/{action}", data, csrf="")
        assert response.status_code == 403, action
        assert "form expired" in response.text
    state = alex.state(chat.handoff_id)
    assert state["handoff"]["status"] == "claimed" and state["notes"] == []
    assert not any(m["author"] == "agent" for m in state["messages"])
    assert rasa.trigger_calls == []


# ---- claiming --------------------------------------------------------------------------------


async def test_one_claim_wins_and_survives_a_reload(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    chat = await hand_off(desk_gateway, rasa)
    alex, sam = console["alex"], console["sam"]
    queue = (await asyncio.to_thread(alex.http.get, "/queue.json")).json()["entries"]
    assert [(e["handoff_id"], e["status"], e["mode"], e["channel"]) for e in queue] == [
        (chat.handoff_id, "queued", "live", "web")
    ]

    first, second = await asyncio.gather(
        asyncio.to_thread(alex.post, f"/handoffs/{chat.handoff_id}/claim"),
        asyncio.to_thread(sam.post, f"/handoffs/{chat.handoff_id}/claim"),
    )
    outcomes = sorted([first, second], key=lambda r: r.status_code)
    assert [r.status_code for r in outcomes] == [200, 409]
    winner = alex if first.status_code == 200 else sam
    loser_name = "Alex Agent" if winner is alex else "Sam Second"
    assert outcomes[1].json()["error"] == f"{loser_name} claimed this chat first."

    joined = await chat.visitor.reply()
    assert joined["author"] == "system" and joined["text"].endswith(
        "is here now and has read our conversation so far."
    )
    page = await asyncio.to_thread(winner.http.get, f"/chats/{chat.handoff_id}")  # a reload
    assert "You are handling this chat." in page.text and 'id="composer"' in page.text
    other = sam if winner is alex else alex
    page = await asyncio.to_thread(other.http.get, f"/chats/{chat.handoff_id}")
    assert f"{loser_name} is handling this chat." in page.text and 'id="composer"' not in page.text

    form_claim = await asyncio.to_thread(other.post, f"/handoffs/{chat.handoff_id}/claim", as_json=False)
    assert form_claim.status_code == 409 and "claimed this chat first." in form_claim.text
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.HANDED_OFF


async def test_claiming_a_callback_pauses_the_bot(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    chat = await hand_off(desk_gateway, rasa, mode=HANDOFF_CALLBACK)
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.BOT
    await asyncio.to_thread(console["alex"].post, f"/handoffs/{chat.handoff_id}/claim")
    await chat.visitor.reply()
    assert [(e["sender"], e["event"]) for e in rasa.appended] == [(chat.sender_id, "pause")]
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.HANDED_OFF


# ---- messages both ways ----------------------------------------------------------------------


async def test_the_customers_message_reaches_the_agent_and_not_the_bot(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    socket = await alex.socket()
    await next_frame(socket, "ready")
    await socket.send(json.dumps({"type": "watch", "handoff": chat.handoff_id}))
    await asyncio.sleep(0.2)

    await chat.visitor.say("Where is my parcel?")

    await next_frame(socket, "conversation")
    wait_until(lambda: "Where is my parcel?" in rasa.messages, what="the tracker to get the message")
    message = desk_gateway.messages(chat.sender_id)[-1]
    assert (message.text, message.delivery_status, message.error) == (
        "Where is my parcel?",
        InboundStatus.PROCESSED,
        None,
    )
    state = alex.state(chat.handoff_id)
    assert (
        state["messages"][-1]["text"] == "Where is my parcel?"
        and state["messages"][-1]["author"] == "customer"
    )
    with pytest.raises(AssertionError):  # the bot stays silent
        await chat.visitor.next(lambda f: f["type"] == "message", timeout=1.0)
    assert [m.author for m in desk_gateway.messages(chat.sender_id)].count(
        Author.BOT
    ) == 1  # only the "hi" answer


async def test_with_rasa_down_the_agent_still_gets_the_message(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)

    message = await said_while_rasa_is_down(desk_gateway, rasa, chat, "Are you still there?")
    assert message.delivery_status == InboundStatus.PROCESSED
    assert message.error is not None and message.error.startswith("not in Rasa's tracker")
    assert alex.state(chat.handoff_id)["messages"][-1]["text"] == "Are you still there?"
    texts = [m.text for m in desk_gateway.messages(chat.sender_id)]
    assert wording.HOLDING not in texts  # a person is there: no "I'll answer as soon as I can"

    await chat.visitor.say("Hello?")  # the breaker is open now: routed without waiting for Rasa
    wait_until(
        lambda: alex.state(chat.handoff_id)["messages"][-1]["text"] == "Hello?", what="the second message"
    )

    rasa.status = 200  # Rasa is back: the sweep gives its tracker both messages, in order, as history
    late = wait_until(
        lambda: (
            [e for e in rasa.appended if e["sender"] == chat.sender_id and e["event"] == "user"][-2:]
            if not any(m.error for m in desk_gateway.messages(chat.sender_id))
            else None
        ),
        what="the missed messages added to the tracker",
    )
    assert [e["text"] for e in late] == ["Are you still there?", "Hello?"]
    assert late[0]["parse_data"]["intent"]["name"] == "chitchat" and late[0]["metadata"]["added_late"]
    assert late[0]["timestamp"] <= late[1]["timestamp"]
    assert [m.author for m in desk_gateway.messages(chat.sender_id)].count(Author.BOT) == 1  # still silent


async def test_a_hand_back_first_gives_rasa_what_it_missed(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    await said_while_rasa_is_down(desk_gateway, rasa, chat, "It's the blue one")
    rasa.status = 200  # and the agent hands back at once
    response = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/handback")
    assert response.status_code == 200, response.text
    # Whether the sweep or the hand-back itself added it: the tracker has it before the bot resumes.
    trail = [e.get("text") or e["event"] for e in rasa.appended if e["sender"] == chat.sender_id]
    last_resume = max(n for n, event in enumerate(trail) if event == "resume")
    assert "It's the blue one" in trail[:last_resume]
    assert not any(m.error for m in desk_gateway.messages(chat.sender_id))


async def test_the_agents_reply_reaches_the_customer_with_its_delivery_status(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)

    response = await asyncio.to_thread(
        alex.post, f"/chats/{chat.handoff_id}/messages", {"text": "  Hi, I'm Alex. \x07"}
    )

    assert response.status_code == 200 and response.json()["status"] == "sent"
    shown = await chat.visitor.reply()
    assert (shown["author"], shown["text"]) == ("agent", "Hi, I'm Alex.")
    with desk_gateway.crm() as crm:
        stored = crm.get_one(Message, response.json()["message_id"])
        agent_id = crm.scalar(select(Agent.id).where(Agent.username == "alex"))
    assert (stored.direction, stored.author, stored.agent_id) == (Direction.OUTBOUND, Author.AGENT, agent_id)
    await chat.visitor.send({"type": "received", "ids": [shown["id"]]})
    wait_until(
        lambda: alex.state(chat.handoff_id)["messages"][-1]["status"] == "delivered",
        what="delivered in the console",
    )
    assert alex.state(chat.handoff_id)["messages"][-1]["who"] == "Alex Agent"

    empty = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/messages", {"text": "   "})
    assert empty.status_code == 400 and empty.json()["error"] == "Write something first."
    sam = await asyncio.to_thread(
        console["sam"].post, f"/chats/{chat.handoff_id}/messages", {"text": "me too"}
    )
    assert sam.status_code == 409 and sam.json()["error"] == "Alex Agent is handling this chat."


async def test_typing_shows_both_ways(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    socket = await alex.socket()
    await next_frame(socket, "ready")
    await socket.send(json.dumps({"type": "watch", "handoff": chat.handoff_id}))
    await asyncio.sleep(0.2)

    await chat.visitor.send({"type": "typing", "on": True})
    assert (await next_frame(socket, "typing"))["on"] is True

    await socket.send(json.dumps({"type": "typing", "handoff": chat.handoff_id, "on": True}))
    # the widget is told a person is typing, not the bot (the bot's own typing came before)
    frame = await chat.visitor.next(lambda f: f["type"] == "typing" and f.get("who") == "agent")
    assert frame["on"] is True


async def test_internal_notes_never_reach_the_customer(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    response = await asyncio.to_thread(
        alex.post, f"/chats/{chat.handoff_id}/notes", {"text": "Angry about 2nd late parcel"}
    )
    assert response.status_code == 200
    assert [n["text"] for n in alex.state(chat.handoff_id)["notes"]] == ["Angry about 2nd late parcel"]
    with pytest.raises(AssertionError):
        await chat.visitor.next(lambda f: f["type"] == "message", timeout=1.0)
    assert "Angry" not in json.dumps(desk_gateway.history(chat.visitor.token).json())
    page = await asyncio.to_thread(console["sam"].http.get, f"/chats/{chat.handoff_id}")
    assert "Angry about 2nd late parcel" in page.text  # colleagues see it


# ---- ending a chat ---------------------------------------------------------------------------


async def test_handing_back_resumes_the_bot_which_asks_for_a_rating(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)

    response = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/handback")

    assert response.status_code == 200 and response.json()["followed_up"] is True
    assert [(e["sender"], e["event"], e.get("name")) for e in rasa.appended] == [
        (chat.sender_id, "resume", None),
        (chat.sender_id, "action", "action_listen"),  # so that the handback rule matches
    ]
    assert [(c["sender"], c["name"]) for c in rasa.trigger_calls] == [(chat.sender_id, "EXTERNAL_handback")]
    back = await chat.visitor.reply()
    rating = await chat.visitor.reply()
    assert (back["text"], rating["text"], [b["title"] for b in rating["buttons"]]) == (
        HANDBACK[0]["text"],
        "How did we do?",
        ["1", "5"],
    )
    ended = handoff_row(desk_gateway, chat.handoff_id)
    assert ended.status == HandoffStatus.RETURNED and ended.closed_at is not None
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.BOT

    await chat.visitor.click(rating["id"], 1)  # the bot answers again
    assert (await chat.visitor.reply())["author"] == "bot"
    assert rasa.webhook_calls[-1]["message"] == '/rate{"rating": "5"}'


async def test_handing_back_answers_the_customers_last_message_before_the_rating(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    await chat.visitor.say("Where is my parcel?")  # to the agent, who hands back without answering
    wait_until(lambda: "Where is my parcel?" in rasa.messages, what="the tracker's copy")

    response = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/handback")

    assert response.status_code == 200
    assert (response.json()["answered"], response.json()["followed_up"]) == (True, True)
    replies = [await chat.visitor.reply() for _ in range(3)]
    assert [r["text"] for r in replies] == [
        "You said: Where is my parcel?",  # the bot answers it first, as a normal message
        HANDBACK[0]["text"],
        "How did we do?",
    ]
    copy, turn = [c for c in rasa.webhook_calls if c["message"] == "Where is my parcel?"]
    assert copy["metadata"]["careloop_copy"] is True and "careloop_copy" not in turn["metadata"]
    assert copy["metadata"]["careloop_message_id"] == turn["metadata"]["careloop_message_id"]
    with desk_gateway.crm() as crm:
        asked = crm.get_one(Message, turn["metadata"]["careloop_message_id"])
    assert (asked.delivery_status, asked.payload["routed"]) == (
        InboundStatus.PROCESSED,
        "bot_after_handback",
    )


async def test_after_an_agents_answer_a_hand_back_only_asks_for_the_rating(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    await chat.visitor.say("Where is my parcel?")
    wait_until(lambda: "Where is my parcel?" in rasa.messages, what="the tracker's copy")
    await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/messages", {"text": "It arrives today."})
    await chat.visitor.reply()

    response = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/handback")

    assert (response.json()["answered"], response.json()["followed_up"]) == (None, True)
    assert (await chat.visitor.reply())["text"] == HANDBACK[0]["text"]
    assert rasa.messages.count("Where is my parcel?") == 1  # only the paused copy


async def test_with_rasa_down_the_chat_stays_with_the_agent(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    rasa.status = 500
    for action, data in (("handback", {}), ("close", {"resolution": "Refund sent"})):
        response = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/{action}", data)
        assert response.status_code == 503 and "chat stays with you" in response.json()["error"]
    assert handoff_row(desk_gateway, chat.handoff_id).status == HandoffStatus.CLAIMED
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.HANDED_OFF


async def test_closing_sends_the_resolution_to_the_customer_and_gives_the_conversation_back(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    missing = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/close", {"resolution": " "})
    assert missing.status_code == 400
    assert missing.json()["error"] == "Write what was resolved before closing: the customer reads it."
    too_long = "x" * 2001
    refused = await asyncio.to_thread(
        alex.post,
        f"/chats/{chat.handoff_id}/close",
        {"resolution": too_long, "confirmed": "yes"},
        as_json=False,
    )
    assert refused.status_code == 400 and "Keep the resolution under 2,000 characters." in refused.text
    assert f">{too_long}</textarea>" in refused.text  # what the agent wrote is still there to shorten
    resolution = "<b>A new bag</b> is on its way & arrives Tuesday."
    asked = await asyncio.to_thread(
        alex.post, f"/chats/{chat.handoff_id}/close", {"resolution": resolution}, as_json=False
    )
    assert (
        asked.status_code == 200 and "&lt;b&gt;A new bag&lt;/b&gt; is on its way &amp; arrives" in asked.text
    )

    response = await asyncio.to_thread(
        alex.post,
        f"/chats/{chat.handoff_id}/close",
        {"resolution": resolution, "confirmed": "yes"},
        as_json=False,
    )

    assert response.status_code == 303 and response.headers["location"].endswith("/console/queue?done=closed")
    told = await chat.visitor.reply()
    assert (told["author"], told["text"]) == ("agent", resolution)  # as written: the widget shows it as text
    ended = handoff_row(desk_gateway, chat.handoff_id)
    assert (ended.status, ended.resolution) == (HandoffStatus.CLOSED, resolution)
    with desk_gateway.crm() as crm:
        sent = crm.get_one(Message, told["id"])
        alex_id = crm.scalar(select(Agent.id).where(Agent.username == "alex"))
    assert (sent.author, sent.agent_id, sent.payload) == (
        Author.AGENT,
        alex_id,
        {"kind": "resolution", "handoff_id": chat.handoff_id},
    )
    assert [e["event"] for e in rasa.appended] == ["resume", "action"] and rasa.trigger_calls == []
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.BOT
    events = [e["text"] for e in alex.state(chat.handoff_id)["events"]]
    assert events == ["Claimed by Alex Agent", f"Closed by Alex Agent: {resolution}"]
    assert alex.state(chat.handoff_id)["messages"][-1]["text"] == resolution


async def closed_by_alex(gateway: RunningGateway, rasa: StandInRasa, console: Consoles) -> HandedOff:
    """Alex, at the console, claims a chat and closes it with a resolution the customer reads."""
    alex = console["alex"]
    chat = await claimed(gateway, rasa, alex)
    response = await asyncio.to_thread(
        alex.post, f"/chats/{chat.handoff_id}/close", {"resolution": "A new bag is on its way."}
    )
    assert response.status_code == 200 and response.json()["told"] == "sent", response.text
    await chat.visitor.reply()
    return chat


def follow_up_of(gateway: RunningGateway, chat: HandedOff) -> Handoff:
    with gateway.crm() as crm:
        handoff = crm.scalar(
            select(Handoff)
            .where(Handoff.conversation_id == chat.conversation_id, Handoff.id != chat.handoff_id)
            .order_by(Handoff.id.desc())
        )
    assert handoff is not None, "no follow-up handoff"
    return handoff


async def test_a_message_soon_after_a_close_goes_back_to_the_same_agent(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    socket = await alex.socket()  # Alex is at the console
    await next_frame(socket, "ready")
    chat = await closed_by_alex(desk_gateway, rasa, console)

    await chat.visitor.say("When will the new bag arrive?")

    notice = await chat.visitor.reply()
    assert (notice["author"], notice["text"]) == ("system", wording.FOLLOW_UP_SAME.format(agent="Alex"))
    again = follow_up_of(desk_gateway, chat)
    assert (again.status, again.reason) == (HandoffStatus.CLAIMED, "follow_up")
    assert "whose chat you closed" in (await next_frame(socket, "notice"))["text"]
    state = alex.state(again.id)
    assert [(m["author"], m["text"]) for m in state["messages"][-2:]] == [
        ("customer", "When will the new bag arrive?"),
        ("system", notice["text"]),
    ]
    assert state["handoff"]["mine"] is True
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.HANDED_OFF
    assert chat.sender_id in rasa.paused  # the bot stays silent: no "You're welcome!"
    with pytest.raises(AssertionError):
        await chat.visitor.next(lambda f: f["type"] == "message" and f["author"] == "bot", timeout=1.0)
    said = await asyncio.to_thread(alex.post, f"/chats/{again.id}/messages", {"text": "Tuesday, by noon."})
    assert said.status_code == 200
    assert (await chat.visitor.reply())["text"] == "Tuesday, by noon."


async def test_a_follow_up_whose_agent_left_waits_in_the_queue_marked_as_one(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    chat = await closed_by_alex(desk_gateway, rasa, console)
    with desk_gateway.crm() as crm:  # Alex closed the console since
        crm.scalars(select(Agent).where(Agent.username == "alex")).one().last_seen_at = None
        crm.commit()

    await chat.visitor.say("When will the new bag arrive?")

    notice = await chat.visitor.reply()
    assert notice["text"] == wording.FOLLOW_UP_QUEUED.format(agent="Alex")
    entries = (await asyncio.to_thread(console["sam"].http.get, "/queue.json")).json()["entries"]
    assert [(e["status"], e["follow_up"], e["notice"]) for e in entries] == [
        ("queued", True, "Follow-up: the customer wrote again soon after Alex Agent closed the chat.")
    ]
    page = await asyncio.to_thread(console["sam"].http.get, "/queue")
    assert '<span class="chip follow-up">Follow-up</span>' in page.text
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.HANDED_OFF


async def test_after_the_follow_up_window_the_bot_answers_again(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    chat = await closed_by_alex(desk_gateway, rasa, console)
    desk = desk_gateway.gateway.desk
    later = utcnow() + desk.follow_up_within + timedelta(seconds=5)
    desk.clock = lambda: later

    await chat.visitor.say("thanks!")

    assert (await chat.visitor.reply())["text"] == "You said: thanks!"
    assert handoff_row(desk_gateway, chat.handoff_id).status == HandoffStatus.CLOSED
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.BOT


async def test_a_chat_can_be_transferred_to_an_agent_at_the_console(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex, sam = console["alex"], console["sam"]
    chat = await claimed(desk_gateway, rasa, alex)
    with desk_gateway.crm() as crm:
        sam_id = crm.scalar(select(Agent.id).where(Agent.username == "sam"))
        crm.get_one(Agent, sam_id).last_seen_at = utcnow() - timedelta(minutes=10)
        crm.commit()
    away = await asyncio.to_thread(alex.post, f"/chats/{chat.handoff_id}/transfer", {"agent_id": str(sam_id)})
    assert away.status_code == 409 and away.json()["error"] == "Sam Second is not at the console right now."

    sam_socket = await sam.socket()  # Sam opens the console: present, and told of the transfer
    await next_frame(sam_socket, "ready")
    page = await asyncio.to_thread(alex.http.get, f"/chats/{chat.handoff_id}")
    assert f'<option value="{sam_id}">Sam Second</option>' in page.text
    response = await asyncio.to_thread(
        alex.post, f"/chats/{chat.handoff_id}/transfer", {"agent_id": str(sam_id)}
    )

    assert response.status_code == 200
    assert "transferred to you" in (await next_frame(sam_socket, "notice"))["text"]
    assert handoff_row(desk_gateway, chat.handoff_id).agent_id == sam_id
    said = await asyncio.to_thread(sam.post, f"/chats/{chat.handoff_id}/messages", {"text": "Sam here"})
    assert said.status_code == 200


# ---- live queue and presence -----------------------------------------------------------------


async def test_the_queue_updates_live_and_the_console_keeps_the_agent_present(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    with desk_gateway.crm() as crm:
        agent = crm.scalar(select(Agent).where(Agent.username == "alex"))
        assert agent is not None
        agent.last_seen_at = utcnow() - timedelta(hours=1)
        crm.commit()
    socket = await alex.socket()
    await next_frame(socket, "ready")
    wait_until(lambda: handoff_seen_recently(desk_gateway, "alex"), what="the heartbeat to mark Alex present")

    chat = await hand_off(desk_gateway, rasa)  # written by someone else (as the action server does)

    await next_frame(socket, "queue")
    entries = (await asyncio.to_thread(alex.http.get, "/queue.json")).json()["entries"]
    assert [e["handoff_id"] for e in entries] == [chat.handoff_id]


def handoff_seen_recently(gateway: RunningGateway, username: str) -> bool:
    with gateway.crm() as crm:
        seen = crm.scalar(select(Agent.last_seen_at).where(Agent.username == username))
    return seen is not None and seen > utcnow() - timedelta(seconds=5)


async def test_the_console_socket_refuses_other_sites_and_a_wrong_token(
    desk_gateway: RunningGateway, console: Consoles
) -> None:
    alex = console["alex"]
    with pytest.raises(websockets.InvalidStatusCode):
        await alex.socket(origin="https://evil.example")
    alex.csrf, real = "forged", alex.csrf
    socket = await alex.socket()
    with pytest.raises(websockets.ConnectionClosed):
        await next_frame(socket, "ready")
    assert socket.close_code == 4403
    alex.csrf = real


async def test_chats_of_an_agent_who_went_away_return_to_the_queue_with_a_notice(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    alex = console["alex"]
    chat = await claimed(desk_gateway, rasa, alex)
    desk = desk_gateway.gateway.desk
    later = utcnow() + timedelta(seconds=desk.away_seconds + 5)
    desk.clock = lambda: later  # Alex has not been seen for longer than CONSOLE_AGENT_AWAY_SECONDS
    desk.sweep_seconds = 0.1

    notice = await chat.visitor.reply()

    assert (notice["author"], notice["text"]) == ("system", wording.BACK_IN_QUEUE)
    requeued = handoff_row(desk_gateway, chat.handoff_id)
    assert (requeued.status, requeued.agent_id) == (HandoffStatus.QUEUED, None)
    entries = (await asyncio.to_thread(console["sam"].http.get, "/queue.json")).json()["entries"]
    assert [(e["handoff_id"], e["notice"]) for e in entries] == [
        (chat.handoff_id, "Back in the queue: Alex Agent was away.")
    ]
    with desk_gateway.crm() as crm:
        audit = crm.scalars(
            select(AuditLog.action).where(AuditLog.entity == "handoff", AuditLog.entity_id == chat.handoff_id)
        ).all()
    assert audit == ["handoff_claimed", "handoff_requeued"]
    await chat.visitor.say("still there?")  # still a person's conversation: the agent queue gets it
    wait_until(
        lambda: desk_gateway.messages(chat.sender_id)[-1].delivery_status == InboundStatus.PROCESSED,
        what="the message routed",
    )
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.HANDED_OFF


async def test_a_customer_nobody_can_take_gets_a_callback_and_the_bot_back(
    desk_gateway: RunningGateway, rasa: StandInRasa
) -> None:
    chat = await hand_off(desk_gateway, rasa)  # live: the bot is paused, a person was expected
    desk = desk_gateway.gateway.desk
    later = utcnow() + timedelta(seconds=desk.unattended_seconds + 5)
    desk.clock = lambda: later  # nobody has opened the console since, for longer than allowed
    desk.sweep_seconds = 0.1

    notice = await chat.visitor.reply()

    assert notice["author"] == "system" and "a person will get back to you" in notice["text"]
    handoff = handoff_row(desk_gateway, chat.handoff_id)
    assert (handoff.status, handoff.mode) == (HandoffStatus.QUEUED, HANDOFF_CALLBACK)
    assert handoff.callback_by is not None and handoff.callback_by > later
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.BOT
    assert chat.sender_id not in rasa.paused
    await chat.visitor.say("ok then, where is my order?")
    assert (await chat.visitor.reply())["author"] == "bot"  # the bot answers again


async def test_a_customer_waiting_while_an_agent_is_at_the_console_keeps_waiting(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: Consoles
) -> None:
    chat = await hand_off(desk_gateway, rasa)
    socket = await console["sam"].socket()  # Sam has the console open (its heartbeat marks him seen)
    await next_frame(socket, "ready")
    desk = desk_gateway.gateway.desk
    with desk_gateway.crm() as crm:  # the customer has waited long, but Sam is there
        crm.get_one(Handoff, chat.handoff_id).requested_at = utcnow() - timedelta(
            seconds=desk.unattended_seconds + 5
        )
        crm.commit()
    assert await desk.call_back_unattended() == []
    assert handoff_row(desk_gateway, chat.handoff_id).mode == "live"
    assert conversation_status(desk_gateway, chat.conversation_id) == ConversationStatus.HANDED_OFF
    await socket.close()
