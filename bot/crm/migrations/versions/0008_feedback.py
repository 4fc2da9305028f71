"""Feedback that reaches someone: feedback items (the customer's words, a theme, an owner, a state,
whether and when the customer was told what changed) and their history. Every comment and exit
answer already stored becomes a new item; its theme is read by the Feedback page (bot/crm/feedback.py
`read_themes`), so that this migration needs no text analysis.

Revision ID: 0008_feedback
Revises: 0006_nlu_review
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0008_feedback"
down_revision = "0006_nlu_review"
branch_labels = None
depends_on = None

SOURCES = ("feedback", "rating_comment", "exit_answer")
STATES = ("new", "in_progress", "done")
THEMES = (
    "delivery",
    "billing",
    "product_quality",
    "service",
    "technical",
    "price",
    "competitor",
    "no_longer_needed",
    "moving",
    "other",
)
EVENT_KINDS = ("filed", "state", "owner", "told")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=24)


def upgrade() -> None:
    op.create_table(
        "feedback_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("retention_attempt_id", sa.Integer(), nullable=True),
        sa.Column("source", _enum(SOURCES, "feedbacksource"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("theme", _enum(THEMES, "feedbacktheme"), nullable=True),
        sa.Column("product", sa.String(length=120), nullable=True),
        sa.Column("competitor", sa.String(length=60), nullable=True),
        sa.Column("state", _enum(STATES, "feedbackstate"), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("customer_told_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("customer_told_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_feedback_item_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_feedback_item_conversation_id_conversation"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.id"], name=op.f("fk_feedback_item_survey_id_survey"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["retention_attempt_id"],
            ["retention_attempt.id"],
            name=op.f("fk_feedback_item_retention_attempt_id_retention_attempt"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["agent.id"], name=op.f("fk_feedback_item_owner_id_agent"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_told_by"],
            ["agent.id"],
            name=op.f("fk_feedback_item_customer_told_by_agent"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_item")),
        sa.UniqueConstraint("survey_id", name=op.f("uq_feedback_item_survey_id")),
    )
    with op.batch_alter_table("feedback_item", schema=None) as batch_op:
        for column in ("customer_id", "theme", "state", "owner_id", "created_at"):
            batch_op.create_index(batch_op.f(f"ix_feedback_item_{column}"), [column], unique=False)

    op.create_table(
        "feedback_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum(EVENT_KINDS, "feedbackeventkind"), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("from_value", sa.String(length=60), nullable=True),
        sa.Column("to_value", sa.String(length=60), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.id"], name=op.f("fk_feedback_event_agent_id_agent"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["feedback_item.id"],
            name=op.f("fk_feedback_event_item_id_feedback_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_event")),
    )
    with op.batch_alter_table("feedback_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_event_item_id"), ["item_id"], unique=False)
    _copy_existing_feedback()


def _copy_existing_feedback() -> None:
    """Every comment and exit answer stored before this revision, as a new item with no theme yet."""
    op.execute(
        """
        INSERT INTO feedback_item
            (customer_id, conversation_id, survey_id, source, text, score, state, created_at, version)
        SELECT customer_id, conversation_id, id,
               CASE WHEN score IS NULL THEN 'feedback' ELSE 'rating_comment' END,
               comment, score, 'new', created_at, 1
        FROM survey WHERE comment IS NOT NULL AND comment <> ''
        """
    )
    op.execute(
        """
        INSERT INTO feedback_item
            (customer_id, conversation_id, retention_attempt_id, source, text, state, created_at, version)
        SELECT customer_id, conversation_id, id, 'exit_answer', exit_answer, 'new',
               COALESCE(decided_at, created_at), 1
        FROM retention_attempt WHERE exit_answer IS NOT NULL AND exit_answer <> ''
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("feedback_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_event_item_id"))
    op.drop_table("feedback_event")
    with op.batch_alter_table("feedback_item", schema=None) as batch_op:
        for column in ("created_at", "owner_id", "state", "theme", "customer_id"):
            batch_op.drop_index(batch_op.f(f"ix_feedback_item_{column}"))
    op.drop_table("feedback_item")
