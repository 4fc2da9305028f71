"""Input hygiene at the door: normalised text, a size limit, and a per-sender rate limit."""

from __future__ import annotations

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


def for_rasa(text: str) -> str:
    """Typed text for Rasa: a leading `/` would make Rasa read it as an intent, so it is dropped."""
    stripped = text.lstrip()
    return stripped.lstrip("/").lstrip() if stripped.startswith("/") else text


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
