"""Input hygiene at the door: normalised text, a size limit, and a per-sender rate limit."""

from __future__ import annotations

import re
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from bot.gateway import wording

_NEWLINES = str.maketrans({"\r": "\n", "\u2028": "\n", "\u2029": "\n", "\t": " ", "\u0085": "\n"})


@dataclass(frozen=True)
class Refusal:
    """Why a message was not accepted, and what the customer is told."""

    code: str
    text: str


def normalise(text: str) -> str:
    """NFC, one kind of newline, no control characters or lone surrogates, no outer whitespace."""
    text = text.replace("\r\n", "\n").translate(_NEWLINES)
    kept = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cs"))
    return unicodedata.normalize("NFC", kept).strip()


def screen(raw: str, max_chars: int) -> tuple[str, Refusal | None]:
    """The text to accept, or why not: empty, or longer than `max_chars`."""
    if len(raw) > max_chars * 4:  # hopeless: do not spend time normalising it
        return "", Refusal("too_long", wording.TOO_LONG.format(limit=f"{max_chars:,}"))
    text = normalise(raw)
    if not text:
        return "", Refusal("empty", wording.EMPTY)
    if len(text) > max_chars:
        return "", Refusal("too_long", wording.TOO_LONG.format(limit=f"{max_chars:,}"))
    return text, None


# Rasa 3.6 reads a message as an intent, with a confidence and entities, when its text starts with
# this after Python's `str.strip()` (`UserMessage` strips it, then `RegexMessageHandler`, through
# `YAMLStoryReader.unpack_regex_message`): `/greet`, `/EXTERNAL_campaign{"campaign_text": "…"}`.
INTENT_PREFIX = "/"  # rasa.shared.constants.INTENT_MESSAGE_PREFIX
_PAYLOAD_INTENT = re.compile(r"/(?P<intent>[^{@]+)")  # the head of Rasa's own pattern
_FRONT_SLASHES = re.compile(r"^[\s/]+")  # `\s` is str.isspace, what Rasa's strip removes
EXTERNAL_PREFIX = "EXTERNAL_"  # intents only the scheduler and the gateway may trigger


def reads_as_intent(text: str) -> bool:
    """Whether Rasa would read `text` as an intent rather than as words (Rasa's own test)."""
    return text.strip().startswith(INTENT_PREFIX)


def for_rasa(text: str) -> str:
    """Typed text as Rasa may get it: never read as an intent. While Rasa's strip would bring a `/`
    to the front, that slash goes too, so the whole run of slashes and whitespace at the front is
    dropped (`/ /greet` is `greet`); a text of nothing else has no words left and becomes empty."""
    if reads_as_intent(text):
        text = _FRONT_SLASHES.sub("", text, count=1)  # one pass, not one strip per slash
    return text.strip()


def payload_intent(payload: str) -> str | None:
    """The intent a button payload names, as Rasa would read it; None for a payload of words."""
    match = _PAYLOAD_INTENT.match(payload.strip())
    return match["intent"].strip() if match else None


def names_external_intent(payload: str) -> bool:
    """Whether a payload would trigger an `EXTERNAL_*` intent: never a customer's to send."""
    return (payload_intent(payload) or "").startswith(EXTERNAL_PREFIX)


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE_AND_TELL = "refuse_and_tell"  # the first refusal in a window: say why
    REFUSE_QUIETLY = "refuse_quietly"  # later ones: do not answer every excess message


class RateLimiter:
    """At most `limit` events per key within a sliding `window` of seconds."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._events: dict[str, deque[float]] = {}
        self._told: dict[str, float] = {}
        self._checks = 0

    def check(self, key: str) -> Verdict:
        self._checks += 1
        if self._checks % 1000 == 0:
            self.forget_idle()
        now = self.clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) < self.limit:
            events.append(now)
            return Verdict.ALLOW
        if now - self._told.get(key, -self.window) >= self.window:
            self._told[key] = now
            return Verdict.REFUSE_AND_TELL
        return Verdict.REFUSE_QUIETLY

    def forget_idle(self) -> None:
        """Drop keys with no recent events, so memory does not grow with every visitor ever seen."""
        horizon = self.clock() - self.window
        for key in [k for k, events in self._events.items() if not events or events[-1] <= horizon]:
            del self._events[key]
            self._told.pop(key, None)
