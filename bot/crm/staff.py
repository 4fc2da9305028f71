"""Console users: create them, change their role, deactivate and reactivate them, reset their password.

Every change is checked here (not only in the console), so the admin pages and the command line
`python -m bot.crm.staff add USERNAME --role agent` follow the same rules, and every change lands in
the audit log. The caller owns the session.
"""

from __future__ import annotations

import argparse
import getpass
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm.models import Agent, AuditLog, Role
from bot.crm.passwords import hash_password
from bot.crm.queries import record_audit

USERNAME = re.compile(r"[a-z0-9._-]{3,40}")
MIN_PASSWORD = 12
MAX_PASSWORD = 200  # Argon2 takes any length; this only stops a megabyte "password"
MAX_DISPLAY_NAME = 120


class StaffError(Exception):
    """The change is not allowed; the message says why, in words for the admin."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


class UnknownAgent(StaffError):
    """There is no console user with that id."""


@dataclass(frozen=True)
class StaffRow:
    """One console user as the admin list shows them."""

    id: int
    username: str
    display_name: str
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    last_seen_at: datetime | None


def check_username(username: str) -> str:
    """The username as stored, or StaffError if it has the wrong length or characters."""
    if not USERNAME.fullmatch(username):
        raise StaffError(
            "A username has 3 to 40 characters: lowercase letters, digits, dots, dashes or underscores",
            "username",
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"A password has at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise StaffError(f"A password has at most {MAX_PASSWORD} characters", "password")
    return password


def generate_password() -> str:
    """A random password to hand over once (about 120 bits)."""
    return secrets.token_urlsafe(15)


def staff(*, session: Session) -> list[StaffRow]:
    """Every console user, active ones first, then by username, with their last login."""
    last_login = (
        select(AuditLog.entity_id, func.max(AuditLog.created_at).label("at"))
        .where(AuditLog.entity == "agent", AuditLog.action == "login")
        .group_by(AuditLog.entity_id)
        .subquery()
    )
    rows = session.execute(
        select(Agent, last_login.c.at)
        .outerjoin(last_login, last_login.c.entity_id == Agent.id)
        .order_by(Agent.active.desc(), Agent.username)
    ).all()
    return [
        StaffRow(a.id, a.username, a.display_name, a.role, a.active, a.created_at, login_at, a.last_seen_at)
        for a, login_at in rows
    ]


def create_agent(
    *, session: Session, username: str, display_name: str, role: Role, password: str, actor: str
) -> Agent:
    """Add an active console user; the username is unique whatever its case."""
    username = check_username(username.strip())
    display_name = " ".join(display_name.split())
    if not display_name or len(display_name) > MAX_DISPLAY_NAME:
        raise StaffError(f"A display name has 1 to {MAX_DISPLAY_NAME} characters", "display_name")
    check_password(password)
    taken = session.scalar(select(Agent.id).where(func.lower(Agent.username) == username.lower()))
    if taken is not None:
        raise StaffError(f"The username {username} is already taken", "username")
    agent = Agent(
        username=username,
        display_name=display_name,
        role=role,
        password_hash=hash_password(password),
        active=True,
    )
    try:
        with session.begin_nested():  # a concurrent create of the same name loses here, not later
            session.add(agent)
    except IntegrityError:
        raise StaffError(f"The username {username} is already taken", "username") from None
    _audit(session, actor, "agent_created", agent, {"username": username, "role": role.value})
    return agent


def change_role(*, session: Session, agent_id: int, role: Role, actor_id: int | None, actor: str) -> Agent:
    """Give a user another role; their open sessions end at their next request."""
    agent = _agent(session, agent_id)
    if agent.role is role:
        return agent
    if agent_id == actor_id:
        raise StaffError("You cannot change your own role: ask another admin")
    if agent.role is Role.ADMIN and agent.active:
        _keep_an_admin(session, agent)
    old = agent.role
    agent.role = role
    _audit(session, actor, "agent_role_changed", agent, {"from": old.value, "to": role.value})
    return agent


def set_active(*, session: Session, agent_id: int, active: bool, actor_id: int | None, actor: str) -> Agent:
    """Deactivate (their sessions end at their next request) or reactivate a user."""
    agent = _agent(session, agent_id)
    if agent.active is active:
        return agent
    if not active:
        if agent_id == actor_id:
            raise StaffError("You cannot deactivate yourself")
        if agent.role is Role.ADMIN:
            _keep_an_admin(session, agent)
    agent.active = active
    _audit(session, actor, "agent_reactivated" if active else "agent_deactivated", agent, {})
    return agent


def reset_password(*, session: Session, agent_id: int, password: str, actor: str) -> Agent:
    """Set a new password (the old one stops working at once)."""
    agent = _agent(session, agent_id)
    agent.password_hash = hash_password(check_password(password))
    _audit(session, actor, "agent_password_reset", agent, {})
    return agent


def _agent(session: Session, agent_id: int) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise UnknownAgent(f"There is no console user {agent_id}")
    return agent


def _keep_an_admin(session: Session, leaving: Agent) -> None:
    """Refuse to lose the last active admin (locking the admins, so two admins cannot race past)."""
    admins = session.scalars(
        select(Agent.id).where(Agent.role == Role.ADMIN, Agent.active.is_(True)).with_for_update()
    ).all()
    if set(admins) <= {leaving.id}:
        raise StaffError(f"{leaving.username} is the last active admin: make someone else an admin first")


def _audit(session: Session, actor: str, action: str, agent: Agent, details: dict[str, str]) -> None:
    session.flush()
    record_audit(
        session=session, actor=actor, action=action, entity="agent", entity_id=agent.id, details=details
    )


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password (at least 12 characters): ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("the passwords differ")
        return password
    return sys.stdin.readline().rstrip("\n")


def main(argv: list[str] | None = None) -> None:
    from bot.bootstrap import bootstrap
    from bot.crm.db import session_scope

    parser = argparse.ArgumentParser(prog="python -m bot.crm.staff", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a console user; the password is read from a prompt or stdin")
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.AGENT.value)
    add.add_argument("--display-name", help="the name agents and customers see (default: the username)")
    args = parser.parse_args(argv)
    password = _read_password()
    settings = bootstrap(command=True)
    try:
        with session_scope(settings.database_url) as session:
            agent = create_agent(
                session=session,
                username=args.username,
                display_name=args.display_name or args.username,
                role=Role(args.role),
                password=password,
                actor="cli",
            )
            agent_id = agent.id
    except StaffError as error:
        raise SystemExit(error.message) from None
    print(f"console user #{agent_id} {args.username} added ({args.role})")


if __name__ == "__main__":
    main()
