"""The agents' desk: internal notes on customers and canned replies (with a starter set).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STARTER_REPLIES = (
    ("Greeting", "Hi, I'm here now and I've read your conversation so far. Let me help you with this."),
    ("Checking", "Thanks for your patience - I'm checking this for you right now."),
    ("Apology", "I'm sorry this happened. I understand how frustrating it is, and I'll make it right."),
    ("Refund started", "I've started your refund. You'll see it on your account within 5 working days."),
    ("Anything else", "Is there anything else I can do for you today?"),
)


def upgrade() -> None:
    op.create_table(
        "agent_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("handoff_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.id"], name=op.f("fk_agent_note_agent_id_agent"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_agent_note_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["handoff_id"], ["handoff.id"], name=op.f("fk_agent_note_handoff_id_handoff"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_note")),
    )
    with op.batch_alter_table("agent_note", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_note_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_note_handoff_id"), ["handoff_id"], unique=False)

    canned = op.create_table(
        "canned_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=80), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_reply")),
        sa.UniqueConstraint("title", name=op.f("uq_canned_reply_title")),
    )
    now = datetime.now(timezone.utc)
    op.bulk_insert(
        canned, [{"title": t, "text": x, "active": True, "created_at": now} for t, x in STARTER_REPLIES]
    )


def downgrade() -> None:
    op.drop_table("canned_reply")
    with op.batch_alter_table("agent_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_note_handoff_id"))
        batch_op.drop_index(batch_op.f("ix_agent_note_customer_id"))
    op.drop_table("agent_note")
