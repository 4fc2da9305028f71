"""Run several services in the foreground, watch them, and stop them all cleanly on Ctrl-C."""

from __future__ import annotations

import os
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
from pathlib import Path
from typing import IO

LOUD_MARKERS = ("ERROR", "CRITICAL", "Traceback", "Exception")


@dataclass
class Service:
    name: str
    argv: list[str]
    url: str
    health_url: str  # may carry a token: never printed
    description: str
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = 240.0


class ServiceFailed(RuntimeError):
    """A service exited or never became healthy; the message carries its last log lines."""


class _Running:
    def __init__(self, service: Service, log_dir: Path, echo: Callable[[str], None]) -> None:
        self.service = service
        self.log_path = log_dir / f"{service.name}.log"
        self.tail: deque[str] = deque(maxlen=30)
        self.process = subprocess.Popen(
            service.argv,
            env={**os.environ, **service.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: Ctrl-C reaches us, we stop it in order
            text=True,
            errors="replace",
        )
        self._pump = threading.Thread(target=self._copy_output, args=(echo,), daemon=True)
        self._pump.start()

    def _copy_output(self, echo: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        with self.process.stdout, self.log_path.open("a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.tail.append(line.rstrip())
                if any(marker in line for marker in LOUD_MARKERS):
                    echo(f"[{self.service.name}] {line.rstrip()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.service.health_url, timeout=2) as response:
                return bool(200 <= response.status < 300)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def stop(self, timeout: float) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._pump.join(timeout=2)

    def failure(self, why: str) -> ServiceFailed:
        lines = "\n".join(f"    {line}" for line in self.tail)
        return ServiceFailed(f"{self.service.name} {why}; its log is {self.log_path}; last lines:\n{lines}")


class Supervisor:
    """Start services in order, wait until each answers its health check, keep watch."""

    def __init__(self, services: Sequence[Service], log_dir: Path, out: IO[str] | None = None) -> None:
        self.services = list(services)
        self.log_dir = log_dir
        self.out = out or sys.stdout
        self.running: list[_Running] = []
        self._stop = threading.Event()

    def echo(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def start(self) -> None:
        """Start every service and wait until all are healthy; on failure stop what started."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for service in self.services:
                self.echo(f"starting {service.name} ...")
                self.running.append(_Running(service, self.log_dir, self.echo))
            for running in self.running:
                self._wait_healthy(running)
        except BaseException:
            self.stop()
            raise

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
            f"did not answer {running.service.health_url} within {running.service.startup_timeout:.0f} s"
        )

    def watch(self) -> int:
        """Block until asked to stop (0) or until a service dies (1)."""
        while not self._stop.wait(1.0):
            for running in self.running:
                if running.process.poll() is not None:
                    self.echo(
                        str(running.failure(f"exited unexpectedly with code {running.process.returncode}"))
                    )
                    return 1
        return 0

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop services in reverse start order."""
        for running in reversed(self.running):
            self.echo(f"stopping {running.service.name} ...")
            running.stop(timeout)
        self.running.clear()
