"""The customer's delivery address: street lines, postal code, city, country, and when it changed.

Revision ID: 0013_postal_address
Revises: 0010_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.crm.models.base import UTCDateTime

revision = "0013_postal_address"
down_revision = "0010_webhooks"
branch_labels = None
depends_on = None

# bot.crm.models.enums.CountryCode as it was at this revision (stored as its value, no native type).
COUNTRIES: tuple[str, ...] = (
    "GB",
    "IE",
    "DE",
    "AT",
    "CH",
    "FR",
    "BE",
    "NL",
    "LU",
    "IT",
    "ES",
    "PT",
    "DK",
    "SE",
    "NO",
    "FI",
)
COUNTRIES += ("PL", "CZ", "US", "CA", "AU", "JP")
COLUMNS = (
    ("address_line1", sa.String(length=100)),
    ("address_line2", sa.String(length=100)),
    ("postal_code", sa.String(length=16)),
    ("city", sa.String(length=80)),
    ("country", sa.Enum(*COUNTRIES, name="countrycode", native_enum=False, length=2)),
    ("address_updated_at", UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("customer") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
