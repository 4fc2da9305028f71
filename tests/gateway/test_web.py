"""The web channel through a real gateway and a real websocket, with Rasa stood in at the network
boundary: storage before processing, replies and buttons, history, and what a visitor sees."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.crm.models import (
    Author,
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    InboundStatus,
    OutboundStatus,
)
from tests.gateway.harness import RunningGateway, connect, wait_until
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(60)


async def test_a_message_is_stored_before_rasa_sees_it_and_the_answer_is_delivered_and_stored(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    seen_at_arrival: list[tuple[str | None, InboundStatus | OutboundStatus]] = []

    def look_in_the_crm(body: dict[str, Any]) -> None:
        stored = gateway.messages(body["sender"])
        seen_at_arrival.extend((m.text, m.delivery_status) for m in stored)

    rasa.on_message = look_in_the_crm
    visitor = await connect(gateway)

    ack = await visitor.say("hello there")
    reply = await visitor.reply()

    assert ack["type"] == "ack" and isinstance(ack["id"], int)
    assert reply["author"] == "bot" and reply["text"] == "You said: hello there"
    assert seen_at_arrival == [("hello there", InboundStatus.RECEIVED)]
    sender = rasa.webhook_calls[0]["sender"]
    assert sender.startswith("web:")
    settled = wait_until(
        lambda: [m for m in gateway.messages(sender) if m.delivery_status != OutboundStatus.QUEUED][1:] and 1,
        what="the transcript",
    )
    assert settled
    transcript = [(m.direction, m.author, m.text, m.delivery_status) for m in gateway.messages(sender)]
    assert transcript[0] == (Direction.INBOUND, Author.CUSTOMER, "hello there", InboundStatus.PROCESSED)
    assert transcript[1][:3] == (Direction.OUTBOUND, Author.BOT, "You said: hello there")
    assert transcript[1][3] in (OutboundStatus.SENT, OutboundStatus.DELIVERED)


async def test_first_contact_creates_a_customer_and_rasa_gets_the_metadata(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    await visitor.say("hi")
    await visitor.reply()
    await visitor.say("hi again")
    await visitor.reply()

    call = rasa.webhook_calls[0]
    assert call["input_channel"] == "web"
    metadata = call["metadata"]
    assert metadata["channel"] == "web" and metadata["language"] == "en"
    assert isinstance(metadata["careloop_message_id"], int)
    # The greeting can tell a newcomer from someone coming back:
    assert [c["metadata"]["first_contact"] for c in rasa.webhook_calls] == [True, False]
    with gateway.crm() as crm:
        identity = crm.scalar(
            select(ChannelIdentity).where(ChannelIdentity.external_id == call["sender"].partition(":")[2])
        )
        assert identity is not None
        customer = crm.get_one(Customer, identity.customer_id)
        assert customer.last_contact_at is not None
        conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == call["sender"]))
        assert conversation is not None and conversation.customer_id == customer.id


async def test_buttons_are_offered_and_a_click_is_the_customers_answer(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    await visitor.say("menu")
    menu = await visitor.reply()
    assert [b["title"] for b in menu["buttons"]] == ["Track my order", "Talk to a person"]

    ack = await visitor.click(menu["id"], 0)
    answer = await visitor.reply()

    assert ack["type"] == "ack"
    assert rasa.messages == ["menu", "/check_order_status"]  # Rasa gets the payload
    assert answer["text"] == "You said: /check_order_status"
    sender = rasa.webhook_calls[0]["sender"]
    click = next(m for m in gateway.messages(sender) if m.id == ack["id"])
    assert (click.author, click.text) == (Author.CUSTOMER, "Track my order")  # the customer sees the title
    assert click.payload == {
        "kind": "button",
        "rasa_text": "/check_order_status",
        "reply_to": menu["id"],
        "index": 0,
    }


async def test_only_buttons_the_bot_offered_can_be_clicked(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    await visitor.say("menu")
    menu = await visitor.reply()
    other = await connect(gateway)

    out_of_range = await visitor.click(menu["id"], 7)
    not_in_their_conversation = await other.click(menu["id"], 0)

    assert out_of_range["code"] == not_in_their_conversation["code"] == "stale_button"
    assert rasa.messages == ["menu"]


async def test_typed_slash_commands_cannot_inject_intents(gateway: RunningGateway, rasa: StandInRasa) -> None:
    visitor = await connect(gateway)
    await visitor.say('/EXTERNAL_checkin{"order_id": "1"}')
    await visitor.reply()
    assert rasa.messages == ['EXTERNAL_checkin{"order_id": "1"}']


async def test_history_needs_the_visitors_own_token(gateway: RunningGateway, rasa: StandInRasa) -> None:
    visitor = await connect(gateway)
    await visitor.say("my secret order question")
    await visitor.reply()
    stranger = gateway.new_token()

    mine = gateway.history(visitor.token).json()["messages"]
    theirs = gateway.history(stranger).json()["messages"]

    assert [(m["author"], m["text"]) for m in mine] == [
        ("customer", "my secret order question"),
        ("bot", "You said: my secret order question"),
    ]
    assert theirs == []
    assert gateway.history(visitor.token[:-2] + "xx").status_code == 401
    assert httpx.get(f"{gateway.url}/webchat/history", timeout=10).status_code == 401
    assert gateway.history("not-a-token").status_code == 401


async def test_a_websocket_without_a_valid_token_is_closed(gateway: RunningGateway) -> None:
    import websockets

    async with websockets.connect(gateway.ws_url) as socket:
        await socket.send('{"type": "hello", "token": "forged"}')
        assert '"unauthorized"' in await socket.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.code == 4401


async def test_a_resent_message_is_stored_and_answered_once(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    first = await visitor.say("only once", client_id="same-id")
    await visitor.reply()
    again = await visitor.say("only once", client_id="same-id")  # e.g. the ack was lost, widget resent

    assert first["id"] == again["id"]
    sender = rasa.webhook_calls[0]["sender"]
    wait_until(lambda: len(gateway.messages(sender)) == 2, what="the transcript")
    assert rasa.messages == ["only once"]


async def test_messages_of_one_visitor_are_answered_in_order(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    rasa.delay = 0.3
    for n in range(4):
        await visitor.say(f"message {n}")
    replies = [(await visitor.reply())["text"] for _ in range(4)]

    assert rasa.messages == [f"message {n}" for n in range(4)]
    assert replies == [f"You said: message {n}" for n in range(4)]


async def test_a_visitor_away_gets_waiting_messages_on_return_and_confirms_them(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    visitor = await connect(gateway)
    await visitor.say("hi")
    first = await visitor.reply()
    await visitor.send({"type": "received", "ids": [first["id"]]})  # as the widget confirms what it shows
    sender = rasa.webhook_calls[0]["sender"]
    wait_until(
        lambda: gateway.messages(sender)[-1].delivery_status == OutboundStatus.DELIVERED, what="the receipt"
    )
    await visitor.socket.close()
    wait_until(lambda: not gateway.gateway.web.outlet.connected(sender), what="the socket to close")
    response = httpx.post(
        f"{gateway.url}/internal/proactive",
        json={"sender_id": sender, "intent": "EXTERNAL_checkin"},
        headers={"Authorization": f"Bearer {gateway.settings.internal_api_token}"},
        timeout=10,
    )
    assert response.json()["messages"][0]["status"] == "queued"

    back = await connect(gateway, visitor.token)
    waiting = await back.reply()
    await back.send({"type": "received", "ids": [waiting["id"]]})

    assert waiting["text"] == "Hi again! Is everything fine with your order?"
    wait_until(
        lambda: gateway.messages(sender)[-1].delivery_status == OutboundStatus.DELIVERED,
        what="the delivery receipt",
    )
    history = gateway.history(visitor.token).json()["messages"]
    assert history[-1]["text"] == waiting["text"] and history[-1]["unread"] is False


async def test_every_open_tab_of_a_visitor_gets_the_answer(gateway: RunningGateway) -> None:
    tab1 = await connect(gateway)
    tab2 = await connect(gateway, tab1.token)
    await tab1.say("two tabs")
    assert (await tab1.reply())["text"] == (await tab2.reply())["text"] == "You said: two tabs"


async def test_an_empty_answer_leaves_the_message_processed(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    """A paused conversation (handed to a person) answers nothing; the message is still handled."""
    visitor = await connect(gateway)
    await visitor.say("silence")
    sender = wait_until(lambda: rasa.webhook_calls and rasa.webhook_calls[0]["sender"], what="Rasa")
    stored = wait_until(
        lambda: [m for m in gateway.messages(sender) if m.delivery_status == InboundStatus.PROCESSED],
        what="processing",
    )
    assert [m.text for m in stored] == ["silence"]
    assert [m.direction for m in gateway.messages(sender)] == [Direction.INBOUND]


def test_demo_shop_embeds_the_widget_with_one_script_tag_under_a_strict_policy(
    gateway: RunningGateway,
) -> None:
    page = httpx.get(gateway.url + "/", timeout=10)
    assert page.status_code == 200
    assert '<script src="/webchat/widget.js" defer></script>' in page.text
    policy = page.headers["content-security-policy"]
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page.text and "unsafe-inline" not in policy
    assert httpx.get(gateway.url + "/demo", timeout=10).status_code == 200
    widget = httpx.get(gateway.url + "/webchat/widget.js", timeout=10)
    assert widget.status_code == 200 and "javascript" in widget.headers["content-type"]
    assert "innerHTML" not in widget.text  # message content is only ever set as text
    assert httpx.get(gateway.url + "/webchat/widget.css", timeout=10).status_code == 200


def test_other_sites_may_embed_the_widget_and_read_their_visitors_history(gateway: RunningGateway) -> None:
    preflight = httpx.options(
        gateway.url + "/webchat/history",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "https://shop.example")


def test_health_reports_ok_without_rasa(gateway: RunningGateway, rasa: StandInRasa) -> None:
    rasa.status = 500
    assert httpx.get(gateway.url + "/health", timeout=10).json() == {"status": "ok", "telegram": "off"}
