"""API keys for the shop's systems: made by an admin, shown once, stored as a hash, revocable.

A key is `clk_` and 43 characters of `secrets.token_urlsafe(32)` (256 random bits). Only its SHA-256
is stored: with that much entropy a plain hash is as safe as a slow one, and a look-up stays one
indexed read per request. The secret never reaches a log, the audit log or the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import Agent, ApiKey, ApiScope, utcnow
from bot.crm.queries import record_audit

KEY_PREFIX = "clk_"
SHOWN_PREFIX = 12  # `clk_` and 8 characters: enough to tell keys apart, far too few to guess one
MAX_NAME = 40
MAX_SECRET = 100  # longer is not one of ours: not even hashed
# Writing the last use on every request would make each read a write; a minute is precise enough.
LAST_USED_EVERY = timedelta(seconds=60)


class KeyRefused(ValueError):
    """A key cannot be made or changed as asked; the message is for the admin."""


@dataclass(frozen=True)
class KeyHolder:
    """Who is calling the API: the key's id, name and scope (never its secret)."""

    id: int
    name: str
    scope: ApiScope

    @property
    def actor(self) -> str:
        """The audit log's actor for this key's writes."""
        return f"api:{self.name}"

    def may_write(self) -> bool:
        return self.scope is ApiScope.WRITE


@dataclass(frozen=True)
class KeyRow:
    id: int
    name: str
    scope: str
    prefix: str
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def digest(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def clean_name(name: str) -> str:
    """A key's name as stored: NFC, one line, 1 to 40 characters of printable text."""
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise KeyRefused("Give the key a name, e.g. the system that will use it.")
    if len(name) > MAX_NAME:
        raise KeyRefused(f"A key's name has at most {MAX_NAME} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name):
        raise KeyRefused("A key's name is one line of visible characters.")
    return name


def create_key(*, session: Session, name: str, scope: ApiScope, agent_id: int) -> tuple[KeyRow, str]:
    """Make a key; return its row and its secret (the only time the secret exists outside the shop)."""
    name = clean_name(name)
    taken = session.scalar(select(ApiKey.id).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)))
    if taken is not None:
        raise KeyRefused("A key with this name is in use: the audit log tells keys apart by name.")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        scope=scope,
        prefix=secret[:SHOWN_PREFIX],
        token_hash=digest(secret),
        created_by_id=agent_id,
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    record_audit(
        session=session,
        actor=f"agent:{agent_id}",
        action="api_key_created",
        entity="api_key",
        entity_id=key.id,
        details={"name": name, "scope": scope.value},
    )
    return _row(key, session), secret


def revoke_key(*, session: Session, key_id: int, agent_id: int) -> KeyRow:
    """Revoke a key at once (its next request gets 401); revoking twice changes nothing."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise LookupError(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record_audit(
            session=session,
            actor=f"agent:{agent_id}",
            action="api_key_revoked",
            entity="api_key",
            entity_id=key.id,
            details={"name": key.name},
        )
    return _row(key, session)


def key_named(*, session: Session, key_id: int) -> KeyRow:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise LookupError(key_id)
    return _row(key, session)


def list_keys(*, session: Session) -> list[KeyRow]:
    """Every key, live ones first, newest first."""
    keys = session.scalars(
        select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    return [_row(key, session) for key in keys]


def holder_of(*, session: Session, secret: str, now: datetime | None = None) -> KeyHolder | None:
    """The live key whose secret this is, its last use noted; None for anything else."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > MAX_SECRET:
        return None
    hashed = digest(secret)
    key = session.scalar(select(ApiKey).where(ApiKey.token_hash == hashed))
    # The look-up is by a hash of 256 random bits; the compare is constant-time all the same.
    if key is None or not hmac.compare_digest(key.token_hash, hashed) or key.revoked_at is not None:
        return None
    now = now or utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        key.last_used_at = now
    return KeyHolder(key.id, key.name, key.scope)


def _row(key: ApiKey, session: Session) -> KeyRow:
    creator = session.get(Agent, key.created_by_id) if key.created_by_id else None
    return KeyRow(
        id=key.id,
        name=key.name,
        scope=key.scope.value,
        prefix=key.prefix,
        created_by=creator.display_name if creator else None,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )
