"""Email as an outbound channel: the outbox of every mail (one row per idempotency key), the
confirmations of addresses given in chat, and when a customer's address was confirmed.

Addresses already stored came from the shop's own records (sign-up, orders), except those a
customer typed in chat (audited as `email_changed` by the customer): those start unconfirmed.

Revision ID: 0006_email_outbox
Revises: 0007_cases
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0006_email_outbox"
down_revision = "0007_cases"
branch_labels = None
depends_on = None

MAIL_STATUSES = ("queued", "sending", "sent", "failed", "skipped")
MAIL_PURPOSES = (
    "verify_address",
    "address_confirmed",
    "address_replaced",
    "phone_changed",
    "refund_confirmation",
    "cancellation_confirmation",
    "case_resolved",
)


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_verified_at", UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE customer SET email_verified_at = created_at WHERE email IS NOT NULL AND id NOT IN "
        "(SELECT entity_id FROM audit_log WHERE entity = 'customer' AND action = 'email_changed' "
        "AND actor = 'customer' AND entity_id IS NOT NULL)"
    )
    op.create_table(
        "email_verification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_email_verification_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_verification")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_verification_token_hash")),
    )
    with op.batch_alter_table("email_verification", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_verification_customer_id"), ["customer_id"], unique=False)
    op.create_table(
        "outbound_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=160), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("verification_id", sa.Integer(), nullable=True),
        sa.Column(
            "purpose",
            sa.Enum(*MAIL_PURPOSES, name="mailpurpose", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "status", sa.Enum(*MAIL_STATUSES, name="mailstatus", native_enum=False, length=24), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("skip_reason", sa.String(length=40), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("transport", sa.String(length=16), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("send_after", UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_outbound_mail_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["verification_id"],
            ["email_verification.id"],
            name=op.f("fk_outbound_mail_verification_id_email_verification"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_mail")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbound_mail_idempotency_key")),
    )
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbound_mail_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_outbound_mail_status_send_after", ["status", "send_after"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_mail_status_send_after")
        batch_op.drop_index(batch_op.f("ix_outbound_mail_customer_id"))
    op.drop_table("outbound_mail")
    with op.batch_alter_table("email_verification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_verification_customer_id"))
    op.drop_table("email_verification")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("email_verified_at")
