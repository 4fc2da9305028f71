"""The shop's inbound API: API keys, the shop's own ids (`external_id`, unique per table) and the
time of the newest shop event applied to each row; an order's paid time, a subscription's renewal
and pause times.

Revision ID: 0009_inbound_api
Revises: 0008_sla_clock
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0009_inbound_api"
down_revision = "0008_sla_clock"
branch_labels = None
depends_on = None

SYNCED_TABLES = ("customer", "product", "order", "subscription", "refund")


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column(
            "scope", sa.Enum("read", "write", name="apiscope", native_enum=False, length=24), nullable=False
        ),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["agent.id"], name=op.f("fk_api_key_created_by_id_agent"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_key_token_hash")),
    )
    for table in SYNCED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("external_id", sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column("external_updated_at", UTCDateTime(timezone=True), nullable=True))
            if table == "order":
                batch_op.add_column(sa.Column("paid_at", UTCDateTime(timezone=True), nullable=True))
            if table == "subscription":
                batch_op.add_column(sa.Column("renewed_at", UTCDateTime(timezone=True), nullable=True))
                batch_op.add_column(sa.Column("paused_at", UTCDateTime(timezone=True), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_external_id"), ["external_id"], unique=True)


def downgrade() -> None:
    for table in SYNCED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_external_id"))
            if table == "subscription":
                batch_op.drop_column("paused_at")
                batch_op.drop_column("renewed_at")
            if table == "order":
                batch_op.drop_column("paid_at")
            batch_op.drop_column("external_updated_at")
            batch_op.drop_column("external_id")
    op.drop_table("api_key")
