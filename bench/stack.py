"""The stack under test: action server, Rasa and gateway on free ports, a Telegram stand-in as the
Telegram "channel", a bench-only CRM, and the measurements only a running stack gives (cold start,
peak memory of each service).

The scheduler service is not started: its sweep would queue real check-ins for the whole bench
population and compete with what is measured. The bench drives the scheduler's own code (policy
gate, sender) itself instead (bench/fanout.py).
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.action_timer import ActionTimer
from bot.ops.services import careloop_services
from bot.ops.supervisor import Service, Supervisor
from bot.settings import Settings
from standins.servers import ServerThread, free_port
from standins.telegram_botapi import TOKEN as TELEGRAM_TOKEN
from standins.telegram_botapi import StandInBotApi

SERVICES = ("actions", "rasa", "gateway")


def bench_settings(var_dir: Path, telegram_url: str) -> Settings:
    """Settings for a stack of its own: free ports, fresh secrets, the bench CRM in `var_dir`."""
    return Settings.from_env(
        {
            "CARELOOP_ENV": "test",
            "CARELOOP_VAR_DIR": str(var_dir),
            "RASA_URL": f"http://127.0.0.1:{free_port()}",
            "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}",
            "GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
            "SCHEDULER_URL": f"http://127.0.0.1:{free_port()}",
            "RASA_TOKEN": secrets.token_urlsafe(24),
            "SECRET_KEY": secrets.token_urlsafe(24),
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "TELEGRAM_API_BASE_URL": telegram_url,
        }
    )


@dataclass
class Stack:
    settings: Settings
    supervisor: Supervisor
    telegram: StandInBotApi
    actions: ActionTimer
    started_at: float  # time.monotonic() when the services were started
    healthy_after: float  # seconds from starting the services until all answered their health check

    def pids(self) -> dict[str, int]:
        return {r.service.name: r.process.pid for r in self.supervisor.running}

    def peak_memory_mb(self) -> dict[str, float]:
        """The peak resident memory (VmHWM) of each service, its child processes included."""
        return {name: round(peak_rss_kb(pid) / 1024, 1) for name, pid in self.pids().items()}


@contextmanager
def telegram_standin() -> Iterator[StandInBotApi]:
    """The Telegram Bot API stand-in, served on a free port (the Telegram "channel")."""
    telegram = StandInBotApi()
    with ServerThread(telegram.app()) as server:
        telegram.url = server.url
        yield telegram


@contextmanager
def running_stack(settings: Settings, model: Path, telegram: StandInBotApi) -> Iterator[Stack]:
    """Start the services (their CRM must be ready), with Rasa calling the action server through
    the action timer; wait until healthy, stop them after."""
    timer = ActionTimer(settings.action_server_url)
    with ServerThread(timer.app()) as timer_server:
        timer.url = timer_server.url
        services = [s for s in careloop_services(settings, model) if s.name in SERVICES]
        for service in services:
            if service.name == "rasa":
                service.env = {**service.env, "ACTION_ENDPOINT_URL": f"{timer.url}/webhook"}
        with _supervised(settings, services, telegram, timer) as stack:
            yield stack


@contextmanager
def _supervised(
    settings: Settings, services: list[Service], telegram: StandInBotApi, timer: ActionTimer
) -> Iterator[Stack]:
    supervisor = Supervisor(services, settings.var_dir / "logs", io.StringIO())
    started = time.monotonic()
    supervisor.start()  # raises ServiceFailed with the failing service's last log lines
    try:
        yield Stack(settings, supervisor, telegram, timer, started, time.monotonic() - started)
    finally:
        supervisor.stop()


def peak_rss_kb(pid: int) -> int:
    """VmHWM of `pid` plus that of its descendants (0 for a process that is gone)."""
    return sum(_status_kb(p, "VmHWM") for p in [pid, *descendants(pid)])


def descendants(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return [p for child in children for p in (child, *descendants(child))]


def _status_kb(pid: int, field: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0
