"""The SLA clock acts: when each case's current promise was made, the steps the clock took on a
case (once per case, round and state), and console notices that survive a reload.

Revision ID: 0008_sla_clock
Revises: 0008_feedback
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0008_sla_clock"
down_revision = "0008_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_started_at", UTCDateTime(timezone=True), nullable=True))

    op.create_table(
        "case_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaint.id"],
            name=op.f("fk_case_alert_complaint_id_complaint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_alert")),
        sa.UniqueConstraint("key", name=op.f("uq_case_alert_key")),
    )
    with op.batch_alter_table("case_alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_alert_complaint_id"), ["complaint_id"], unique=False)

    op.create_table(
        "notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.id"], name=op.f("fk_notice_agent_id_agent"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["case_alert.id"], name=op.f("fk_notice_alert_id_case_alert"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaint.id"],
            name=op.f("fk_notice_complaint_id_complaint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice")),
    )
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notice_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notice_complaint_id"), ["complaint_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_complaint_id"))
        batch_op.drop_index(batch_op.f("ix_notice_agent_id"))
    op.drop_table("notice")
    with op.batch_alter_table("case_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_alert_complaint_id"))
    op.drop_table("case_alert")
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.drop_column("sla_started_at")
