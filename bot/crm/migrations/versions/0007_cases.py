"""Complaint cases worked by teams: an owner, a priority, a recorded remedy and a version on each
case; the case history; which teams each agent works in.

Revision ID: 0007_cases
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0007_cases"
down_revision = "0005"
branch_labels = None
depends_on = None

REMEDIES = ("refund", "replacement", "credit", "none")
EVENT_KINDS = ("filed", "state", "owner", "team", "note", "question", "answer", "resolved", "reopened")
TEAMS = ("logistics", "billing", "quality", "customer_care", "tech")


def upgrade() -> None:
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("first_response_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "remedy", sa.Enum(*REMEDIES, name="remedy", native_enum=False, length=24), nullable=True
            )
        )
        batch_op.add_column(sa.Column("refund_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("credit_amount", sa.Numeric(precision=10, scale=2), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_index(batch_op.f("ix_complaint_owner_id"), ["owner_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_complaint_owner_id_agent"), "agent", ["owner_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_complaint_refund_id_refund"), "refund", ["refund_id"], ["id"], ondelete="SET NULL"
        )

    op.create_table(
        "case_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind", sa.Enum(*EVENT_KINDS, name="caseeventkind", native_enum=False, length=24), nullable=False
        ),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column("from_value", sa.String(length=60), nullable=True),
        sa.Column("to_value", sa.String(length=60), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.id"], name=op.f("fk_case_event_agent_id_agent"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaint.id"],
            name=op.f("fk_case_event_complaint_id_complaint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_event")),
    )
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_event_complaint_id"), ["complaint_id"], unique=False)

    op.create_table(
        "agent_team",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.Enum(*TEAMS, name="team", native_enum=False, length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.id"], name=op.f("fk_agent_team_agent_id_agent"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", "team", name=op.f("pk_agent_team")),
    )


def downgrade() -> None:
    op.drop_table("agent_team")
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_event_complaint_id"))
    op.drop_table("case_event")
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_complaint_refund_id_refund"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_complaint_owner_id_agent"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_complaint_owner_id"))
        for column in ("version", "credit_amount", "refund_id", "remedy", "first_response_at", "priority"):
            batch_op.drop_column(column)
        batch_op.drop_column("owner_id")
