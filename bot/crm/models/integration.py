"""The keys a shop's systems use to reach the inbound API (bot/api), made by an admin."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, enum_column, utcnow


class ApiScope(str, enum.Enum):
    READ = "read"  # GET only
    WRITE = "write"  # GET and every upsert


class ApiKey(Base):
    """One API key. The shop holds the secret; only its SHA-256 is stored (the secret is 256 random
    bits, so a plain hash cannot be reversed by guessing), and the prefix tells keys apart."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))  # the audit log's actor is `api:<name>`
    scope: Mapped[ApiScope] = mapped_column(enum_column(ApiScope))
    prefix: Mapped[str] = mapped_column(String(16))  # the secret's first characters, shown on the page
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
