"""From `git clone` to the first answer, end to end, as a newcomer lives it.

`python -m bench.clone_to_answer [--workdir DIR]` clones this repository's committed HEAD into an
empty directory, runs `make run` there with an empty model cache (so the model is trained from
scratch, as on a new machine), and plays a new web visitor who says "hello" until the gateway
answers; it prints the seconds from the clone to that answer, part by part from the clone's own
records, then stops the services. The gateway's port (8000) and the other services' ports must be
free. Packages come from the package index as `tools/venv.sh` installs them (on the development
machine, from its local wheel store).

It takes about ten minutes on two cores and trains a model, so it is not part of `make bench`
(whose `fresh clone` row adds up the parts from records instead); docs/benchmarks.md keeps its runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.chat_load import WebChatCustomer
from bench.population import ChatCustomer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GATEWAY = "http://127.0.0.1:8000"
POLL_SECONDS = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/careloop-fresh-clone"))
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    started = time.monotonic()
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(args.workdir)], check=True)
    env = {**os.environ, "CARELOOP_CACHE": str(args.workdir / ".empty-cache")}
    env = {k: v for k, v in env.items() if not k.startswith("VIRTUAL_ENV")}
    log_path = args.workdir / "make-run.log"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            ["make", "run"],
            cwd=args.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            answered = asyncio.run(_first_answer(run, started + args.timeout))
        finally:
            os.killpg(run.pid, signal.SIGTERM)
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
    if answered is None:
        print(f"no answer within {args.timeout:.0f} s (make run exited {run.returncode}); see {log_path}")
        return 1
    print(_report(args.workdir, answered - started))
    return 0


async def _first_answer(run: subprocess.Popen[bytes], deadline: float) -> float | None:
    """The moment a new visitor's hello was answered, or None (make run ended, or time ran out)."""
    while time.monotonic() < deadline and run.poll() is None:
        try:
            answered = await _say_hello(deadline)
            if answered is not None:
                return answered
        except (OSError, httpx.HTTPError, websockets.WebSocketException, asyncio.TimeoutError):
            pass  # not up yet
        await asyncio.sleep(POLL_SECONDS)
    return None


async def _say_hello(deadline: float) -> float | None:
    """A new visitor says hello, as the load generator's visitors do (bench/chat_load.py); the moment
    the whole answer was in, or None. A holding answer, sent while Rasa is still loading, is not the
    answer: the gateway answers properly once Rasa is up."""
    async with httpx.AsyncClient(timeout=5) as client:
        session = (await client.post(f"{GATEWAY}/webchat/session")).json()
    visitor = ChatCustomer(f"web:{session['visitor_id']}", session["token"], first_name="", order_number="")
    ws_url = GATEWAY.replace("http", "ws", 1) + "/webchat/ws"
    async with WebChatCustomer(ws_url, visitor, max(deadline - time.monotonic(), 1.0)) as chat:
        turn = await chat.say("hello", "first answer")
    return turn.done_at if turn.outcome == "answered" else None


def _report(workdir: Path, seconds: float) -> str:
    lines = [
        f"fresh clone to first answer: {seconds:.0f} s ({seconds / 60:.1f} min) on {os.cpu_count()} cores"
    ]
    for name in ("app", "rasa"):
        record = _json(workdir / ".venvs" / name / "created.json")
        if record:
            lines.append(f"  environment {name}: {record['seconds']:.0f} s")
    for record_path in sorted((workdir / ".empty-cache" / "models").glob("*.json")):
        record = _json(record_path)
        if record and "seconds" in record:
            lines.append(f"  training: {record['seconds']:.0f} s ({record_path.stem})")
    lines.append(
        f"  load average now: {os.getloadavg()[0]:.1f}; make run's output: {workdir / 'make-run.log'}"
    )
    return "\n".join(lines)


def _json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


if __name__ == "__main__":
    sys.exit(main())
