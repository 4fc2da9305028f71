"""Bad input at the door: empty, huge, invalid, hostile or odd text gets a clear answer, and only
clean text is stored and forwarded; a visitor who floods is slowed down politely."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.gateway import wording
from bot.gateway.limits import RateLimiter, Verdict, for_rasa, normalise, screen
from tests.gateway.harness import (
    RunningGateway,
    close_sockets,
    connect,
    copy_crm,
    gateway_settings,
    running_gateway,
    wait_until,
)
from tests.gateway.standin_rasa import StandInRasa

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  hello \t world  ", "hello   world"),
        ("line one\r\nline two\rthree\u2028four", "line one\nline two\nthree\nfour"),
        ("bell\x07 null\x00 escape\x1b[31m", "bell null escape[31m"),
        ("cafe\u0301", "café"),  # NFC: one code point, as the same word typed elsewhere
        ("lone \ud800 surrogate", "lone  surrogate"),
        ("emoji 👩‍👩‍👧 family 🇩🇪", "emoji 👩‍👩‍👧 family 🇩🇪"),  # zero-width joiners kept
        ("שלום עולם \u200f!", "שלום עולם \u200f!"),  # right-to-left text and marks kept
        ("مرحبا بك", "مرحبا بك"),
    ],
)
def test_text_is_normalised_but_meaning_is_kept(raw: str, clean: str) -> None:
    assert normalise(raw) == clean


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("\x00\x01", "empty"),
        ("x" * 4001, "too_long"),
        ("y" * 100_000, "too_long"),
    ],
)
def test_empty_and_oversized_messages_are_refused(raw: str, code: str) -> None:
    text, refusal = screen(raw, 4000)
    assert text == "" and refusal is not None and refusal.code == code
    assert screen("x" * 4000, 4000) == ("x" * 4000, None)


def test_too_long_answer_names_the_limit() -> None:
    _, refusal = screen("x" * 4001, 4000)
    assert refusal is not None and "4,000 characters" in refusal.text


def test_typed_text_never_reaches_rasa_as_an_intent() -> None:
    assert for_rasa("/greet") == "greet"
    assert for_rasa("  //restart") == "restart"
    assert for_rasa("a/b and /c") == "a/b and /c"


def test_rate_limit_tells_once_per_window_then_stays_quiet() -> None:
    now = [0.0]
    limiter = RateLimiter(3, window=60, clock=lambda: now[0])
    verdicts = [limiter.check("web:a") for _ in range(6)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.REFUSE_AND_TELL] + [Verdict.REFUSE_QUIETLY] * 2
    assert limiter.check("web:b") == Verdict.ALLOW  # per sender
    now[0] = 61.0
    assert limiter.check("web:a") == Verdict.ALLOW
    limiter.forget_idle()
    now[0] = 200.0
    limiter.forget_idle()
    assert limiter._events == {}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "message", "text": ""}', "empty"),
        ('{"type": "message", "text": "   \\n  "}', "empty"),
        ('{"type": "message", "text": "' + "x" * 4001 + '"}', "too_long"),
        ('{"type": "message", "text": "' + "x" * 100_000 + '"}', "too_long"),
        ("{this is not json", "invalid"),
        ('["a", "list"]', "invalid"),
        ('{"type": "message", "text": 42}', "invalid"),
        ('{"type": "shout", "text": "hi"}', "invalid"),
        ('{"type": "button", "message_id": "1", "index": 0}', "invalid"),
    ],
)
async def test_bad_frames_get_a_clear_answer_and_nothing_is_stored_or_forwarded(
    gateway: RunningGateway, rasa: StandInRasa, frame: str, code: str
) -> None:
    visitor = await connect(gateway)
    await visitor.send(frame)
    notice = await visitor.next(lambda f: f["type"] == "notice")
    assert notice["code"] == code and notice["text"]
    await visitor.say("still here")  # the connection survives
    await visitor.reply()
    assert rasa.messages == ["still here"]
    sender = rasa.webhook_calls[0]["sender"]
    assert [m.text for m in gateway.messages(sender)][0] == "still here"


async def test_a_binary_frame_is_refused(gateway: RunningGateway, rasa: StandInRasa) -> None:
    visitor = await connect(gateway)
    await visitor.socket.send(b"\x00\x01binary")
    assert (await visitor.next(lambda f: f["type"] == "notice"))["code"] == "invalid"


async def test_hostile_and_unusual_text_is_stored_and_returned_verbatim_as_data(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    hostile = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"quotes\""
    unusual = "שלום 👋🏽 مرحبا\ncafe\u0301\x07"
    visitor = await connect(gateway)
    await visitor.say(hostile)
    assert (await visitor.reply())["text"] == f"You said: {hostile}"
    await visitor.say(unusual)
    await visitor.reply()

    assert rasa.messages == [hostile, "שלום 👋🏽 مرحبا\ncafé"]
    history = gateway.history(visitor.token).json()["messages"]
    assert [m["text"] for m in history if m["author"] == "customer"] == [hostile, "שלום 👋🏽 مرحبا\ncafé"]


async def test_a_flooding_visitor_is_slowed_down_politely(
    tmp_path: Path, crm_template: Path, rasa: StandInRasa
) -> None:
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(tmp_path / "var", rasa.url, GATEWAY_RATE_LIMIT_PER_MINUTE="5")
    with running_gateway(settings) as gateway:
        visitor = await connect(gateway)
        answers = [await visitor.say(f"message {n}") for n in range(7)]
        other = await connect(gateway)
        other_answer = await other.say("I am someone else")
        wait_until(lambda: len(rasa.messages) == 6, what="Rasa to get the accepted messages")
        await close_sockets(gateway)

    assert [a["type"] for a in answers] == ["ack"] * 5 + ["notice"] * 2
    assert answers[5]["text"] == wording.RATE_LIMITED and answers[5]["quiet"] is False
    assert answers[6]["quiet"] is True  # told once, not for every extra message
    assert other_answer["type"] == "ack"
    assert [m for m in rasa.messages if m.startswith("message")] == [f"message {n}" for n in range(5)]
