"""A churn risk computed from behaviour keeps its reasons and when it was computed.

Revision ID: 0015_churn_reasons
Revises: 0014_segment_history
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0015_churn_reasons"
down_revision = "0014_segment_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: a batch copy of the customer table on SQLite would drop the old table,
    # and with foreign keys on, its ON DELETE CASCADE would empty every table that points at it.
    # Existing rows start with no reasons; the next nightly refresh scores them.
    op.add_column(
        "customer", sa.Column("churn_reasons", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column("customer", sa.Column("churn_scored_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("customer", "churn_scored_at")
    op.drop_column("customer", "churn_reasons")
