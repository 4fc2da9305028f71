"""Secrets shown once: a generated password is handed to the admin's browser through a redirect
and a one-time token, so reloading the page neither shows it again nor resubmits the form (which
would generate, and set, another password).

The secrets live in this process's memory only (never in a cookie, the database or a log) for a
few minutes; the console runs in the single gateway process.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

KEEP_SECONDS = 300.0


@dataclass(frozen=True)
class _Kept:
    owner: int  # the console user it was made for: no one else can take it
    value: tuple[str, str]
    until: float


class ShownOnce:
    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def put(self, owner: int, value: tuple[str, str]) -> str:
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._kept = {k: v for k, v in self._kept.items() if v.until > now}  # forget old ones
            self._kept[token] = _Kept(owner, value, now + self.keep_seconds)
        return token

    def take(self, owner: int, token: str) -> tuple[str, str] | None:
        """The value, once, to the user it was made for, within its time; None otherwise."""
        with self._lock:
            kept = self._kept.get(token)
            if kept is None or kept.owner != owner:
                return None
            del self._kept[token]
        return kept.value if kept.until > time.monotonic() else None
