"""The scheduler service: `python -m scheduler.service`. One process owns the persistent job table."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler

from bot.settings import Settings
from scheduler import jobs

log = logging.getLogger(__name__)
# Webhooks may wait a few seconds; polling them as often as customers' messages would only add
# writes to the job table (the outreach sender may run every half second).
WEBHOOK_SECONDS = 5.0
# The nightly refresh of every customer, in UTC, when the shops are quietest; a scheduler that was
# down then runs it when it comes back the same day (segment_run allows one run a day).
NIGHTLY_REFRESH = {"hour": 2, "minute": 30}
NIGHTLY_GRACE_SECONDS = 20 * 3600


def build_scheduler(settings: Settings, *, sweep_seconds: float, send_seconds: float) -> BlockingScheduler:
    """APScheduler with the persistent SQLAlchemy job store; explicit job ids, coalesced misfires, UTC."""
    scheduler = BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=settings.scheduler_db_url, tablename="apscheduler_job")},
        timezone="UTC",
        job_defaults={"coalesce": True, "misfire_grace_time": 3600, "max_instances": 1},
    )
    scheduler.add_job(
        "scheduler.jobs:sweep", "interval", seconds=sweep_seconds, id="outreach:sweep", replace_existing=True
    )
    scheduler.add_job(
        "scheduler.jobs:send_due", "interval", seconds=send_seconds, id="outreach:send", replace_existing=True
    )
    scheduler.add_job(  # its own job: a slow receiver never holds up the customers' messages
        "scheduler.jobs:send_webhooks",
        "interval",
        seconds=max(send_seconds, WEBHOOK_SECONDS),
        id="webhooks:send",
        replace_existing=True,
    )
    scheduler.add_job(
        "scheduler.jobs:refresh_customers",
        "cron",
        **NIGHTLY_REFRESH,
        id="customers:nightly_refresh",
        replace_existing=True,
        misfire_grace_time=NIGHTLY_GRACE_SECONDS,
    )
    scheduler.add_job(  # first at start: a newcomer's first run shows the demo's notices at once
        "scheduler.jobs:sla_clock",
        "interval",
        seconds=sweep_seconds,
        id="cases:sla_clock",
        replace_existing=True,
        next_run_time=datetime.now(timezone.utc),
    )
    return scheduler


def serve_health(port: int, scheduler: BlockingScheduler) -> ThreadingHTTPServer:
    """A tiny loopback endpoint for the supervisor: the jobs and when they run next."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/health":
                self.send_error(404)
                return
            jobs_: list[dict[str, Any]] = [
                {"id": job.id, "next_run": job.next_run_time.isoformat() if job.next_run_time else None}
                for job in scheduler.get_jobs()
            ]
            body = json.dumps({"status": "ok" if scheduler.running else "starting", "jobs": jobs_}).encode()
            self.send_response(200 if scheduler.running else 503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server


def main() -> None:
    from bot.bootstrap import bootstrap

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-seconds", type=float, default=60.0)
    parser.add_argument("--send-seconds", type=float, default=10.0)
    parser.add_argument(
        "--stale-after", type=float, default=300.0, help="seconds before a dead claim is taken over"
    )
    args = parser.parse_args()
    settings = bootstrap()
    jobs.OPTIONS["stale_after_seconds"] = args.stale_after
    jobs.runtime()  # fail fast on bad settings
    scheduler = build_scheduler(settings, sweep_seconds=args.sweep_seconds, send_seconds=args.send_seconds)
    server = serve_health(settings.scheduler_port, scheduler)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
