"""The breaker: after Rasa failed, new messages do not wait for it again until a cooldown passed.

One breaker per gateway, shared by everything that talks to Rasa for customers (the inbox's
answers, Rasa's copy of handed-off conversations): a failure seen by one spares the others."""

from __future__ import annotations

import time


class Breaker:
    """After Rasa failed, do not make every new message wait for it again until `cooldown` passed.
    Slowness does not trip it (see bot/gateway/inbox.py): only being down does."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cooldown

    def reset(self) -> None:
        self._open_until = 0.0
