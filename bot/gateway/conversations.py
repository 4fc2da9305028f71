"""One conversation is handled in order: the gateway's one guarantee, and the only way to get it.

Work that takes a turn in a conversation (answering its waiting messages, routing them to an agent,
an agent's action on the chat, a proactive send, a retried delivery, catching Rasa's tracker up)
does it holding the conversation: `async with conversations.hold(conversation_id)`. Holders of one
conversation take turns in the order they asked; different conversations never wait on each other.

No deadlock, by two rules:
- A hold is not re-entrant. Work that holds a conversation already calls the inner step it needs
  (e.g. `BotAnswers.answer_waiting`, not `Inbox.process`); taking the same hold again in the same task
  raises `AlreadyHeld` at once instead of waiting for itself forever.
- A customer's hold (`hold_customer`: a proactive send's replay check and cap reservation in one
  step) is taken before any of their conversations and never while holding one.

`LocalConversations` holds within one gateway process (asyncio locks). Several gateways need a
shared implementation (e.g. PostgreSQL advisory locks or Redis) behind the same `Conversations`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class AlreadyHeld(RuntimeError):
    """The task asked for a hold it has already: waiting would never end."""


class Conversations(Protocol):
    """Who may take a turn in a conversation (or act for a customer) right now."""

    def hold(self, conversation_id: int) -> AbstractAsyncContextManager[None]:
        """Wait for the conversation, then have it to ourselves until the block ends."""
        ...

    def busy(self, conversation_id: int) -> bool:
        """Someone holds the conversation or waits for it."""
        ...

    def hold_customer(self, customer_id: int) -> AbstractAsyncContextManager[None]:
        """Wait for the customer, then act for them alone (taken before their conversations)."""
        ...


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()
        self._owners: dict[str, asyncio.Task[object] | None] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owners.get(key) is task:
            raise AlreadyHeld(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                self._owners[key] = task
                try:
                    yield
                finally:
                    del self._owners[key]
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def busy(self, key: str) -> bool:
        """Someone holds or waits for the key's lock."""
        return self._users[key] > 0

    def __len__(self) -> int:
        """How many keys are held or waited for (the rest are forgotten)."""
        return len(self._locks)


class LocalConversations:
    """`Conversations` for one gateway process."""

    def __init__(self) -> None:
        self._locks = KeyedLocks()

    def hold(self, conversation_id: int) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(f"conversation:{conversation_id}")

    def busy(self, conversation_id: int) -> bool:
        return self._locks.busy(f"conversation:{conversation_id}")

    def hold_customer(self, customer_id: int) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(f"customer:{customer_id}")

    def __len__(self) -> int:
        return len(self._locks)
