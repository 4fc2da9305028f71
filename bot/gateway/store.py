"""The gateway's way into the CRM: short transactions on one worker thread.

SQLAlchemy sessions are synchronous; running them on a single dedicated thread keeps the event
loop free and keeps writes in the order they were asked for (two messages of one chat are
stored in the order they arrived)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bot.crm.db import session_scope

T = TypeVar("T")


class Crm:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm")

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
