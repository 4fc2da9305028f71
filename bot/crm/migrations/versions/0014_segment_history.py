"""Segments that follow the customer: every move kept, and one nightly refresh per day.

Revision ID: 0014_segment_history
Revises: 0013_postal_address
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0014_segment_history"
down_revision = "0013_postal_address"
branch_labels = None
depends_on = None

SEGMENT = sa.Enum("MVC", "MCC", "BZ", "standard", name="segment", native_enum=False, length=24)


def upgrade() -> None:
    op.create_table(
        "segment_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("from_segment", SEGMENT, nullable=True),
        sa.Column("to_segment", SEGMENT, nullable=False),
        sa.Column("rule", sa.String(length=24), nullable=False),
        sa.Column("trigger", sa.String(length=24), nullable=False),
        sa.Column("changed_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_segment_change_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_change")),
    )
    op.create_index(
        "ix_segment_change_customer_id_changed_at",
        "segment_change",
        ["customer_id", "changed_at"],
        unique=False,
    )
    op.create_table(
        "segment_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ran_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("mvc_threshold", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_run")),
        sa.UniqueConstraint("day", name=op.f("uq_segment_run_day")),
    )


def downgrade() -> None:
    op.drop_table("segment_run")
    op.drop_index("ix_segment_change_customer_id_changed_at", table_name="segment_change")
    op.drop_table("segment_change")
