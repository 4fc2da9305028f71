"""Issue 15, item 9 (and item 7's token): the supervisor keeps services alive and never leaves one behind.

The supervisor runs as a real process (`LAUNCHER`, the way `make run` runs it) over tiny stand-in
services that serve /health on a free port: a killed service comes back and is reported on the
gateway's /health and the console's home page; repeated crashes make it give up loudly; kill -9 of
the supervisor leaves no service, wrapper's child or worker alive; a closed output pipe (Ctrl-C of
`make run | tee`) stops nothing. No Rasa here: tests/security/test_kill.py does it on the real stack.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.gateway.app import create_app
from bot.ops.supervisor import Service, ServiceFailed, Supervisor
from bot.settings import PROJECT_ROOT
from tests.console.logins import console_crm, login
from tests.gateway.harness import gateway_settings

STANDIN = """
import http.server, os, subprocess, sys, threading
port, crash_after, mode, pid_file = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
if mode == "worker":  # a server that forks a worker, as Sanic or uvicorn may
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(pid_file, "w") as f:
    f.write(str(os.getpid()))

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", port), Health)
if crash_after > 0:
    threading.Timer(crash_after, lambda: os._exit(3)).start()
print("ERROR (not really) stand-in on port", port, flush=True)  # a loud line the supervisor echoes
server.serve_forever()
"""

LAUNCHER = """
import json, sys
from pathlib import Path
from bot.ops.supervisor import RestartPolicy, Service, Supervisor
spec = json.loads(Path(sys.argv[1]).read_text())
services = [Service(description=s["name"], startup_timeout=20, **s) for s in spec["services"]]
supervisor = Supervisor(services, Path(spec["log_dir"]), policy=RestartPolicy(**spec["policy"]))
sys.exit(supervisor.run(lambda: "all started"))
"""

HEALTH = "http://testserver/health"
FAST = {"limit": 4, "window": 60.0, "backoff": 0.2, "backoff_max": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` now (as servers do, despite connections in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` in the process tree, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Run:
    """One supervisor process over stand-in services, and what it said."""

    def __init__(self, tmp_path: Path, services: dict[str, dict[str, Any]], policy: dict[str, float]) -> None:
        self.tmp_path = tmp_path
        self.var_dir = tmp_path / "var"
        self.log_dir = self.var_dir / "logs"
        self.ports = {name: free_port() for name in services}
        entries = []
        for name, options in services.items():
            script = [
                sys.executable,
                "-c",
                STANDIN,
                str(self.ports[name]),
                str(options.get("crash_after", 0)),
                options.get("mode", "plain"),
                str(self.pid_file(name)),
            ]
            argv = ["sh", "-c", '"$@"; true', "wrapper", *script] if options.get("wrapped") else script
            url = f"http://127.0.0.1:{self.ports[name]}"
            entries.append({"name": name, "argv": argv, "url": url, "health_url": f"{url}/health"})
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"services": entries, "log_dir": str(self.log_dir), "policy": policy}))
        self.out_path = tmp_path / "out.txt"
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(spec)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""

    def pid_file(self, name: str) -> Path:
        return self.tmp_path / f"{name}.pid"

    def pid(self, name: str) -> int:
        return int(self.pid_file(name).read_text())

    def read_until(self, marker: str, timeout: float = 30) -> str:
        """Read the supervisor's output until a line holds `marker`."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None and not self._more():
                raise AssertionError(f"no {marker!r} in the supervisor's output:\n{self.output}")
            self._more()
        return self.output

    def _more(self) -> bool:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.output += line
        return bool(line)

    def status(self) -> dict[str, Any]:
        path = self.log_dir / "status.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def service_status(self, name: str) -> dict[str, Any]:
        services: dict[str, dict[str, Any]] = self.status().get("services", {})
        return services.get(name, {})

    def finish(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def gateway_of(tmp_path: Path, var_dir: Path) -> Iterator[TestClient]:
    """The real gateway beside the supervised stand-ins (same var dir), its console logged in as
    an agent: /health and /console/ read the supervisor's status."""
    database = tmp_path / "console.db"
    if not database.exists():
        console_crm(f"sqlite:///{database}")
    database_url = f"sqlite:///{database}"
    settings = gateway_settings(var_dir, "http://127.0.0.1:9", DATABASE_URL=database_url)
    with TestClient(
        create_app(settings), base_url="http://testserver/console", follow_redirects=False
    ) as client:
        login(client, "alex")
        yield client


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    started: list[Run] = []

    def start(services: dict[str, dict[str, Any]], policy: dict[str, float] = FAST) -> Run:
        run = Run(tmp_path, services, policy)
        started.append(run)
        return run

    yield start
    for run in started:
        tree = descendants(run.process.pid)
        run.finish()
        for pid in tree:  # never leave a stand-in behind, even when a test failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_service_comes_back_and_health_and_console_report_it(
    runs: Callable[..., Run], tmp_path: Path
) -> None:
    run = runs({"actions": {}, "rasa": {"mode": "worker"}})
    run.read_until("all started")
    first = run.pid("rasa")
    worker = descendants(first)
    assert len(worker) == 1
    os.kill(first, signal.SIGKILL)

    wait_for(lambda: run.pid("rasa") != first and answers(run.ports["rasa"]), 20, "rasa to come back")
    back = wait_for(
        lambda: run.service_status("rasa").get("state") == "up" and run.service_status("rasa"), 10, "rasa up"
    )
    assert back["restarts"] == 1
    assert back["last_exit"]["code"] == -signal.SIGKILL
    assert run.service_status("actions")["restarts"] == 0  # the others ran on
    assert not any(alive(pid) for pid in worker)  # the dead server's worker went with it
    run.read_until("rasa is back")
    assert "rasa exited with code -9" in run.output

    # The gateway's /health carries what the supervisor sees (its old keys stay)...
    with gateway_of(tmp_path, run.var_dir) as client:
        health = client.get(HEALTH).json()
        home = client.get("/").text
    assert health["status"] == "ok" and "telegram" in health
    assert health["services"]["rasa"]["restarts"] == 1
    assert health["services"]["rasa"]["last_exit"]["code"] == -signal.SIGKILL
    assert health["services"]["actions"]["state"] == "up"

    # ... and so does the console's home page.
    assert "rasa (restarted 1 time" in home


def test_a_service_down_is_shown_on_health_and_console_until_it_is_back(
    runs: Callable[..., Run], tmp_path: Path
) -> None:
    slow = {"limit": 4, "window": 60.0, "backoff": 4.0, "backoff_max": 4.0}  # long enough to look
    run = runs({"gateway": {}, "scheduler": {}}, slow)
    run.read_until("all started")
    with gateway_of(tmp_path, run.var_dir) as client:
        assert client.get(HEALTH).json()["services"]["scheduler"]["state"] == "up"
        os.kill(run.pid("scheduler"), signal.SIGKILL)
        health = wait_for(
            lambda: (h := client.get(HEALTH).json())["services"]["scheduler"]["state"] == "restarting" and h,
            10,
            "/health to show the outage",
        )
        assert health["services"]["scheduler"]["since"]
        assert health["services"]["gateway"]["state"] == "up"
        page = client.get("/").text
        assert "Not everything is running" in page and "<strong>scheduler</strong>: restarting since" in page

        wait_for(lambda: run.service_status("scheduler").get("state") == "up", 20, "scheduler back")
        assert client.get(HEALTH).json()["services"]["scheduler"]["state"] == "up"
        assert "Not everything is running" not in client.get("/").text

    run.finish()  # a stopped supervisor vouches for nothing: /health says nothing of services
    with gateway_of(tmp_path, run.var_dir) as client:
        assert "services" not in client.get(HEALTH).json()


def test_repeated_crashes_make_it_give_up_loudly_and_stop_everything(runs: Callable[..., Run]) -> None:
    run = runs({"steady": {}, "flaky": {"crash_after": 1.0}})
    run.read_until("all started")
    steady = run.pid("steady")
    code = run.process.wait(60)
    run.read_until("stopping steady")
    assert code != 0
    assert run.output.count("flaky exited with code 3") == FAST["limit"]  # it did try again, 3 times
    assert "GIVING UP" in run.output and "flaky failed 4 times within 60 s" in run.output
    assert not alive(steady) and port_free(run.ports["steady"])


def test_failures_further_apart_than_the_window_are_restarted_for_ever(runs: Callable[..., Run]) -> None:
    run = runs(
        {"flaky": {"crash_after": 1.5}}, {"limit": 2, "window": 1.0, "backoff": 0.2, "backoff_max": 1.0}
    )
    run.read_until("all started")
    wait_for(lambda: run.service_status("flaky").get("restarts", 0) >= 3, 30, "three restarts")
    assert run.process.poll() is None and "GIVING UP" not in run.output


def test_kill_9_of_the_supervisor_leaves_no_service_worker_or_wrapped_child(runs: Callable[..., Run]) -> None:
    run = runs({"plain": {}, "forking": {"mode": "worker"}, "wrapped": {"wrapped": True}})
    run.read_until("all started")
    tree = descendants(run.process.pid)
    assert {run.pid("plain"), run.pid("forking"), run.pid("wrapped")} <= tree
    assert len(tree) >= 5  # a worker under `forking`; under the `sh` wrapper, the real server

    run.process.kill()
    run.process.wait(10)

    wait_for(lambda: not any(alive(pid) for pid in tree), 20, "every service process to end")
    assert all(port_free(port) for port in run.ports.values())


def test_a_closed_output_pipe_neither_kills_the_supervisor_nor_its_services(runs: Callable[..., Run]) -> None:
    run = runs({"one": {}, "two": {}})
    run.read_until("all started")
    assert run.process.stdout is not None
    run.process.stdout.close()  # `tee` died with the Ctrl-C: the supervisor's next line gets EPIPE

    first = run.pid("one")
    os.kill(first, signal.SIGKILL)  # the supervisor has something to say now
    wait_for(lambda: run.service_status("one").get("restarts") == 1, 20, "one restarted")
    wait_for(lambda: run.service_status("one").get("state") == "up", 20, "one back up")
    assert run.process.poll() is None

    tree = descendants(run.process.pid)
    run.process.send_signal(signal.SIGINT)  # the Ctrl-C itself
    assert run.process.wait(30) == 0
    wait_for(lambda: not any(alive(pid) for pid in tree), 20, "every service to stop")
    said = (run.log_dir / "supervisor.log").read_text()
    assert "one exited with code -9" in said and "stopping two" in said  # still told, in the log


def test_the_health_url_token_is_never_printed(tmp_path: Path) -> None:
    token = "s3cr3t-health-token-1234"
    port = free_port()
    silent = Service(
        name="rasa",
        argv=[
            sys.executable,
            "-c",
            f"print('ERROR GET /status?token={token} failed', flush=True); import time; time.sleep(30)",
        ],
        url=f"http://127.0.0.1:{port}",
        health_url=f"http://127.0.0.1:{port}/status?token={token}",
        description="never answers",
        startup_timeout=2,
    )
    out = io.StringIO()
    supervisor = Supervisor([silent], tmp_path / "logs", out)
    with pytest.raises(ServiceFailed) as failure:
        supervisor.start()
    assert "did not answer" in str(failure.value)
    assert "/status?token=" in str(failure.value) and token not in str(failure.value)
    assert token not in out.getvalue()
