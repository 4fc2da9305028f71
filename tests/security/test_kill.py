"""Issue 15, "Done means": the kill test, on the real stack under the real supervisor.

`python -m bot.ops.services` (what `make run` starts) runs every service on free ports with a CRM
of its own, while a few web visitors chat over the widget's websocket. kill -9 of the action
server, then Rasa, then the gateway, then the scheduler: each comes back by itself and /health
showed each outage; every message a visitor sent is in the CRM once, reached Rasa once (its tracker
holds one user event per message, found by the CRM id the gateway attaches), was answered, and
every answer reached its visitor. Then kill -9 of the supervisor leaves no service process and
every port free.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import Author, Conversation, Direction, InboundStatus, Message
from bot.gateway.rasa_client import MESSAGE_ID_KEY
from bot.ops.model import ensure_model
from bot.settings import PROJECT_ROOT, Settings
from tests.security.test_supervisor import alive, descendants, port_free

pytestmark = pytest.mark.e2e

APP_PY = PROJECT_ROOT / ".venvs" / "app" / "bin" / "python"
VISITORS = 4
PACE_SECONDS = 4.0  # per visitor: 15 messages a minute, under the gateway's per-sender limit
TEXTS = ("hello", "are you a bot?")  # a custom action (action_greet) and a plain response
# What each service's main process runs, to find it among the supervisor's children.
COMMAND_OF = {
    "actions": "bot.ops.action_server",
    "rasa": "rasa_run.py",
    "gateway": "bot.gateway",
    "scheduler": "scheduler.service",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, pause: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(pause)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class SupervisedStack:
    settings: Settings
    process: subprocess.Popen[bytes]
    output: Path

    def said(self) -> str:
        return self.output.read_text(errors="replace")

    def main_pid(self, service: str) -> int:
        """The pid of `service`'s main process (a child of the supervisor)."""
        for pid in descendants(self.process.pid):
            try:
                parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if parent == self.process.pid and COMMAND_OF[service] in command:
                return pid
        raise AssertionError(f"no running {service} under the supervisor:\n{self.said()[-3000:]}")

    def health(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"{self.settings.gateway_url}/health", timeout=2)
        except httpx.HTTPError:
            return None
        return dict(response.json()) if response.status_code == 200 else None

    def service(self, name: str) -> dict[str, Any]:
        """The service as the gateway's /health reports it ({} while the gateway is down)."""
        services: dict[str, dict[str, Any]] = (self.health() or {}).get("services", {})
        return services.get(name, {})

    def ports(self) -> list[int]:
        s = self.settings
        return [s.action_server_port, s.rasa_port, s.gateway_port, s.scheduler_port]


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[SupervisedStack]:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    settings = Settings.from_env(
        {
            "CARELOOP_ENV": "test",
            "CARELOOP_VAR_DIR": str(var_dir),
            "RASA_URL": f"http://127.0.0.1:{free_port()}",
            "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}",
            "GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
            "SCHEDULER_URL": f"http://127.0.0.1:{free_port()}",
            "RASA_TOKEN": secrets.token_urlsafe(24),
            "SECRET_KEY": secrets.token_urlsafe(24),
            "INTERNAL_API_TOKEN": secrets.token_urlsafe(24),
            "GATEWAY_RETRY_SECONDS": "2",  # stored messages are retried soon after Rasa is back
            "SUPERVISOR_BACKOFF_SECONDS": "1",
        }
    )
    upgrade(settings.database_url)
    ensure_model(settings.models_dir)
    output = tmp_path / "supervisor.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [str(APP_PY), "-m", "bot.ops.services"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **settings.to_env(), "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = SupervisedStack(settings, process, output)
    try:
        wait_for(lambda: "CareLoop is running" in stack.said() or process.poll() is not None, 300, "start")
        assert process.poll() is None, stack.said()
        yield stack
    finally:
        tree = descendants(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(60)
        for pid in tree:  # whatever happened, leave nothing running
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Visitor:
    """A web chat customer who keeps talking through outages: resends a message (same client id,
    which the gateway stores once) until it is acknowledged, reconnecting as needed."""

    gateway_url: str
    name: str
    token: str = ""
    acked: dict[str, int] = field(default_factory=dict)  # client id -> CRM message id
    seen: dict[int, dict[str, Any]] = field(default_factory=dict)  # bot message id -> message
    refusals: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    _socket: Any = None
    _answers: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    async def chat(self, stop: asyncio.Event) -> None:
        """Send a message every PACE_SECONDS until `stop` (never leaving one half-sent)."""
        count = 0
        while not stop.is_set():
            count += 1
            await self.say(TEXTS[count % len(TEXTS)], f"{self.name}-{count}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), PACE_SECONDS)

    async def say(self, text: str, client_id: str) -> None:
        while True:
            try:
                if self._socket is None:
                    await self._connect()
                frame = {"type": "message", "text": text, "client_id": client_id}
                answer = self._answers[client_id] = asyncio.get_running_loop().create_future()
                await self._socket.send(json.dumps(frame))
                result = await asyncio.wait_for(answer, 15)
            except (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, httpx.HTTPError):
                await self._drop()
                await asyncio.sleep(1)
                continue
            if result["type"] == "ack":
                self.acked[client_id] = int(result["id"])
            else:
                self.refusals.append(result)
            return

    async def _connect(self) -> None:
        if not self.token:
            async with httpx.AsyncClient() as client:
                response = await client.post(f"{self.gateway_url}/webchat/session", timeout=5)
                response.raise_for_status()
                self.token = response.json()["token"]
        url = self.gateway_url.replace("http", "ws", 1) + "/webchat/ws"
        self._socket = await websockets.connect(url, max_size=2**20, open_timeout=5)
        self.reconnects += 1
        await self._socket.send(json.dumps({"type": "hello", "token": self.token}))
        asyncio.get_running_loop().create_task(self._read(self._socket))

    async def _read(self, socket: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in socket:
                frame = json.loads(raw)
                if frame["type"] == "message":
                    self.seen[int(frame["message"]["id"])] = frame["message"]
                    await socket.send(json.dumps({"type": "received", "ids": [frame["message"]["id"]]}))
                elif frame["type"] in ("ack", "notice") and frame.get("client_id") in self._answers:
                    answer = self._answers.pop(frame["client_id"])
                    if not answer.done():
                        answer.set_result(frame)

    async def _drop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):  # it is already broken; closing is a courtesy
                await asyncio.wait_for(self._socket.close(), 2)
        self._socket = None

    async def linger(self, seconds: float) -> None:
        """Stay connected a while (reconnecting if need be) so that late answers arrive."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._socket is None or self._socket.closed:
                with contextlib.suppress(OSError, asyncio.TimeoutError, websockets.WebSocketException):
                    await self._connect()
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        await self._drop()


def kill_and_watch(stack: SupervisedStack, name: str) -> dict[str, Any]:
    """kill -9 the service's main process; return what /health said of it until it was back up."""
    victim = stack.main_pid(name)
    os.kill(victim, signal.SIGKILL)
    states: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        entry = stack.service(name)  # {} while the gateway itself is down
        states.append(entry.get("state", "no answer"))
        if entry.get("state") == "up" and entry["restarts"] >= 1:
            assert stack.main_pid(name) != victim
            return {"states": states, **entry}
        time.sleep(0.2)
    raise AssertionError(f"{name} did not come back; /health saw {states}:\n{stack.said()[-3000:]}")


def test_kill_9_of_each_service_under_load_then_of_the_supervisor(supervised: SupervisedStack) -> None:
    stack = supervised
    url = stack.settings.gateway_url
    visitors = [Visitor(url, f"v{n}") for n in range(VISITORS)]
    seen_by_health: dict[str, dict[str, Any]] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        chats = [asyncio.create_task(v.chat(stop)) for v in visitors]
        await asyncio.sleep(8)
        for name in ("actions", "rasa", "gateway", "scheduler"):
            seen_by_health[name] = await loop.run_in_executor(None, kill_and_watch, stack, name)
            await asyncio.sleep(6)  # the load goes on with the service back
        stop.set()
        await asyncio.gather(*chats)
        await asyncio.gather(*(v.linger(5) for v in visitors))
        await loop.run_in_executor(None, wait_for, lambda: all_answered(stack, visitors), 180, "answers")
        await asyncio.gather(*(v.linger(3) for v in visitors))
        for visitor in visitors:
            await visitor.close()

    asyncio.run(scenario())

    # /health showed every outage: the service down or starting, then back up after a restart.
    for name in ("actions", "rasa", "scheduler"):
        assert {"restarting", "starting"} & set(seen_by_health[name]["states"]), (name, seen_by_health[name])
    assert "no answer" in seen_by_health["gateway"]["states"]  # /health itself was down, then told
    for name, entry in seen_by_health.items():
        assert entry["restarts"] == 1 and entry["last_exit"]["code"] == -signal.SIGKILL, (name, entry)

    check_every_message_answered_exactly_once(stack, visitors)
    assert f"{stack.settings.rasa_token}" not in stack.said()  # item 7: no token in what it printed

    # kill -9 of the supervisor: nothing it started survives it.
    tree = descendants(stack.process.pid)
    assert len(tree) >= 5  # four services and the reaper
    stack.process.kill()
    stack.process.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in tree), 30, "every service to end")
    wait_for(lambda: all(port_free(port) for port in stack.ports()), 10, "every port free")


def crm_messages(stack: SupervisedStack, visitor: Visitor) -> list[Message]:
    visitor_id = visitor_of_token(stack, visitor.token)
    with Session(make_engine(stack.settings.database_url)) as crm:
        conversation = crm.scalar(select(Conversation).where(Conversation.sender_id == f"web:{visitor_id}"))
        if conversation is None:
            return []
        return list(crm.scalars(select(Message).where(Message.conversation_id == conversation.id)))


def visitor_of_token(stack: SupervisedStack, token: str) -> str:
    from bot.gateway.tokens import visitor_of

    visitor_id = visitor_of(stack.settings.secret_key, token)
    assert visitor_id is not None
    return str(visitor_id)


def all_answered(stack: SupervisedStack, visitors: list[Visitor]) -> bool:
    """Every stored customer message processed, and every bot answer seen by its visitor."""
    for visitor in visitors:
        messages = crm_messages(stack, visitor)
        inbound = [m for m in messages if m.direction == Direction.INBOUND]
        if any(m.delivery_status != InboundStatus.PROCESSED for m in inbound):
            return False
        if any(m.id not in visitor.seen for m in messages if m.author == Author.BOT):
            return False
    return True


def rasa_user_events(stack: SupervisedStack, sender_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.settings.rasa_url}/conversations/{sender_id}/tracker",
        params={"token": stack.settings.rasa_token, "include_events": "ALL"},
        timeout=30,
    )
    response.raise_for_status()
    return list(response.json()["events"])


def check_every_message_answered_exactly_once(stack: SupervisedStack, visitors: list[Visitor]) -> None:
    total = 0
    for visitor in visitors:
        assert visitor.refusals == [], visitor.refusals  # the gateway never turned a message away
        messages = crm_messages(stack, visitor)
        inbound = [m for m in messages if m.direction == Direction.INBOUND]
        # Every message the visitor sent is in the CRM, once.
        assert sorted(m.external_id or "" for m in inbound) == sorted(visitor.acked)
        assert {m.id for m in inbound} == set(visitor.acked.values())
        # Rasa handled each exactly once, and answered it.
        events = rasa_user_events(stack, f"web:{visitor_of_token(stack, visitor.token)}")
        handled = Counter(
            (e.get("metadata") or {}).get(MESSAGE_ID_KEY) for e in events if e["event"] == "user"
        )
        assert {m.id: handled[m.id] for m in inbound} == {m.id: 1 for m in inbound}
        answers: dict[int, int] = {}
        current: int | None = None
        for event in events:
            if event["event"] == "user":
                current = (event.get("metadata") or {}).get(MESSAGE_ID_KEY)
                answers[current or 0] = 0
            elif event["event"] == "bot" and current is not None:
                answers[current] += 1
        assert all(answers[m.id] >= 1 for m in inbound), answers
        # Every answer Rasa gave is in the transcript once, and reached the visitor.
        bot = [m for m in messages if m.author == Author.BOT]
        assert len(bot) == sum(answers.values())
        assert all(m.id in visitor.seen for m in bot)
        total += len(inbound)
    assert total >= VISITORS * 10  # the load really ran through the outages
