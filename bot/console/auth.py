"""Console login: Argon2 passwords, signed expiring session cookies, roles, CSRF tokens.

A session is a cookie signed with SECRET_KEY holding the agent id, their role, a stamp of their
password hash, a CSRF token and when it was issued; it expires after SESSION_MAX_AGE and is
re-checked against the database on every request (a deactivated agent, a changed role or a reset
password takes effect at once). Every state-changing request must carry the session's CSRF token
(form field `csrf_token` or header `X-CSRF-Token`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from bot.crm.models import Agent, Role, utcnow
from bot.crm.passwords import verify_password

SESSION_COOKIE = "careloop_console"
SESSION_MAX_AGE = 8 * 3600  # one working day
DEFAULT_SECRETS = {"change-me", "changeme", "secret", "careloop", "development", "dev"}

# What each role may do; pages and endpoints ask for a permission, not a role.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "chats": frozenset({Role.AGENT, Role.ADMIN}),  # the queue, conversations, customer records
    "campaigns": frozenset({Role.MARKETER, Role.ADMIN}),
    "reports": frozenset({Role.MARKETER, Role.ADMIN}),
    "users": frozenset({Role.ADMIN}),  # console users: create, role, deactivate, reset password
    "canned": frozenset({Role.ADMIN}),  # the canned replies agents pick from
}


class InsecureSecret(RuntimeError):
    """The console will not run outside development with a default or short secret."""


def check_secret(secret_key: str, environment: str) -> None:
    """Refuse a default or short SECRET_KEY anywhere but on a developer's machine."""
    if environment == "development":
        return
    if secret_key.lower() in DEFAULT_SECRETS or len(secret_key) < 24:
        raise InsecureSecret("SECRET_KEY is a default or shorter than 24 characters: set a random one")


@dataclass(frozen=True)
class ConsoleUser:
    id: int
    username: str
    display_name: str
    role: Role
    csrf: str

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


class Sessions:
    """Issue and read signed session cookies."""

    def __init__(self, secret_key: str, max_age: int = SESSION_MAX_AGE) -> None:
        self._signer = URLSafeTimedSerializer(secret_key, salt="careloop-console-session")
        self.max_age = max_age

    def issue(self, agent: Agent) -> tuple[str, str]:
        """A new cookie value and its CSRF token (a fresh token per login)."""
        csrf = secrets.token_urlsafe(32)
        data = {"agent": agent.id, "role": agent.role.value, "pw": _password_stamp(agent), "csrf": csrf}
        return self._signer.dumps(data), csrf

    def read(self, cookie: str | None, *, session: Session) -> ConsoleUser | None:
        """The logged-in user behind a cookie, or None if missing, forged, expired or deactivated."""
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie, max_age=self.max_age)
        except (SignatureExpired, BadSignature):
            return None
        agent = session.get(Agent, data.get("agent"))
        if agent is None or not agent.active or agent.role.value != data.get("role"):
            return None
        if not hmac.compare_digest(str(data.get("pw", "")), _password_stamp(agent)):
            return None
        agent.last_seen_at = utcnow()
        return ConsoleUser(agent.id, agent.username, agent.display_name, agent.role, str(data["csrf"]))


def _password_stamp(agent: Agent) -> str:
    """Changes with the password, so a reset ends the sessions opened with the old one."""
    return hashlib.sha256(agent.password_hash.encode()).hexdigest()[:16]


def authenticate(*, session: Session, username: str, password: str) -> Agent | None:
    """The active agent with these credentials; the same answer (None) for every kind of failure."""
    agent = session.scalar(select(Agent).where(Agent.username == username.strip()[:60]))
    if agent is None or not agent.active:
        verify_password(
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", password
        )  # same cost
        return None
    return agent if verify_password(agent.password_hash, password) else None


def csrf_ok(user: ConsoleUser, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(user.csrf, str(token))


class LoginThrottle:
    """At most `limit` failed logins per username and per client address within `window` seconds."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        for key in keys:
            failures = self._failures[key]
            while failures and now - failures[0] > self.window:
                failures.popleft()
            if len(failures) >= self.limit:
                return True
        return False

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._failures[key].append(time.monotonic())


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"
