"""Disengagement caught early: every spell of a customer drifting away, what was done, how it ended.

Revision ID: 0016_drift_episodes
Revises: 0015_churn_reasons
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0016_drift_episodes"
down_revision = "0015_churn_reasons"
branch_labels = None
depends_on = None

SEGMENT = sa.Enum("MVC", "MCC", "BZ", "standard", name="segment", native_enum=False, length=24)


def upgrade() -> None:
    op.create_table(
        "drift_episode",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("segment", SEGMENT, nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("last_active_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("task_done_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("task_agent_id", sa.Integer(), nullable=True),
        sa.Column("task_note", sa.Text(), nullable=True),
        sa.Column("ended_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("came_back_by", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_drift_episode_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["delivery.id"],
            name=op.f("fk_drift_episode_delivery_id_delivery"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_agent_id"],
            ["agent.id"],
            name=op.f("fk_drift_episode_task_agent_id_agent"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_episode")),
        sa.UniqueConstraint("key", name=op.f("uq_drift_episode_key")),
    )
    op.create_index(
        "ix_drift_episode_customer_id_started_at",
        "drift_episode",
        ["customer_id", "started_at"],
        unique=False,
    )
    op.create_index(op.f("ix_drift_episode_ended_at"), "drift_episode", ["ended_at"], unique=False)


def downgrade() -> None:
    op.drop_table("drift_episode")
