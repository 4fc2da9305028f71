"""What a newcomer waits from a fresh clone to the first answer of `make run`, part by part.

- the two Python environments: recorded by tools/venv.sh when it created each one from nothing
  (`.venvs/<name>/created.json`); a repair after a lock-file change is not a fresh clone's wait;
- training: the record `make model` keeps (bot/ops/model.py, `training_record`);
- the CRM's migrations and demo data: measured here, the two commands `make db` runs, as their own
  processes into a scratch SQLite database;
- the cold start to the first answer: measured on the bench's running stack.

Nothing is retrained or reinstalled to measure: a part without a record is named as missing, and
the total is then a lower bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bot.settings import PROJECT_ROOT

ENVIRONMENTS = ("app", "rasa")
DEMO_CUSTOMERS = 500  # what `make db` loads (bot/crm/demo.py's default)
TARGET_MINUTES = 10.0  # issue 16: a fresh clone answers its first message within ten minutes


def environment_record(name: str, root: Path = PROJECT_ROOT) -> dict[str, Any] | None:
    """What tools/venv.sh wrote when it created the environment `name` from nothing, if it did."""
    path = root / ".venvs" / name / "created.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # a half-written or hand-edited record counts as none
        return None


def time_database_setup(directory: Path, customers: int = DEMO_CUSTOMERS) -> dict[str, Any]:
    """Run `make db`'s two commands into a scratch SQLite database; return the seconds each took."""
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "crm.db"
    database.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": f"sqlite:///{database}",
        "CARELOOP_DEMO_DATA": "true",
    }
    commands = {
        "migrate_s": [sys.executable, "-m", "bot.crm.migrate"],
        "demo_s": [sys.executable, "-m", "bot.crm.demo", "--if-empty", "--customers", str(customers)],
    }
    timings: dict[str, Any] = {"customers": customers}
    for key, command in commands.items():
        started = time.monotonic()
        subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
        timings[key] = round(time.monotonic() - started, 1)
    return timings


def fresh_clone(
    *,
    environments: dict[str, dict[str, Any] | None],
    training: dict[str, Any] | None,
    database: dict[str, Any] | None,
    cold_start_s: float | None,
) -> dict[str, Any]:
    """Each part's seconds (None: not recorded or not measured), their sum, and what it lacks."""
    parts: dict[str, float | None] = {
        f"environment {name}": None if record is None else float(record["seconds"])
        for name, record in environments.items()
    }
    parts["training"] = None if training is None else float(training["seconds"])
    parts["database"] = None if database is None else float(database["migrate_s"] + database["demo_s"])
    parts["cold start"] = cold_start_s
    known = [seconds for seconds in parts.values() if seconds is not None]
    return {
        "parts_s": parts,
        "total_s": round(sum(known), 1),
        "missing": [name for name, seconds in parts.items() if seconds is None],
        "target_minutes": TARGET_MINUTES,
        "environments": environments,
        "database": database,
    }
