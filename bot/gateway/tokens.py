"""Signed tokens: a web visitor's key to their own conversation, and Telegram account-link payloads.

A visitor token carries its visitor id and when it was issued, signed with SECRET_KEY. It is
refused once VISITOR_MAX_AGE has passed since it was issued; a token used after VISITOR_RENEW_AFTER
gets a renewed one in the answer, so a visitor who keeps coming back keeps their chat (sliding
expiry), and a token left behind on a shared computer stops working after a month."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer, URLSafeSerializer

VISITOR_SALT = "careloop.webchat.visitor.v2"  # v2: with the time of issue (v1 tokens never expired)
VISITOR_MAX_AGE = 30 * 24 * 3600
VISITOR_RENEW_AFTER = 24 * 3600
LINK_SALT = "careloop.telegram.link"
LINK_PREFIX = "link-"
LINK_TTL_SECONDS = 7 * 24 * 3600


def clock() -> float:
    """Now, in seconds since the epoch (tests move it)."""
    return time.time()


@dataclass(frozen=True)
class Visit:
    visitor_id: str
    renewed: str | None  # a fresh token for the visitor to keep, when theirs is getting old


def new_visitor(secret_key: str) -> tuple[str, str]:
    """A fresh visitor id and the token that proves it (the browser keeps the token)."""
    visitor_id = str(uuid.uuid4())
    return visitor_id, visitor_token(secret_key, visitor_id)


def visitor_token(secret_key: str, visitor_id: str) -> str:
    """A token for `visitor_id`, issued now."""
    return URLSafeSerializer(secret_key, salt=VISITOR_SALT).dumps([visitor_id, int(clock())])


def visit_of(secret_key: str, token: object) -> Visit | None:
    """Who a token proves, with a renewed token if it is older than a day; None if it is not one
    of ours or has expired."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    try:
        value = URLSafeSerializer(secret_key, salt=VISITOR_SALT).loads(token)
    except BadSignature:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)):
        return None
    try:
        visitor_id = str(uuid.UUID(str(value[0])))
    except ValueError:
        return None
    age = clock() - value[1]
    if age > VISITOR_MAX_AGE:
        return None
    renewed = visitor_token(secret_key, visitor_id) if age > VISITOR_RENEW_AFTER else None
    return Visit(visitor_id, renewed)


def visitor_of(secret_key: str, token: object) -> str | None:
    """The visitor id a token was issued for, or None if it is not one of ours or has expired."""
    visit = visit_of(secret_key, token)
    return visit.visitor_id if visit else None


def link_payload(secret_key: str, customer_id: int, *, now: float | None = None) -> str:
    """A /start deep-link payload that links a Telegram chat to `customer_id` (Telegram allows
    64 characters of A-Z, a-z, 0-9, _ and -, hence no itsdangerous dots)."""
    expires = int((now if now is not None else time.time()) + LINK_TTL_SECONDS)
    value = f"{customer_id}-{_base36(expires)}"
    signature = Signer(secret_key, salt=LINK_SALT).get_signature(value).decode()
    return f"{LINK_PREFIX}{value}-{signature}"


def customer_of_link(secret_key: str, payload: str, *, now: float | None = None) -> int | None:
    """The customer id a deep-link payload names, if it is genuine and not expired."""
    if not payload.startswith(LINK_PREFIX):
        return None
    parts = payload[len(LINK_PREFIX) :].split("-", 2)
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    customer_id, expires, signature = parts
    if not Signer(secret_key, salt=LINK_SALT).verify_signature(f"{customer_id}-{expires}", signature):
        return None
    try:
        if int(expires, 36) < (now if now is not None else time.time()):
            return None
    except ValueError:
        return None
    return int(customer_id)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"
