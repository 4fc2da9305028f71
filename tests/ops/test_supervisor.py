"""The supervisor starts real processes, waits for health, reports failures and stops everything."""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.ops.supervisor import RestartPolicy, Service, ServiceFailed, Supervisor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_service(name: str, port: int, *, delay: float = 0.0) -> Service:
    code = (
        f"import time, http.server; time.sleep({delay}); "
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    return Service(
        name=name,
        argv=[sys.executable, "-c", code],
        url=f"http://127.0.0.1:{port}",
        health_url=f"http://127.0.0.1:{port}/",
        description=name,
        startup_timeout=20,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_starts_waits_for_health_and_stops_all(tmp_path: Path) -> None:
    out = io.StringIO()
    supervisor = Supervisor(
        [http_service("one", free_port()), http_service("two", free_port(), delay=1)], tmp_path / "logs", out
    )
    supervisor.start()
    pids = [r.process.pid for r in supervisor.running]
    assert all(r.healthy() for r in supervisor.running)
    supervisor.stop()
    time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)
    assert "starting one" in out.getvalue() and "stopping two" in out.getvalue()


def test_a_service_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    broken = Service(
        name="broken",
        argv=[sys.executable, "-c", "print('ERROR cannot open the model'); raise SystemExit(3)"],
        url="http://127.0.0.1:9",
        health_url=f"http://127.0.0.1:{free_port()}/",
        description="broken",
    )
    healthy = http_service("healthy", free_port())
    supervisor = Supervisor([healthy, broken], tmp_path / "logs", io.StringIO())
    with pytest.raises(
        ServiceFailed, match=r"broken exited with code 3 while starting(.|\n)*cannot open the model"
    ):
        supervisor.start()
    assert supervisor.running == []  # the healthy one was stopped too
    assert "cannot open the model" in (tmp_path / "logs" / "broken.log").read_text()


def test_watch_returns_when_asked_to_stop_and_when_a_service_dies(tmp_path: Path) -> None:
    supervisor = Supervisor([http_service("one", free_port())], tmp_path / "logs", io.StringIO())
    supervisor.start()
    threading.Timer(0.5, supervisor.request_stop).start()
    assert supervisor.watch() == 0
    supervisor._stop.clear()
    supervisor.running[0].process.kill()
    assert supervisor.watch() == 1
    supervisor.stop()


def test_the_backoff_doubles_with_each_recent_failure_up_to_its_ceiling() -> None:
    policy = RestartPolicy(limit=5, window=120, backoff=1.0, backoff_max=5.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
