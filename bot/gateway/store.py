"""The gateway's one way into the CRM: short transactions on worker threads, never on the event loop.

SQLAlchemy sessions are synchronous, and so is Argon2 password hashing (it runs inside console
transactions); the event loop serves every customer's socket, so all of it runs here. The
customers' lane is a single dedicated thread, which keeps writes in the order they were asked for
(two messages of one chat are stored in the order they arrived). The console has its own small
pool, so that a slow report or a few password hashes never hold up a customer's message, and
the pool's size bounds how many hashes (64 MiB each) run at once. Worker threads are named
`crm…`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bot.crm.db import session_scope

T = TypeVar("T")


class Crm:
    def __init__(self, database_url: str, *, workers: int = 1, name: str = "crm") -> None:
        self.database_url = database_url
        self.workers, self.name = workers, name
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=self.name)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, work: Callable[..., T]) -> T:
        """Run `work(session=…)` in one transaction on the CRM thread; return plain data from it."""
        if self._executor is None:
            raise RuntimeError("Crm.start() was not called")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, work)

    def _transaction(self, work: Callable[..., T]) -> T:
        with session_scope(self.database_url) as session:
            return work(session=session)
