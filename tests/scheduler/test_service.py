"""The scheduler as a real process: jobs survive restarts; kill -9 mid-campaign loses and doubles nothing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from bot.crm.db import make_engine
from bot.crm.migrate import upgrade
from bot.crm.models import (
    CaseEvent,
    CaseEventKind,
    Channel,
    ChannelIdentity,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    Consent,
    ConsentPurpose,
    Customer,
    Delivery,
    DeliveryStatus,
    Severity,
)
from bot.settings import PROJECT_ROOT
from scheduler.campaigns.lifecycle import create_campaign
from tests.scheduler.standin_gateway import StandInGateway

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, tmp: Path, gateway: StandInGateway, *, rate: float = 200.0) -> None:
        self.port = free_port()
        self.crm_url = f"sqlite:///{tmp / 'crm.db'}"
        self.jobs_url = f"sqlite:///{tmp / 'jobs.db'}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "CARELOOP_ENV": "test",
            "CARELOOP_VAR_DIR": str(tmp),
            "DATABASE_URL": self.crm_url,
            "SCHEDULER_DB_URL": self.jobs_url,
            "SCHEDULER_URL": f"http://127.0.0.1:{self.port}",
            "GATEWAY_URL": gateway.url,
            "INTERNAL_API_TOKEN": gateway.token,
            "RASA_TOKEN": secrets.token_urlsafe(24),
            "SECRET_KEY": secrets.token_urlsafe(24),
            "OUTREACH_QUIET_HOURS": "00:00-00:00",
            "OUTREACH_RATE_PER_SECOND": str(rate),
            "LOG_LEVEL": "WARNING",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *, port: int | None = None, send_seconds: float = 0.5) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if port is not None:
            env["SCHEDULER_URL"] = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scheduler.service",
                "--sweep-seconds",
                "1",
                "--send-seconds",
                str(send_seconds),
                "--stale-after",
                "2",
            ],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def health(self, port: int | None = None) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port or self.port}/health", timeout=1
            ) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except OSError:
            return None

    def wait_healthy(self, port: int | None = None, timeout: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.health(port)
            if health and health.get("status") == "ok":
                return health
            time.sleep(0.2)
        raise AssertionError("the scheduler did not become healthy")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


@pytest.fixture
def gateway():  # type: ignore[no-untyped-def]
    with StandInGateway(token=secrets.token_urlsafe(16)) as stand_in:
        yield stand_in


def test_jobs_persist_across_a_restart(tmp_path: Path, gateway: StandInGateway) -> None:
    service = Service(tmp_path, gateway)
    upgrade(service.crm_url)
    try:
        service.start()
        first = service.wait_healthy()
        service.stop_all()
        jobs = create_engine(service.jobs_url)
        with jobs.connect() as connection:
            stored = connection.execute(
                text("SELECT id, next_run_time FROM apscheduler_job ORDER BY id")
            ).all()
        jobs.dispose()
        stored_ids = [row[0] for row in stored]
        assert stored_ids == [
            "cases:sla_clock",
            "customers:nightly_refresh",
            "outreach:send",
            "outreach:sweep",
            "webhooks:send",
        ]
        assert all(row[1] is not None for row in stored)
        service.start()
        second = service.wait_healthy()
        assert sorted(j["id"] for j in second["jobs"]) == sorted(j["id"] for j in first["jobs"])  # type: ignore[index,union-attr]
    finally:
        service.stop_all()


def seed_population(url: str, count: int, consenting: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(timezone.utc)
    with Session(engine) as session:
        session.execute(
            insert(Customer),
            [
                {
                    "first_name": f"N{n}",
                    "timezone": ("Europe/Berlin", "America/New_York", "Asia/Tokyo")[n % 3],
                    "created_at": now,
                    "tags": [],
                }
                for n in range(count)
            ],
        )
        ids = session.scalars(select(Customer.id).order_by(Customer.id)).all()
        session.execute(
            insert(ChannelIdentity),
            [
                {"customer_id": cid, "channel": Channel.WEB, "external_id": f"k-{cid}", "created_at": now}
                for cid in ids
            ],
        )
        session.execute(
            insert(Consent),
            [
                {
                    "customer_id": cid,
                    "purpose": ConsentPurpose.MARKETING,
                    "granted": n < consenting,
                    "source": "test",
                    "changed_at": now,
                }
                for n, cid in enumerate(ids)
            ],
        )
        create_campaign(
            session=session,
            name="Winter roast",
            message="Hi {first_name}, our winter roast is here!",
            audience={},
            schedule={"date": (now - timedelta(days=1)).date().isoformat(), "time": "09:00"},
            buttons=["Tell me more"],
        )
        session.commit()
    engine.dispose()


def open_deliveries(url: str) -> tuple[int, dict[str, int]]:
    engine = make_engine(url)
    with Session(engine) as session:
        rows = session.execute(
            select(Delivery.status, Delivery.skip_reason, func.count()).group_by(
                Delivery.status, Delivery.skip_reason
            )
        ).all()
    engine.dispose()
    counts = {(reason or status.value): n for status, reason, n in rows}
    waiting = sum(n for status, _, n in rows if status in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING))
    return waiting, counts


def test_kill_9_mid_campaign_then_restart_sends_everyone_exactly_once(
    tmp_path: Path, gateway: StandInGateway
) -> None:
    service = Service(tmp_path, gateway, rate=150.0)
    seed_population(service.crm_url, count=1000, consenting=900)
    try:
        victim = service.start()
        deadline = time.monotonic() + 60
        while len(gateway.delivered) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0 < len(gateway.delivered) < 900, "the kill must land in the middle of the send"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # Restart, and by mistake start a second scheduler on the same database too.
        service.start()
        service.start(port=free_port())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            waiting, counts = open_deliveries(service.crm_url)
            if waiting == 0 and counts.get("sent", 0) + counts.get("no_consent", 0) == 1000:
                break
            time.sleep(0.5)
        waiting, counts = open_deliveries(service.crm_url)
        assert counts == {"sent": 900, "no_consent": 100}
        received = gateway.per_customer()
        assert len(received) == 900 and set(received.values()) == {1}
        engine = make_engine(service.crm_url)
        with Session(engine) as session:
            refused = set(session.scalars(select(Consent.customer_id).where(Consent.granted.is_(False))))
        engine.dispose()
        assert not refused & set(received)
        assert all(call["intent"] == "EXTERNAL_campaign" for call in gateway.calls)
        sample = next(iter(gateway.delivered.values()))
        assert sample["entities"]["campaign_text"].startswith("Hi N") and sample["entities"][
            "campaign_button_1"
        ] == ("Tell me more")
    finally:
        service.stop_all()


def seed_late_case(url: str) -> int:
    """A four-hour case filed 3 h 40 min ago: past the point where the customer must be told."""
    upgrade(url)
    engine = make_engine(url)
    filed = datetime.now(timezone.utc) - timedelta(hours=3, minutes=40)
    with Session(engine) as session:
        customer = Customer(first_name="Mia", timezone="UTC")
        customer.identities.append(ChannelIdentity(channel=Channel.WEB, external_id="late-case"))
        session.add(customer)
        session.flush()
        complaint = Complaint(
            customer_id=customer.id,
            category=ComplaintCategory.DELIVERY,
            severity=Severity.HIGH,
            team="logistics",
            status=ComplaintStatus.OPEN,
            sla_due_at=filed + timedelta(hours=4),
            sla_started_at=filed,
            created_at=filed,
        )
        session.add(complaint)
        session.commit()
        complaint_id = complaint.id
    engine.dispose()
    return complaint_id


def test_kill_9_between_the_clocks_update_and_its_send_tells_the_customer_once(
    tmp_path: Path, gateway: StandInGateway
) -> None:
    service = Service(tmp_path, gateway)
    case_id = seed_late_case(service.crm_url)
    key = f"case_update:complaint:{case_id}:late:0"
    engine = make_engine(service.crm_url)
    try:
        # The first scheduler walks the clock at its start, but would send only in an hour.
        victim = service.start(send_seconds=3600)
        deadline = time.monotonic() + 60
        queued = None
        while queued is None and time.monotonic() < deadline:
            with Session(engine) as session:
                queued = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
            time.sleep(0.2)
        assert queued is not None and queued.status is DeliveryStatus.QUEUED
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert gateway.calls == []

        service.start()  # walks again at once, and sends every half second
        deadline = time.monotonic() + 60
        while not gateway.delivered and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # several more walks and sends: none may add anything
        assert [call["idempotency_key"] for call in gateway.calls] == [key]
        assert "we need until" in gateway.calls[0]["entities"]["campaign_text"]
        with Session(engine) as session:
            assert session.scalar(select(Delivery.status).where(Delivery.idempotency_key == key)) is (
                DeliveryStatus.SENT
            )
            moves = select(func.count(CaseEvent.id)).where(CaseEvent.kind == CaseEventKind.PROMISE)
            assert session.scalar(moves) == 1
            assert session.scalar(select(Complaint.priority).where(Complaint.id == case_id)) == 1
    finally:
        service.stop_all()
        engine.dispose()
