"""The inbound API on a real CRM, once on SQLite and once on PostgreSQL (committing: pg_scratch),
with one write key, one read key and a revoked key; a fake clock drives the rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from bot.api.routes import InboundApi
from bot.api.throttle import TokenBuckets
from bot.crm.db import make_engine
from bot.crm.integrations import create_key, revoke_key
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, ApiScope, Role
from bot.gateway.store import Crm

# Events happened a little while ago (the API refuses times in the future); T(n) is n minutes later.
BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)


def T(minutes: float) -> str:  # noqa: N802 - reads as a time in the tests
    return (BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Shop:
    """The shop's side of the API: a client and its keys."""

    client: TestClient
    engine: Engine
    keys: dict[str, str]
    clock: FakeClock
    api: InboundApi
    sent: list[Any] = field(default_factory=list)

    def post(self, path: str, body: Any, key: str = "write", **headers: str) -> httpx.Response:
        return self.client.post(path, json=body, headers={**self._auth(key), **headers})

    def get(self, path: str, key: str = "write") -> httpx.Response:
        return self.client.get(path, headers=self._auth(key))

    def _auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"} if key in self.keys else {}

    def db(self) -> Session:
        return Session(self.engine)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        upgrade(url)
        return url
    return str(request.getfixturevalue("pg_scratch"))


def make_keys(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        admin = Agent(username="ada", display_name="Ada", role=Role.ADMIN, password_hash="x")
        session.add(admin)
        session.flush()
        _, write = create_key(session=session, name="shop backend", scope=ApiScope.WRITE, agent_id=admin.id)
        _, read = create_key(session=session, name="reporting", scope=ApiScope.READ, agent_id=admin.id)
        old, revoked = create_key(session=session, name="old shop", scope=ApiScope.WRITE, agent_id=admin.id)
        revoke_key(session=session, key_id=old.id, agent_id=admin.id)
        session.commit()
    return {"write": write, "read": read, "revoked": revoked}


@pytest.fixture
def shop(database_url: str) -> Iterator[Shop]:
    engine = make_engine(database_url)
    keys = make_keys(engine)
    clock = FakeClock()
    crm = Crm(database_url, name="crm-api")
    api = InboundApi(crm, buckets=TokenBuckets(rate_per_second=1, burst=1000, clock=clock))
    crm.start()
    try:
        mounted = Starlette(routes=[Mount("/api/v1", app=api.app())])  # as the gateway mounts it
        with TestClient(mounted, base_url="http://shop.test/api/v1", raise_server_exceptions=False) as client:
            yield Shop(client, engine, keys, clock, api)
    finally:
        crm.close()
        engine.dispose()


def customer(external_id: str = "cus_1", minutes: float = 0, **fields: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "occurred_at": T(minutes),
        "first_name": "Ulla",
        "last_name": "Berg",
        **fields,
    }


def product(external_id: str = "prod_1", minutes: float = 0, **fields: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "occurred_at": T(minutes),
        "name": "Grinder",
        "price": "40.00",
        **fields,
    }


def order(
    external_id: str = "ord_1", status: str = "placed", minutes: float = 1, **fields: Any
) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "occurred_at": T(minutes),
        "status": status,
        "customer_external_id": "cus_1",
        "number": "1001",
        "lines": [{"product_external_id": "prod_1", "quantity": 2, "unit_price": "40.00"}],
        **fields,
    }
