"""Console login: Argon2 passwords, server-side sessions, roles, CSRF tokens, the login throttle.

A session is a `console_session` row. The browser's cookie holds a random token; the row holds
only HMAC-SHA256(SECRET_KEY, token), so the table cannot be replayed as cookies and a new
SECRET_KEY ends every session. Every request re-checks the row: not revoked, used within the idle
lifetime, younger than the absolute lifetime (the deadlines stored at login and the current
settings, whichever is sooner), and its agent still active with the role and password the session
was opened with. Logging out revokes the row, so every copy of the cookie stops working; a
password reset, a role change, a deactivation and an admin's "sign out everywhere" revoke all of
an agent's rows (`end_sessions`), so changing a role back does not revive them.

Every state-changing request must carry the session's CSRF token (form field `csrf_token` or
header `X-CSRF-Token`), derived from the session's token: one per session, nothing more to store.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from bot.crm.models import Agent, ConsoleSession, Role, utcnow
from bot.crm.passwords import verify_password

SESSION_COOKIE = "careloop_console"
SESSION_MAX_AGE = 12 * 3600  # a long working day; CONSOLE_SESSION_MAX_HOURS
SESSION_IDLE = 30 * 60  # CONSOLE_SESSION_IDLE_MINUTES
MAX_COOKIE = 100  # a token is 43 characters; anything much longer is not ours
MAX_USERNAME = 60  # the agent.username column; stored usernames have at most 40
DEFAULT_SECRETS = {"change-me", "changeme", "secret", "careloop", "development", "dev"}
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

# What each role may do; pages and endpoints ask for a permission, not a role.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "chats": frozenset({Role.AGENT, Role.LEAD, Role.ADMIN}),  # the queue, conversations, customer records
    "cases": frozenset({Role.AGENT, Role.LEAD, Role.ADMIN}),  # complaint cases of their teams (admins: all)
    # customers' feedback and exit answers; telling a customer what changed is a service message
    "feedback": frozenset({Role.AGENT, Role.LEAD, Role.ADMIN}),
    "campaigns": frozenset({Role.MARKETER, Role.ADMIN}),
    # loyalty and campaign figures for marketers; how the teams keep their promises for leads
    "reports": frozenset({Role.MARKETER, Role.LEAD, Role.ADMIN}),
    "loyalty": frozenset({Role.MARKETER, Role.ADMIN}),  # the loyalty dashboard (CSAT per agent: admins)
    "users": frozenset({Role.ADMIN}),  # console users: create, role, deactivate, reset password
    "canned": frozenset({Role.ADMIN}),  # the canned replies agents pick from
    "nlu_review": frozenset({Role.ADMIN}),  # confirm or correct the bot's readings; export them
    "outbox": frozenset({Role.ADMIN}),  # every mail to customers, with its text
    "integrations": frozenset({Role.ADMIN}),  # API keys for the shop's systems
}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    session_id: int | None = None

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


class Sessions:
    """Open, read and end console sessions; lifetimes in seconds."""

    def __init__(self, secret_key: str, max_age: float = SESSION_MAX_AGE, idle: float = SESSION_IDLE) -> None:
        self._key = secret_key.encode()
        self.max_age, self.idle = max_age, idle

    def issue(self, agent: Agent, *, session: Session) -> tuple[str, str]:
        """Open a session for `agent`: the cookie value and the session's CSRF token."""
        token, now = secrets.token_urlsafe(32), utcnow()
        expires = now + timedelta(seconds=self.max_age)
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))  # keep it small
        session.add(
            ConsoleSession(
                agent_id=agent.id,
                token_hash=self._digest(b"session", token),
                role=agent.role,
                password_stamp=_password_stamp(agent),
                created_at=now,
                last_seen_at=now,
                idle_expires_at=min(now + timedelta(seconds=self.idle), expires),
                expires_at=expires,
            )
        )
        return token, self._digest(b"csrf", token)

    def read(self, cookie: str | None, *, session: Session, touch: bool = True) -> ConsoleUser | None:
        """The user behind a cookie, or None if unknown, ended, expired or no longer as opened.

        A read is a use (it restarts the idle lifetime) unless `touch` is false, as for a live
        socket re-checking its session: an open tab alone must not keep a session alive."""
        row = self._live(cookie, session=session)
        if row is None or cookie is None:
            return None
        now = utcnow()
        agent = session.get(Agent, row.agent_id)
        if agent is None or not agent.active or agent.role is not row.role:
            row.revoked_at = now  # changed outside the console: changing it back must not revive it
            return None
        if not hmac.compare_digest(row.password_stamp, _password_stamp(agent)):
            row.revoked_at = now
            return None
        if touch:
            row.last_seen_at = agent.last_seen_at = now
            row.idle_expires_at = min(now + timedelta(seconds=self.idle), row.expires_at)
        csrf = self._digest(b"csrf", cookie)
        return ConsoleUser(agent.id, agent.username, agent.display_name, agent.role, csrf, row.id)

    def end(self, cookie: str | None, *, session: Session) -> None:
        """Log out: the session behind `cookie` ends for every copy of the cookie."""
        if cookie and len(cookie) <= MAX_COOKIE:
            session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.token_hash == self._digest(b"session", cookie))
                .where(ConsoleSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )

    def _live(self, cookie: str | None, *, session: Session) -> ConsoleSession | None:
        if not cookie or len(cookie) > MAX_COOKIE:
            return None
        row = session.scalar(
            select(ConsoleSession).where(ConsoleSession.token_hash == self._digest(b"session", cookie))
        )
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        # The stored deadlines, or sooner if the lifetimes were shortened since the login.
        if now >= min(row.expires_at, row.created_at + timedelta(seconds=self.max_age)):
            return None
        if now >= min(row.idle_expires_at, row.last_seen_at + timedelta(seconds=self.idle)):
            return None
        return row

    def _digest(self, purpose: bytes, token: str) -> str:
        return hmac.new(self._key, purpose + b":" + token.encode(), hashlib.sha256).hexdigest()


def end_sessions(*, session: Session, agent_id: int, keep: int | None = None) -> int:
    """End every open session of an agent (but `keep`); return how many were open."""
    now = utcnow()
    ending = (
        update(ConsoleSession)
        .where(ConsoleSession.agent_id == agent_id)
        .where(ConsoleSession.revoked_at.is_(None))
        .where(ConsoleSession.expires_at > now)
        .values(revoked_at=now)
    )
    if keep is not None:
        ending = ending.where(ConsoleSession.id != keep)
    return int(getattr(session.execute(ending), "rowcount", 0) or 0)


def open_sessions(*, session: Session) -> dict[int, int]:
    """How many sessions each agent has that are neither ended nor past their deadline."""
    now = utcnow()
    rows = session.execute(
        select(ConsoleSession.agent_id, func.count())
        .where(ConsoleSession.revoked_at.is_(None))
        .where(ConsoleSession.expires_at > now)
        .where(ConsoleSession.idle_expires_at > now)
        .group_by(ConsoleSession.agent_id)
    )
    return {agent_id: count for agent_id, count in rows.tuples()}


def _password_stamp(agent: Agent) -> str:
    """Changes with the password, so a reset ends the sessions opened with the old one."""
    return hashlib.sha256(agent.password_hash.encode()).hexdigest()[:16]


def account_of(username: str) -> str | None:
    """The account a typed username names: trimmed, without case, look-alike letters folded
    (NFKC, so full-width "ａｌｅｘ" is "alex"); None when longer than any username can be."""
    if len(username) > 4 * MAX_USERNAME:  # don't normalise a megabyte
        return None
    account = unicodedata.normalize("NFKC", username).casefold().strip()
    return account if len(account) <= MAX_USERNAME else None


def authenticate(*, session: Session, account: str, password: str) -> Agent | None:
    """The active agent with these credentials; the same answer (None) for every kind of failure."""
    agent = session.scalar(select(Agent).where(func.lower(Agent.username) == account))
    if agent is None or not agent.active:
        verify_password(_DUMMY_HASH, password)  # the same cost, so the time tells nothing
        return None
    return agent if verify_password(agent.password_hash, password) else None


def csrf_ok(user: ConsoleUser, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(user.csrf, str(token))


@dataclass
class _Failures:
    count: int
    last: float


class _Buckets:
    """Failure counts by key, least recently failed first, at most `size` of them."""

    def __init__(self, free: int, size: int) -> None:
        self.free, self.size = free, size
        self._entries: OrderedDict[Hashable, _Failures] = OrderedDict()

    def wait(self, key: Hashable, now: float, throttle: LoginThrottle) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        if now - entry.last > throttle.forget_after:
            del self._entries[key]
            return 0.0
        if entry.count < self.free:
            return 0.0
        delay = min(throttle.base * 2 ** min(entry.count - self.free, 32), throttle.cap)
        return max(0.0, entry.last + delay - now)

    def add(self, key: Hashable, now: float, throttle: LoginThrottle) -> int:
        entry = self._entries.pop(key, None) or _Failures(0, now)
        entry.count, entry.last = entry.count + 1, now
        self._entries[key] = entry  # now the most recent
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)  # the one that failed longest ago
        return entry.count

    def touch(self, key: Hashable, now: float) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.last = max(entry.last, now)

    def undo(self, key: Hashable) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.count -= 1
            if entry.count <= 0:
                del self._entries[key]

    def pop(self, key: Hashable) -> _Failures | None:
        return self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class LoginThrottle:
    """Slow down password guessing without letting an attacker lock out the real user.

    Three kinds of failure count, each with its own allowance before a wait starts; after it,
    each failure doubles the wait (1 s, 2 s, 4 s, ... up to `cap`), and counts are forgotten
    `forget_after` seconds after their last failure. There is no hard lock: the right password
    after the wait still works.

    - (account, client): `pair_free` failures. This is what stops one client guessing one account.
    - client: `client_free` failures over any accounts, so one address cannot try a password on
      every account ("spraying").
    - account: `account_free` failures from everywhere, so many addresses together are slowed
      down too; but each (account, client) pair adds at most `pair_free` to it, so an attacker
      behind one address (or one IPv6 /64) can never make the real user wait: the real user's
      own pair and address are clean, and a right password from there logs in at once.

    An attempt counts as failed from the moment it is let through (`begin`) until `succeeded`
    says otherwise, so parallel attempts cannot all pass before the first failure is recorded;
    `failed` restarts the wait once the password hash has answered.
    Memory is bounded: each kind keeps at most `max_entries` keys and evicts the one that failed
    longest ago. Used from the event loop only (no locks).
    """

    def __init__(
        self,
        *,
        pair_free: int = 5,
        client_free: int = 20,
        account_free: int = 50,
        base: float = 1.0,
        cap: float = 300.0,
        forget_after: float = 3600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base, self.cap, self.forget_after, self._clock = base, cap, forget_after, clock
        self._pairs = _Buckets(pair_free, max_entries)
        self._clients = _Buckets(client_free, max_entries)
        self._accounts = _Buckets(account_free, max_entries)

    def wait(self, account: str, client: str) -> float:
        """Seconds before `client` may try `account` again (0: now)."""
        now, client = self._clock(), _client_key(client)
        return max(
            self._pairs.wait((account, client), now, self),
            self._clients.wait(client, now, self),
            self._accounts.wait(account, now, self),
        )

    def begin(self, account: str, client: str) -> float:
        """Let an attempt through and count it as failed (returns 0), or say how long to wait."""
        wait = self.wait(account, client)
        if wait > 0:
            return wait
        now, client = self._clock(), _client_key(client)
        if self._pairs.add((account, client), now, self) <= self._pairs.free:
            self._accounts.add(account, now, self)
        self._clients.add(client, now, self)
        return 0.0

    def failed(self, account: str, client: str) -> None:
        """The attempt let through by `begin` had a wrong password: the wait starts now, after the
        hash, not when the attempt began."""
        now, client = self._clock(), _client_key(client)
        for buckets, key in (
            (self._pairs, (account, client)),
            (self._clients, client),
            (self._accounts, account),
        ):
            buckets.touch(key, now)

    def succeeded(self, account: str, client: str) -> None:
        """The attempt let through by `begin` had the right password: forget the pair's failures."""
        client = _client_key(client)
        pair = self._pairs.pop((account, client))
        if pair is not None and pair.count <= self._pairs.free:
            self._accounts.undo(account)
        self._clients.undo(client)

    def size(self) -> int:
        return len(self._pairs) + len(self._clients) + len(self._accounts)


def _client_key(address: str) -> str:
    """One key per client: an IPv6 address counts by its /64, which one host or home gets."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def trusted_networks(spec: str | Iterable[str]) -> tuple[Network, ...]:
    """Networks from addresses or CIDRs (a comma-separated string or a list, e.g. from settings)."""
    items = spec.split(",") if isinstance(spec, str) else spec
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def client_address(connection: HTTPConnection, trusted: tuple[Network, ...] = ()) -> str:
    """The client's address: the peer, or behind trusted proxies the rightmost untrusted hop of
    X-Forwarded-For (hops left of it were written by the client and prove nothing)."""
    address = connection.client.host if connection.client else "unknown"
    if not _within(address, trusted):
        return address
    forwarded = ",".join(connection.headers.getlist("x-forwarded-for"))
    for hop in reversed([hop.strip() for hop in forwarded.split(",")]):
        if not _is_ip(hop):
            break  # not an address: keep the last one a trusted proxy vouched for
        address = hop
        if not _within(hop, trusted):
            break
    return address


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
