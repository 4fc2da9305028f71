"""Shared fixtures: a migrated CRM on SQLite and on PostgreSQL, one transaction per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bot.crm.db import engine_for, make_engine
from bot.crm.migrate import upgrade

POSTGRES_ENV = "CARELOOP_TEST_POSTGRES_URL"


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.fail(f"{POSTGRES_ENV} is not set: run the suite with `make test`, which starts PostgreSQL")
    return url


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('crm') / 'crm.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The shared PostgreSQL CRM, migrated and empty: tests on it roll their work back."""
    url = postgres_url()
    reset_postgres(url)
    upgrade(url)
    return url


@pytest.fixture
def pg_scratch(pg_url: str) -> Iterator[str]:
    """The PostgreSQL CRM for a test that commits (a running gateway, console users): emptied
    before the test and again after it, so the tests that share `pg_url` still find it empty
    whatever order pytest runs them in (it groups the tests of each database together)."""
    reset_postgres(pg_url)
    upgrade(pg_url)
    yield pg_url
    # The process-wide engine a gateway or console made for it (bot.crm.db.engine_for) would keep
    # its connections until pushed out of the cache, and their finaliser warns inside a later test.
    engine_for(pg_url).dispose()
    reset_postgres(pg_url)
    upgrade(pg_url)


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crm_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated CRM database engine, once on SQLite and once on PostgreSQL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(crm_engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test, commits included."""
    connection = crm_engine.connect()
    transaction = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
