"""One conversation in order: holds take turns in arrival order, end on errors, never deadlock."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.gateway.app import build_gateway
from bot.gateway.conversations import AlreadyHeld, LocalConversations
from tests.gateway.harness import gateway_settings

PATIENCE = 2.0  # seconds: far longer than any of these steps takes, short enough to show a hang


async def _take_turn(
    conversations: LocalConversations, conversation_id: int, log: list[str], name: str
) -> None:
    async with conversations.hold(conversation_id):
        log.append(f"{name} in")
        await asyncio.sleep(0.01)  # another task would run here if it could get in
        log.append(f"{name} out")


async def test_holders_of_one_conversation_take_turns_in_the_order_they_asked() -> None:
    conversations, log = LocalConversations(), []
    tasks = []
    for name in ("first", "second", "third"):
        tasks.append(asyncio.create_task(_take_turn(conversations, 7, log, name)))
        await asyncio.sleep(0)  # each asks before the next one is created
    await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE)
    assert log == ["first in", "first out", "second in", "second out", "third in", "third out"]
    assert len(conversations) == 0  # nothing kept once nobody holds or waits


async def test_different_conversations_do_not_wait_on_each_other() -> None:
    conversations, inside = LocalConversations(), {1: asyncio.Event(), 2: asyncio.Event()}

    async def hold_until_both_in(conversation_id: int) -> None:
        async with conversations.hold(conversation_id):
            inside[conversation_id].set()
            await asyncio.gather(*(event.wait() for event in inside.values()))

    await asyncio.wait_for(asyncio.gather(hold_until_both_in(1), hold_until_both_in(2)), PATIENCE)


async def test_busy_while_held_or_waited_for() -> None:
    conversations = LocalConversations()
    assert not conversations.busy(3)
    async with conversations.hold(3):
        assert conversations.busy(3)
        assert not conversations.busy(4)
    assert not conversations.busy(3)


async def test_an_error_inside_a_hold_releases_it() -> None:
    conversations = LocalConversations()
    with pytest.raises(LookupError):
        async with conversations.hold(5):
            raise LookupError("the work failed")
    assert not conversations.busy(5)
    await asyncio.wait_for(_take_turn(conversations, 5, [], "next"), PATIENCE)
    assert len(conversations) == 0


async def test_a_cancelled_waiter_leaves_no_hold_behind() -> None:
    conversations, release = LocalConversations(), asyncio.Event()

    async def hold_until_released() -> None:
        async with conversations.hold(9):
            await release.wait()

    holder = asyncio.create_task(hold_until_released())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(_take_turn(conversations, 9, [], "waiter"))
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await asyncio.wait_for(holder, PATIENCE)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not conversations.busy(9) and len(conversations) == 0
    await asyncio.wait_for(_take_turn(conversations, 9, [], "next"), PATIENCE)


async def test_holding_a_conversation_twice_in_one_task_fails_at_once_instead_of_hanging() -> None:
    conversations = LocalConversations()

    async def hold_twice() -> None:
        async with conversations.hold(11):
            with pytest.raises(AlreadyHeld):
                async with conversations.hold(11):
                    pass
            assert conversations.busy(11)  # the outer hold is still ours

    await asyncio.wait_for(hold_twice(), PATIENCE)
    assert len(conversations) == 0


async def test_work_spawned_by_a_holder_waits_for_it_rather_than_failing() -> None:
    conversations, log = LocalConversations(), []
    async with conversations.hold(12):
        later = asyncio.create_task(_take_turn(conversations, 12, log, "spawned"))
        await asyncio.sleep(0.02)
        assert log == []  # another task: it waits its turn
    await asyncio.wait_for(later, PATIENCE)
    assert log == ["spawned in", "spawned out"]


async def test_customer_then_conversation_never_deadlocks_under_contention() -> None:
    """Proactive sends hold the customer, then one of their conversations; the inbox and the desk
    hold conversations only. Many of both at once all finish."""
    conversations, done = LocalConversations(), []

    async def proactive(customer_id: int, conversation_id: int) -> None:
        async with conversations.hold_customer(customer_id):
            await asyncio.sleep(0)
            async with conversations.hold(conversation_id):
                await asyncio.sleep(0)
                done.append("proactive")

    async def answer(conversation_id: int) -> None:
        async with conversations.hold(conversation_id):
            await asyncio.sleep(0)
            done.append("answer")

    work = [proactive(i % 3, i % 5) for i in range(30)] + [answer(i % 5) for i in range(30)]
    await asyncio.wait_for(asyncio.gather(*work), PATIENCE)
    assert len(done) == 60 and len(conversations) == 0


def test_the_gateway_parts_share_one_coordinator(tmp_path: Path) -> None:
    gateway = build_gateway(gateway_settings(tmp_path, "http://127.0.0.1:9"))
    coordinator = gateway.inbox.conversations
    assert isinstance(coordinator, LocalConversations)
    assert gateway.desk.conversations is coordinator
    assert gateway.desk.tracker.conversations is coordinator
    assert gateway.internal.conversations is coordinator


def test_no_other_module_spells_the_lock_keys(project_root: Path) -> None:
    """The guarantee has one home: nobody else builds a lock key or a lock table of their own."""
    own_locks = re.compile(r"""KeyedLocks\(|["'](conversation|customer):\{""")
    home = project_root / "bot" / "gateway" / "conversations.py"
    spelled = [
        f"{path.relative_to(project_root)}:{number}"
        for path in sorted((project_root / "bot" / "gateway").rglob("*.py"))
        if path != home
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if own_locks.search(line)
    ]
    assert spelled == []
