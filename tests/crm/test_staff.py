"""Console users and canned replies in the CRM: the rules the admin pages and the CLI share, and the
audit trail every change leaves (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.console.auth import authenticate
from bot.crm import canned, staff
from bot.crm.canned import CannedError
from bot.crm.db import make_engine
from bot.crm.desk import canned_replies
from bot.crm.migrate import upgrade
from bot.crm.models import Agent, AuditLog, Role
from bot.crm.staff import StaffError, UnknownAgent

PASSWORD = "correct horse battery"
_ids = count(1)


def make_staff(session: Session, role: Role = Role.AGENT, *, active: bool = True) -> Agent:
    agent = staff.create_agent(
        session=session,
        username=f"{role.value}{next(_ids)}",
        display_name=f"Test {role.value.title()}",
        role=role,
        password=PASSWORD,
        actor="test",
    )
    agent.active = active
    session.flush()
    return agent


def audit(session: Session, entity: str, entity_id: int) -> list[tuple[str, str, dict[str, str]]]:
    rows = session.scalars(
        select(AuditLog)
        .where(AuditLog.entity == entity, AuditLog.entity_id == entity_id)
        .order_by(AuditLog.id)
    )
    return [(row.actor, row.action, row.details) for row in rows]


# ----- users -----


def test_a_created_user_can_log_in_with_their_password(session: Session) -> None:
    agent = staff.create_agent(
        session=session,
        username="new.agent-1",
        display_name="  Nia   New ",
        role=Role.AGENT,
        password=PASSWORD,
        actor="agent:1",
    )
    assert (agent.username, agent.display_name, agent.role, agent.active) == (
        "new.agent-1",
        "Nia New",
        Role.AGENT,
        True,
    )
    assert agent.password_hash != PASSWORD
    assert authenticate(session=session, account="new.agent-1", password=PASSWORD) is agent
    assert authenticate(session=session, account="new.agent-1", password="wrong password!") is None
    assert audit(session, "agent", agent.id) == [
        ("agent:1", "agent_created", {"username": "new.agent-1", "role": "agent"})
    ]


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("ab", PASSWORD, "username"),
        ("a" * 41, PASSWORD, "username"),
        ("Has.Capitals", PASSWORD, "username"),
        ("spaces in", PASSWORD, "username"),
        ("<script>", PASSWORD, "username"),
        ("fine.name", "elevenchars", "password"),
        ("fine.name", "", "password"),
    ],
)
def test_bad_usernames_and_short_passwords_are_refused(
    session: Session, username: str, password: str, field: str
) -> None:
    with pytest.raises(StaffError) as refused:
        staff.create_agent(
            session=session,
            username=username,
            display_name="X",
            role=Role.AGENT,
            password=password,
            actor="t",
        )
    assert refused.value.field == field
    assert session.scalar(select(Agent).where(Agent.username == username)) is None


def test_a_username_is_unique_whatever_its_case(session: Session) -> None:
    session.add(Agent(username="Legacy", display_name="L", role=Role.AGENT, password_hash="x"))
    session.flush()
    with pytest.raises(StaffError, match="already taken"):
        staff.create_agent(
            session=session,
            username="legacy",
            display_name="X",
            role=Role.AGENT,
            password=PASSWORD,
            actor="t",
        )
    assert len(session.scalars(select(Agent)).all()) == 1


def test_the_last_active_admin_cannot_be_deactivated_or_demoted(session: Session) -> None:
    admin, other = make_staff(session, Role.ADMIN), make_staff(session, Role.ADMIN)
    staff.set_active(session=session, agent_id=other.id, active=False, actor_id=admin.id, actor="t")
    with pytest.raises(StaffError, match="last active admin"):
        staff.set_active(session=session, agent_id=admin.id, active=False, actor_id=None, actor="cli")
    with pytest.raises(StaffError, match="last active admin"):
        staff.change_role(session=session, agent_id=admin.id, role=Role.AGENT, actor_id=None, actor="cli")
    assert (admin.active, admin.role) == (True, Role.ADMIN)
    staff.set_active(session=session, agent_id=other.id, active=True, actor_id=admin.id, actor="t")
    staff.change_role(session=session, agent_id=admin.id, role=Role.AGENT, actor_id=other.id, actor="t")
    assert admin.role is Role.AGENT


def test_an_admin_cannot_deactivate_themself_or_change_their_own_role(session: Session) -> None:
    admin, _ = make_staff(session, Role.ADMIN), make_staff(session, Role.ADMIN)
    with pytest.raises(StaffError, match="yourself"):
        staff.set_active(session=session, agent_id=admin.id, active=False, actor_id=admin.id, actor="t")
    with pytest.raises(StaffError, match="your own role"):
        staff.change_role(session=session, agent_id=admin.id, role=Role.AGENT, actor_id=admin.id, actor="t")
    assert (admin.active, admin.role) == (True, Role.ADMIN)


def test_role_changes_deactivation_and_password_resets_are_audited(session: Session) -> None:
    admin, agent = make_staff(session, Role.ADMIN), make_staff(session)
    actor = f"agent:{admin.id}"
    staff.change_role(session=session, agent_id=agent.id, role=Role.MARKETER, actor_id=admin.id, actor=actor)
    staff.set_active(session=session, agent_id=agent.id, active=False, actor_id=admin.id, actor=actor)
    staff.set_active(session=session, agent_id=agent.id, active=True, actor_id=admin.id, actor=actor)
    staff.reset_password(session=session, agent_id=agent.id, password="a brand new secret", actor=actor)
    assert audit(session, "agent", agent.id)[1:] == [
        (actor, "agent_role_changed", {"from": "agent", "to": "marketer"}),
        (actor, "agent_deactivated", {}),
        (actor, "agent_reactivated", {}),
        (actor, "agent_password_reset", {}),
    ]
    assert authenticate(session=session, account=agent.username, password=PASSWORD) is None
    assert authenticate(session=session, account=agent.username, password="a brand new secret") is agent


def test_a_reset_needs_a_long_enough_password_and_a_real_user(session: Session) -> None:
    agent = make_staff(session)
    with pytest.raises(StaffError, match="at least 12"):
        staff.reset_password(session=session, agent_id=agent.id, password="short", actor="t")
    with pytest.raises(UnknownAgent):
        staff.reset_password(session=session, agent_id=999_999, password=PASSWORD, actor="t")
    assert authenticate(session=session, account=agent.username, password=PASSWORD) is agent


def test_the_list_shows_everyone_with_their_last_login(session: Session) -> None:
    active, gone = make_staff(session), make_staff(session, active=False)
    session.add(AuditLog(actor=f"agent:{active.id}", action="login", entity="agent", entity_id=active.id))
    session.flush()
    rows = {row.username: row for row in staff.staff(session=session)}
    assert rows[active.username].last_login_at is not None
    assert rows[gone.username].last_login_at is None and rows[gone.username].active is False
    assert list(rows).index(active.username) < list(rows).index(gone.username)


def test_generated_passwords_are_long_and_different() -> None:
    passwords = {staff.generate_password() for _ in range(20)}
    assert len(passwords) == 20 and all(len(p) >= staff.MIN_PASSWORD for p in passwords)


def test_the_cli_adds_a_user_with_the_password_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    monkeypatch.setattr("bot.ops.envfile.load_env_file", lambda path: None)  # not the developer's .env
    for name, value in (("DATABASE_URL", url), ("RASA_TOKEN", "t" * 32), ("SECRET_KEY", "s" * 32)):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    staff.main(["add", "first.admin", "--role", "admin", "--display-name", "First Admin"])
    assert "first.admin added (admin)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("too short\n"))
    with pytest.raises(SystemExit, match="at least 12"):
        staff.main(["add", "second.admin"])
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    with pytest.raises(SystemExit, match="already taken"):
        staff.main(["add", "first.admin"])
    engine = make_engine(url)
    with Session(engine) as db:
        agent = authenticate(session=db, account="first.admin", password=PASSWORD)
        assert agent is not None and (agent.role, agent.display_name) == (Role.ADMIN, "First Admin")
        assert db.scalars(select(Agent.username)).all() == ["first.admin"]
    engine.dispose()


# ----- canned replies -----


def test_an_added_reply_is_offered_to_agents_until_deactivated(session: Session) -> None:
    reply = canned.add_canned_reply(
        session=session, title="  Refund   timing ", text="\n Refunds take 3–5 days. \r\n", actor="agent:1"
    )
    assert (reply.title, reply.text) == ("Refund timing", "Refunds take 3–5 days.")
    assert "Refund timing" in [r.title for r in canned_replies(session=session)]
    canned.set_canned_reply_active(session=session, reply_id=reply.id, active=False, actor="agent:1")
    assert "Refund timing" not in [r.title for r in canned_replies(session=session)]
    assert reply in canned.all_canned_replies(session=session)
    assert [action for _, action, _ in audit(session, "canned_reply", reply.id)] == [
        "canned_reply_created",
        "canned_reply_deactivated",
    ]


@pytest.mark.parametrize(
    ("title", "text", "field"),
    [("", "text", "title"), ("   ", "text", "title"), ("t" * 81, "text", "title"), ("T", "  \n ", "text")],
)
def test_empty_or_too_long_replies_are_refused(session: Session, title: str, text: str, field: str) -> None:
    with pytest.raises(CannedError) as refused:
        canned.add_canned_reply(session=session, title=title, text=text, actor="t")
    assert refused.value.field == field


def test_a_reply_text_has_at_most_1000_characters(session: Session) -> None:
    canned.add_canned_reply(session=session, title="Long", text="x" * 1000, actor="t")
    with pytest.raises(CannedError, match="1 to 1,000"):
        canned.add_canned_reply(session=session, title="Longer", text="x" * 1001, actor="t")


def test_titles_are_unique_and_an_edit_may_keep_its_own(session: Session) -> None:
    first = canned.add_canned_reply(session=session, title="Winter hello", text="Hello!", actor="t")
    second = canned.add_canned_reply(session=session, title="Winter bye", text="Bye!", actor="t")
    with pytest.raises(CannedError, match="already a canned reply"):
        canned.add_canned_reply(session=session, title="winter HELLO", text="Hi", actor="t")
    with pytest.raises(CannedError, match="already a canned reply"):
        canned.edit_canned_reply(
            session=session, reply_id=second.id, title="WINTER hello", text="Bye", actor="t"
        )
    canned.edit_canned_reply(
        session=session, reply_id=first.id, title="Winter hello", text="Hello again!", actor="t"
    )
    assert (first.title, first.text, second.title) == ("Winter hello", "Hello again!", "Winter bye")
