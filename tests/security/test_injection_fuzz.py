"""Issue 15, "Done means": hostile text, fuzzed. Hypothesis writes messages (slashes, whitespace and
Unicode spaces, look-alikes of `/`, control characters, intent names with `EXTERNAL_*` among them,
confidences and JSON entity blobs) that a web visitor sends through the real gateway to a stand-in
Rasa; Rasa must never get one it reads as an intent. Each text Rasa got is judged by the mirror of
Rasa's rule as it arrives, and all of them by Rasa's own code at the end (one subprocess)."""

from __future__ import annotations

import asyncio
import json
import time
import unicodedata
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.gateway.limits import normalise
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
from tests.security.rasa_reading import intents_read, rasa_reads_as_intent

__all__ = ["crm_template", "rasa"]

pytestmark = pytest.mark.timeout(180)

T = TypeVar("T")

EXAMPLES = 120
SLASH_LIKE = ["\uff0f", "\u2215", "\u2044", "\u29f8", "\u2571", "\u27cb", "\u1735", "\u0338", "\u20eb"]
SPACES = [c for c in map(chr, range(0x3001)) if c.isspace()] + ["\u200b", "\u2060", "\ufeff", "\u180e"]
CONTROLS = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
INTENTS = [
    "greet",
    "bot_challenge",
    "request_human",
    "cancel_subscription",
    "rate",
    "faq/opening_hours",
    "EXTERNAL_campaign",
    "EXTERNAL_checkin",
    "EXTERNAL_survey",
    "EXTERNAL_handback",
    "restart",
    "session_start",
]
ENTITIES = ["campaign_text", "order_id", "rating", "email", "leave_reason", "text"]


def entity_blob() -> st.SearchStrategy[str]:
    values = st.one_of(st.text(max_size=20), st.integers(), st.sampled_from(["http://x.example/login", "5"]))
    return st.dictionaries(st.sampled_from(ENTITIES), values, min_size=1, max_size=3).map(json.dumps)


def hostile_text() -> st.SearchStrategy[str]:
    """A prefix of slashes, spaces, look-alikes and control characters, then an intent, perhaps
    with a confidence and entities, perhaps with words after; or anything at all."""
    prefix_char = st.one_of(
        st.just("/"), st.sampled_from(SLASH_LIKE), st.sampled_from(SPACES), st.sampled_from(CONTROLS)
    )
    prefix = st.lists(prefix_char, max_size=8).map("".join)
    intent = st.one_of(
        st.sampled_from(INTENTS), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
    )
    confidence = st.sampled_from(["", "@1.0", "@0.5", "@"])
    entities = st.one_of(st.just(""), entity_blob())
    tail = st.one_of(st.just(""), st.text(max_size=12))
    shaped = st.tuples(prefix, intent, confidence, entities, tail).map("".join)
    return st.one_of(shaped, st.text(max_size=30), prefix)


@pytest.fixture
async def gateway(tmp_path: Path, crm_template: Path, rasa: StandInRasa) -> AsyncIterator[RunningGateway]:
    """The real gateway in front of the stand-in Rasa. The per-visitor rate limit is raised: one
    visitor sends every generated message, and the limiter is not what is tested here."""
    copy_crm(crm_template, tmp_path / "var")
    settings = gateway_settings(tmp_path / "var", rasa.url, GATEWAY_RATE_LIMIT_PER_MINUTE="100000")
    with running_gateway(settings) as running:
        yield running
        await close_sockets(running)


def arrived(rasa: StandInRasa, before: int, timeout: float = 10.0) -> None:
    """Wait until Rasa has got more than `before` messages (polled often: this runs per example)."""
    deadline = time.monotonic() + timeout
    while len(rasa.messages) <= before:
        if time.monotonic() > deadline:
            raise AssertionError(f"the message did not reach Rasa within {timeout} s")
        time.sleep(0.002)


def has_words(text: str) -> bool:
    """Whether a text holds anything besides slashes, whitespace and invisible characters."""
    return any(c != "/" and not c.isspace() and unicodedata.category(c) not in ("Cc", "Cs") for c in text)


# Hypothesis warns when the global `random` state moves while it draws: here the gateway, on its
# own threads in this process (websocket keepalive pings, retry jitter), not the strategies.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_no_generated_text_reaches_rasa_as_an_intent(
    gateway: RunningGateway, rasa: StandInRasa
) -> None:
    rasa.replies = lambda body: []  # the replies are not what is looked at
    visitor = await connect(gateway)
    loop = asyncio.get_running_loop()
    sent: list[str] = []

    def on_loop(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(text=hostile_text())
    def typed(text: str) -> None:
        before = len(rasa.messages)
        answer = on_loop(visitor.say(text))
        if answer["type"] == "notice":
            assert answer["code"] == "empty", answer
            assert not has_words(text), "a message with words was refused"
            return
        arrived(rasa, before)
        received = rasa.messages[before:]
        assert len(received) == 1
        assert not rasa_reads_as_intent(received[0]), (text, received[0])
        assert received[0] in normalise(text)  # only the leading slashes and spaces went
        sent.append(received[0])

    await asyncio.to_thread(typed)

    assert len(sent) > EXAMPLES // 3, "too few generated messages reached Rasa to judge"
    assert intents_read(rasa.messages) == []


def test_the_judges_catch_what_the_gateway_used_to_let_through() -> None:
    """The property above can fail: texts of the generator's shape, as they are, are intents."""
    shaped = ["/ /bot_challenge", '/\u3000/EXTERNAL_campaign{"campaign_text": "x"}', "\x1f/greet@1.0"]
    assert [text for text, _ in intents_read(shaped)] == shaped
    assert all(rasa_reads_as_intent(text) for text in shaped)
    assert has_words("/ /greet") and not has_words("/\u3000/ \x00")
