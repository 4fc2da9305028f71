"""The Alembic migration creates exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from bot.crm.models import Base


def test_migrated_schema_matches_the_models(crm_engine: Engine) -> None:
    with crm_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_lookup_columns_are_indexed(crm_engine: Engine) -> None:
    inspector = inspect(crm_engine)

    def indexed(table: str) -> set[str]:
        columns = {c for ix in inspector.get_indexes(table) for c in ix["column_names"]}
        columns |= {c for uq in inspector.get_unique_constraints(table) for c in uq["column_names"]}
        return columns

    assert {"channel", "external_id"} <= indexed("channel_identity")
    assert "sender_id" in indexed("conversation")
    assert "conversation_id" in indexed("message")
    for table in ("order", "complaint", "interaction_event", "handoff", "delivery", "retention_attempt"):
        assert "customer_id" in indexed(table), table
    assert "idempotency_key" in indexed("delivery")


def test_foreign_keys_are_real(crm_engine: Engine) -> None:
    inspector = inspect(crm_engine)
    targets = {fk["referred_table"] for fk in inspector.get_foreign_keys("message")}
    assert targets == {"conversation", "agent"}
    assert {fk["referred_table"] for fk in inspector.get_foreign_keys("order_line")} == {"order", "product"}
