"""What the supervisor sees of its services, kept in one JSON file for the gateway and the console.

The supervisor rewrites `var/logs/status.json` atomically on every change (a reader never sees half
a file). A reader trusts it only while the supervisor that wrote it is alive: a file left by a
supervisor that was killed says nothing about the services running now.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


class ServiceState(str, enum.Enum):
    """Where a supervised service is in its life."""

    STARTING = "starting"  # started, not answering its health check yet
    UP = "up"
    RESTARTING = "restarting"  # exited; waits out its backoff before the next start
    STOPPED = "stopped"  # stopped on purpose, or given up on

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ServiceState.STARTING: "starting",
    ServiceState.UP: "up",
    ServiceState.RESTARTING: "down, restarting",
    ServiceState.STOPPED: "stopped",
}


def status_file(var_dir: Path) -> Path:
    """Where the supervisor of services using `var_dir` keeps its status (beside their logs)."""
    return var_dir / "logs" / STATUS_FILE


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Replace `path` with `status` in one step (write a temporary file, then rename it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".status-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(status, out, indent=1)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_status(path: Path) -> dict[str, Any] | None:
    """The status a living supervisor wrote at `path`; None without one (e.g. no supervisor)."""
    try:
        status: dict[str, Any] = json.loads(path.read_text())
        pid = int(status["supervisor"]["pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return status if _alive(pid) else None


def supervised_services(var_dir: Path) -> dict[str, dict[str, Any]]:
    """Each service's state, since when, restarts and last exit, as a living supervisor of the
    services using `var_dir` reports them (empty without one): what /health and the console show."""
    status = read_status(status_file(var_dir))
    if status is None:
        return {}
    keys = ("state", "since", "restarts", "last_exit")
    return {name: {key: entry.get(key) for key in keys} for name, entry in status["services"].items()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True
