"""Run several services in the foreground, keep them alive, and never leave one behind.

- Start: services start in order and each must answer its health check in time, or everything
  stops (a service that cannot start at all is a setup error that restarting will not cure).
- Watch: a service that exits is started again after a backoff that doubles with each recent
  failure (`RestartPolicy`). Only `limit` failures of one service within `window` seconds make the
  supervisor give up: it says so loudly, stops everything and exits non-zero.
- No orphans: each service runs in its own process group and gets SIGTERM when the supervisor dies
  (PR_SET_PDEATHSIG); a reaper process (bot/ops/reaper.py) ends each whole group when the supervisor
  is gone, kill -9 included, and with it what a service started (a wrapper's server, workers).
- Speech: what the supervisor says goes to `<log_dir>/supervisor.log`, and to its output while
  that can be written: a closed output (Ctrl-C of `make run | tee`) costs nothing else. Secrets
  (tokens in URLs, the services' secret settings) are masked in all it writes, service logs too.
- Status: its view of each service is kept in `<log_dir>/status.json` (bot/ops/status.py) for the
  gateway's /health and the console's home page.

`start()` and `watch()` start processes: call both from one long-lived thread, because Linux sends
the parent-death signal when the *thread* that started a process ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from bot.ops.status import STATUS_FILE, ServiceState, write_status

LOUD_MARKERS = ("ERROR", "CRITICAL", "Traceback", "Exception")
SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "KEY")  # env vars whose values are masked
REAPER = Path(__file__).with_name("reaper.py")
TICK_SECONDS = 0.25
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class Service:
    name: str
    argv: list[str]
    url: str
    health_url: str  # may carry a token: printed only masked
    description: str
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = 240.0


@dataclass(frozen=True)
class RestartPolicy:
    """How a service that exits is started again, and when the supervisor gives up instead."""

    limit: int  # this many failures of one service within `window` seconds: give up
    window: float
    backoff: float  # seconds before the first restart, doubled for each further recent failure
    backoff_max: float

    def delay(self, recent_failures: int) -> float:
        return float(min(self.backoff * 2 ** max(recent_failures - 1, 0), self.backoff_max))


class ServiceFailed(RuntimeError):
    """A service exited or never became healthy; the message carries its last log lines."""


class Masker:
    """Hide secrets in text: tokens in URL queries, passwords in URLs, the services' secret settings."""

    QUERY = re.compile(r"([?&][A-Za-z_]*(?:token|secret|password|key)=)[^&\s'\"]+", re.IGNORECASE)
    USERINFO = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")

    def __init__(self, services: Sequence[Service]) -> None:
        values = {
            value
            for service in services
            for name, value in service.env.items()
            if len(value) >= 8 and any(part in name.upper() for part in SECRET_NAME_PARTS)
        }
        self.values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = self.USERINFO.sub(r"\1***@", self.QUERY.sub(r"\1***", text))
        for value in self.values:
            text = text.replace(value, "***")
        return text


class _Voice:
    """Where the supervisor speaks: its log file always, its output while that can be written."""

    def __init__(self, out: IO[str] | None, log_path: Path, mask: Masker) -> None:
        self.out, self.log_path, self.mask = out, log_path, mask
        self._lock = threading.Lock()  # the output threads of every service speak through here

    def say(self, line: str) -> None:
        line = self.mask(line)
        with self._lock:
            self._log(line)
            if self.out is None:
                return
            try:
                print(line, file=self.out, flush=True)
            except (OSError, ValueError):  # EPIPE: the reader (tee, a terminal) is gone
                self._lose_output()

    def _log(self, line: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with contextlib.suppress(OSError):  # a full disk must not stop the services
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as log:
                log.writelines(f"{stamp} {part}\n" for part in line.splitlines() or [""])

    def _lose_output(self) -> None:
        """Go on with the log file alone; point the dead output at /dev/null so that the interpreter's
        last flush at exit cannot fail either."""
        out, self.out = self.out, None
        self._log("(the output pipe was closed: from now on this log file only)")
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())  # type: ignore[union-attr]
            os.close(devnull)


@functools.cache
def _prctl() -> Any:
    return ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> Callable[[], None] | None:
    """A hook run in the child between fork and exec: SIGTERM it when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    parent, prctl = os.getpid(), _prctl()  # looked up here: the forked child only calls it

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the signal was armed
            os._exit(1)

    return arm


def _signal_group(group: int, signum: int) -> bool:
    """Send `signum` to process group `group`; False if it is gone."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Running:
    """One start of a service: its process, leader of a group of its own, and its output copier."""

    def __init__(self, service: Service, log_dir: Path, voice: _Voice) -> None:
        self.service = service
        self.log_path = log_dir / f"{service.name}.log"
        self.tail: deque[str] = deque(maxlen=30)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            service.argv,
            env={**os.environ, **service.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: Ctrl-C reaches us only, and we can end it whole
            preexec_fn=_die_with_parent(),
            text=True,
            errors="replace",
        )
        self.group = self.process.pid
        self._pump = threading.Thread(target=self._copy_output, args=(voice,), daemon=True)
        self._pump.start()

    def _copy_output(self, voice: _Voice) -> None:
        assert self.process.stdout is not None
        with self.process.stdout, self.log_path.open("a") as log:
            for raw in self.process.stdout:
                line = voice.mask(raw.rstrip("\n"))
                log.write(line + "\n")
                log.flush()
                self.tail.append(line.rstrip())
                if any(marker in line for marker in LOUD_MARKERS):
                    voice.say(f"[{self.service.name}] {line.rstrip()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.service.health_url, timeout=2) as response:
                return bool(200 <= response.status < 300)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def stop(self, timeout: float) -> None:
        """SIGTERM the whole group; SIGKILL what is left after `timeout` seconds."""
        if self.process.poll() is None:
            _signal_group(self.group, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.group, signal.SIGKILL)
                self.process.wait()
        self.end_group(grace=min(timeout, 2.0))
        self._pump.join(timeout=2)

    def end_group(self, grace: float = 0.0) -> None:
        """Once the main process is gone, end what it left in its group (a worker still holding a port)."""
        deadline = time.monotonic() + grace
        while _signal_group(self.group, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(self.group, signal.SIGKILL)

    def failure(self, why: str, then: str = "") -> ServiceFailed:
        lines = "\n".join(f"    {line}" for line in self.tail)
        step = f"; {then}" if then else ""
        return ServiceFailed(
            f"{self.service.name} {why}{step}; its log is {self.log_path}; last lines:\n{lines}"
        )


class _Reaper:
    """The process that ends every service group if the supervisor dies (bot/ops/reaper.py)."""

    def __init__(self, log_dir: Path, grace: float) -> None:
        self.log_dir, self.grace = log_dir, grace
        self.groups: set[int] = set()
        self.process: subprocess.Popen[str] | None = None

    def add(self, group: int) -> None:
        self.groups.add(group)
        self._tell(f"+{group}")

    def remove(self, group: int) -> None:
        self.groups.discard(group)
        self._tell(f"-{group}")

    def ensure(self) -> None:
        """Start the reaper (again, if something killed it) and tell it every group."""
        if self.process is not None and self.process.poll() is None:
            return
        with (self.log_dir / "reaper.log").open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(REAPER), str(self.grace)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C or a kill of our group must not reach it
                text=True,
            )
        for group in self.groups:
            self._tell(f"+{group}")

    def _tell(self, line: str) -> None:
        for _ in range(2):
            self.ensure()
            assert self.process is not None and self.process.stdin is not None
            try:
                self.process.stdin.write(line + "\n")
                self.process.stdin.flush()
                return
            except BrokenPipeError:  # it died since ensure(): start it again once
                self.process.wait()

    def close(self) -> None:
        """Let it go: every group is stopped, so end of input finds nothing left to end."""
        if self.process is None:
            return
        with contextlib.suppress(BrokenPipeError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.process = None


@dataclass
class _Slot:
    """One service as the supervisor tends it, across restarts."""

    service: Service
    running: _Running | None = None
    state: ServiceState = ServiceState.STARTING
    since: str = field(default_factory=_now)
    restarts: int = 0
    failures: deque[float] = field(default_factory=deque)  # monotonic times within the window
    last_exit: dict[str, Any] | None = None
    restart_at: float = 0.0

    def report(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": self.since,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }


class Supervisor:
    """Start services in order, wait until each answers its health check, keep them alive."""

    def __init__(
        self,
        services: Sequence[Service],
        log_dir: Path,
        out: IO[str] | None = None,
        *,
        policy: RestartPolicy | None = None,  # None: the first exit stops everything
        grace: float = 10.0,
    ) -> None:
        self.services = list(services)
        self.log_dir = log_dir
        self.policy = policy
        self.mask = Masker(self.services)
        self.voice = _Voice(out or sys.stdout, log_dir / "supervisor.log", self.mask)
        self.status_path = log_dir / STATUS_FILE
        self.slots: list[_Slot] = []
        self.state = "starting"
        self._reaper = _Reaper(log_dir, grace)
        self._stop = threading.Event()

    @property
    def out(self) -> IO[str] | None:
        return self.voice.out

    @property
    def running(self) -> list[_Running]:
        return [slot.running for slot in self.slots if slot.running is not None]

    def echo(self, line: str) -> None:
        self.voice.say(line)

    def run(self, banner: Callable[[], str] = str) -> int:
        """`make run`'s loop: start, say `banner()`, watch, stop. Return the exit code."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.request_stop)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a closed output is an error to handle, not death
        try:
            self.start()
        except ServiceFailed as failure:
            self.echo(str(failure))
            return 1
        except KeyboardInterrupt:
            self.echo("stopped before everything had started")
            return 0
        self.echo(banner())
        code = self.watch()
        self.stop()
        self.echo("all services stopped" if code == 0 else "gave up: every service is stopped")
        return code

    def start(self) -> None:
        """Start every service and wait until all are healthy; on failure stop what started."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for service in self.services:
                self.echo(f"starting {service.name} ...")
                self.slots.append(_Slot(service, running=self._launch(service)))
            self._report()
            for slot in self.slots:
                assert slot.running is not None
                self._wait_healthy(slot.running)
                self._set(slot, ServiceState.UP)
            self.state = "running"
            self._report()
        except BaseException:
            self.stop()
            raise

    def _launch(self, service: Service) -> _Running:
        self._reaper.ensure()
        running = _Running(service, self.log_dir, self.voice)
        self._reaper.add(running.group)
        return running

    def _wait_healthy(self, running: _Running) -> None:
        deadline = time.monotonic() + running.service.startup_timeout
        while time.monotonic() < deadline:
            if self._stop.is_set():
                raise KeyboardInterrupt
            if running.process.poll() is not None:
                raise running.failure(f"exited with code {running.process.returncode} while starting")
            if running.healthy():
                return
            time.sleep(0.5)
        raise running.failure(
            self.mask(
                f"did not answer {running.service.health_url} within {running.service.startup_timeout:.0f} s"
            )
        )

    def watch(self) -> int:
        """Keep every service alive until asked to stop (0) or until giving up on one (1)."""
        while not self._stop.wait(TICK_SECONDS):
            self._reaper.ensure()
            for slot in self.slots:
                if not self._tend(slot):
                    self.state = "gave up"
                    return 1
        return 0

    def _tend(self, slot: _Slot) -> bool:
        """Move one service along: notice an exit, restart after the backoff, see it healthy again.
        False: give up."""
        if slot.state is ServiceState.RESTARTING:
            if time.monotonic() >= slot.restart_at:
                slot.restarts += 1
                self.echo(f"restarting {slot.service.name} (restart {slot.restarts}) ...")
                slot.running = self._launch(slot.service)
                slot.state = ServiceState.STARTING  # `since` stays: the outage goes on until it answers
                self._report()
            return True
        running = slot.running
        assert running is not None
        code = running.process.poll()
        if code is not None:
            return self._failed(slot, f"exited with code {code}", code)
        if slot.state is ServiceState.STARTING:
            if running.healthy():
                self.echo(f"{slot.service.name} is back (restart {slot.restarts}, down since {slot.since})")
                self._set(slot, ServiceState.UP)
            elif time.monotonic() - running.started > slot.service.startup_timeout:
                running.stop(timeout=5)
                why = f"did not answer its health check within {slot.service.startup_timeout:.0f} s"
                return self._failed(slot, why, running.process.returncode)
        return True

    def _failed(self, slot: _Slot, why: str, code: int | None) -> bool:
        """Record a failure of `slot`; schedule its restart, or say that we give up (False)."""
        running = slot.running
        assert running is not None
        running.end_group()
        self._reaper.remove(running.group)
        now = time.monotonic()
        slot.failures.append(now)
        policy = self.policy
        while policy is not None and slot.failures and slot.failures[0] < now - policy.window:
            slot.failures.popleft()
        slot.last_exit = {"code": code, "at": _now(), "why": why}
        if policy is None or len(slot.failures) >= policy.limit:
            then = "stopping every service"
            if policy is not None:
                then = (
                    f"GIVING UP: {slot.service.name} failed {len(slot.failures)} times within "
                    f"{policy.window:.0f} s; stopping every service"
                )
            self.echo(str(running.failure(why, then)))
            self._set(slot, ServiceState.STOPPED)
            return False
        delay = policy.delay(len(slot.failures))
        self.echo(str(running.failure(why, f"restarting it in {delay:.1f} s")))
        slot.restart_at = now + delay
        self._set(slot, ServiceState.RESTARTING)
        return True

    def _set(self, slot: _Slot, state: ServiceState) -> None:
        slot.state, slot.since = state, _now()
        self._report()

    def _report(self) -> None:
        status = {
            "supervisor": {"pid": os.getpid(), "state": self.state, "updated_at": _now()},
            "services": {slot.service.name: slot.report() for slot in self.slots},
        }
        with contextlib.suppress(OSError):  # no status is better than a supervisor that stops
            write_status(self.status_path, status)

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop services in reverse start order."""
        self.state = "stopping"
        for slot in reversed(self.slots):
            if slot.running is not None:
                self.echo(f"stopping {slot.service.name} ...")
                slot.running.stop(timeout)
                self._reaper.remove(slot.running.group)
                slot.running = None
            slot.state = ServiceState.STOPPED
        self.slots.clear()
        self._reaper.close()
        with contextlib.suppress(FileNotFoundError):
            self.status_path.unlink()
