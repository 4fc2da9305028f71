"""Learning from live chats: the messages up for NLU review with Rasa's reading and the admin's
decision, and how far Rasa's tracker store has been read.

Revision ID: 0006_nlu_review
Revises: 0006_email_outbox
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0006_nlu_review"
down_revision = "0006_email_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nlu_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.String(length=80), nullable=False),
        sa.Column("intent", sa.String(length=80), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("ranking", sa.JSON(), nullable=False),
        sa.Column("votes", sa.JSON(), nullable=False),
        sa.Column("read_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "decision",
            sa.Enum(
                "confirmed", "corrected", "left_out", name="reviewdecision", native_enum=False, length=24
            ),
            nullable=True,
        ),
        sa.Column("chosen_intent", sa.String(length=80), nullable=True),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("exported_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("export_file", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_nlu_review_message_id_message"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"], ["agent.id"], name=op.f("fk_nlu_review_reviewed_by_agent"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nlu_review")),
        sa.UniqueConstraint("message_id", name=op.f("uq_nlu_review_message_id")),
    )
    with op.batch_alter_table("nlu_review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nlu_review_decision"), ["decision"], unique=False)
    state = op.create_table(
        "nlu_review_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracker_event_id", sa.Integer(), nullable=False),
        sa.Column("scanned_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nlu_review_state")),
    )
    op.bulk_insert(state, [{"id": 1, "tracker_event_id": 0, "scanned_at": None}])


def downgrade() -> None:
    op.drop_table("nlu_review_state")
    with op.batch_alter_table("nlu_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nlu_review_decision"))
    op.drop_table("nlu_review")
