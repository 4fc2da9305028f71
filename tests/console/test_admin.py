"""The admin pages: console users and canned replies. Admins only, CSRF on every change, refused
forms that keep what was typed, changes that end a user's sessions at once, escaped output."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.crm.db import make_engine
from bot.crm.desk import canned_replies
from bot.crm.models import Agent, AuditLog, CannedReply, Role
from bot.settings import Settings
from tests.console.conftest import ConsoleClient, hand_off
from tests.console.logins import CSRF, console_app, console_crm, console_settings, csrf_of, login
from tests.gateway.harness import RunningGateway
from tests.gateway.standin_rasa import StandInRasa

NEW_PASSWORD = "a long new password"


@pytest.fixture(scope="module")
def admin_crm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated CRM (with the starter canned replies) and one console user per role."""
    path = tmp_path_factory.mktemp("admin-crm") / "crm.db"
    console_crm(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path: Path, admin_crm: Path) -> Settings:
    shutil.copy(admin_crm, tmp_path / "crm.db")
    return console_settings(f"sqlite:///{tmp_path / 'crm.db'}")


@pytest.fixture
def app(settings: Settings) -> Iterator[Starlette]:
    with console_app(settings) as app:
        yield app


def browser(app: Starlette) -> TestClient:
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def admin(app: Starlette) -> TestClient:
    client = browser(app)
    login(client, "ada")
    return client


def post(client: TestClient, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf_of(client), **data})


def crm(settings: Settings) -> Session:
    return Session(make_engine(settings.database_url), expire_on_commit=False)


def agent_named(settings: Settings, username: str) -> Agent:
    with crm(settings) as session:
        agent = session.scalar(select(Agent).where(Agent.username == username))
        assert agent is not None
        return agent


def audit_actions(settings: Settings, entity: str) -> list[tuple[str, str]]:
    with crm(settings) as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.entity == entity).order_by(AuditLog.id))
        return [(row.actor, row.action) for row in rows if row.action != "login"]


# ----- who may -----


def test_admin_pages_need_a_login(app: Starlette) -> None:
    client = browser(app)
    for path in ("/users", "/canned", "/canned/1/edit"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].endswith("/login")


@pytest.mark.parametrize("username", ["alex", "mo"])
def test_agents_and_marketers_are_refused(app: Starlette, settings: Settings, username: str) -> None:
    client = browser(app)
    token = login(client, username)
    assert "/users" not in client.get("/").text
    for path in ("/users", "/canned", "/canned/1/edit"):
        assert client.get(path).status_code == 403
    alex = agent_named(settings, "alex")
    changes = [
        ("/users", {"username": "sneaky", "display_name": "S", "role": "admin", "password": NEW_PASSWORD}),
        (f"/users/{alex.id}/role", {"role": "admin"}),
        (f"/users/{alex.id}/active", {"active": "no"}),
        (f"/users/{alex.id}/password", {"password": NEW_PASSWORD}),
        ("/canned", {"title": "Sneaky", "text": "x"}),
        ("/canned/1/active", {"active": "no"}),
    ]
    for path, data in changes:
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 403
    assert agent_named(settings, "alex").role is Role.AGENT
    assert audit_actions(settings, "agent") == [] and audit_actions(settings, "canned_reply") == []


def test_the_home_page_links_admins_to_users_and_canned_replies(admin: TestClient) -> None:
    home = admin.get("/").text
    assert 'href="/users"' in home and 'href="/canned"' in home


@pytest.mark.parametrize("who", ["alex", "mo"])
def test_only_admins_see_the_admin_sections_in_the_menu(app: Starlette, admin: TestClient, who: str) -> None:
    menu = re.compile(r'<nav aria-label="Console sections">(.*?)</nav>', re.S)
    on_a_page = menu.search(admin.get("/canned").text).group(1)  # type: ignore[union-attr]
    assert 'href="/users"' in on_a_page and 'href="/canned"' in on_a_page
    other = browser(app)
    login(other, who)
    theirs = menu.search(other.get("/").text).group(1)  # type: ignore[union-attr]
    assert "/users" not in theirs and "/canned" not in theirs


def test_every_change_needs_the_session_csrf_token(admin: TestClient, settings: Settings) -> None:
    alex = agent_named(settings, "alex")
    changes = [
        ("/users", {"username": "forged", "display_name": "F", "role": "admin", "password": NEW_PASSWORD}),
        (f"/users/{alex.id}/role", {"role": "admin"}),
        (f"/users/{alex.id}/active", {"active": "no"}),
        (f"/users/{alex.id}/password", {"password": NEW_PASSWORD}),
        ("/canned", {"title": "Forged", "text": "x"}),
        ("/canned/1/edit", {"title": "Forged", "text": "x"}),
        ("/canned/1/active", {"active": "no"}),
    ]
    for path, data in changes:
        for token in ("forged", ""):
            assert admin.post(path, data={"csrf_token": token, **data}).status_code == 403, path
    assert agent_named(settings, "alex").active and agent_named(settings, "alex").role is Role.AGENT
    assert audit_actions(settings, "agent") == [] and audit_actions(settings, "canned_reply") == []


# ----- users -----


def test_the_list_shows_every_user_with_role_and_state(admin: TestClient) -> None:
    page = admin.get("/users")
    assert page.status_code == 200
    for username, role in (("ada", "admin"), ("alex", "agent"), ("mo", "marketer")):
        row = re.search(rf'<tr class="active" data-username="{username}">(.*?)</tr>', page.text, re.S)
        assert row is not None and f"<td>{role}</td>" in row.group(1)
    ada_row = re.search(r'data-username="ada">(.*?)</tr>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert "(you)" in ada_row and "Deactivate" not in ada_row and "never" not in ada_row


def test_an_admin_creates_a_user_who_can_then_log_in(
    admin: TestClient, app: Starlette, settings: Settings
) -> None:
    response = post(
        admin, "/users", username="nia.new", display_name="Nia New", role="agent", password=NEW_PASSWORD
    )
    assert response.status_code == 303 and response.headers["location"] == "/users?done=created"
    assert "The user is created" in admin.get(response.headers["location"]).text
    nia = browser(app)
    login(nia, "nia.new", NEW_PASSWORD)
    assert "Hello, Nia New" in nia.get("/").text
    assert nia.get("/users").status_code == 403
    assert audit_actions(settings, "agent") == [(f"agent:{agent_named(settings, 'ada').id}", "agent_created")]


def test_a_user_without_a_typed_password_gets_one_shown_once(admin: TestClient, app: Starlette) -> None:
    response = post(admin, "/users", username="gen", display_name="Gen", role="marketer", password="")
    # Post, redirect, show: a reload neither resubmits the form nor shows the password again.
    assert response.status_code == 303 and response.headers["location"].startswith("/users?shown=")
    page = admin.get(response.headers["location"])
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    shown = re.search(r"The password for <strong>gen</strong> is\s+<code>([^<]+)</code>", page.text)
    assert shown is not None
    reloaded = admin.get(response.headers["location"]).text
    assert shown.group(1) not in reloaded and "is shown only once" in reloaded
    assert shown.group(1) not in admin.get("/users").text
    login(browser(app), "gen", shown.group(1))


def test_a_generated_password_is_shown_only_to_the_admin_who_made_it(
    admin: TestClient, app: Starlette
) -> None:
    location = post(admin, "/users", username="gen2", display_name="Gen", role="agent", password="")
    other_admin = browser(app)
    login(other_admin, "ada")  # the same admin in another browser may see it…
    post(admin, "/users", username="eve.admin", display_name="Eve", role="admin", password=NEW_PASSWORD)
    eve = browser(app)
    login(eve, "eve.admin", NEW_PASSWORD)
    taken = eve.get(location.headers["location"]).text  # …another admin with the link gets nothing
    assert "The password for" not in taken and "is shown only once" in taken
    assert "The password for <strong>gen2</strong>" in other_admin.get(location.headers["location"]).text


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("alex", NEW_PASSWORD, "The username alex is already taken"),
        ("ALEX", NEW_PASSWORD, "lowercase letters"),
        ("x", NEW_PASSWORD, "3 to 40 characters"),
        ("nia.new", "eleven char", "at least 12 characters"),
    ],
)
def test_a_refused_user_form_says_why_and_keeps_what_was_typed(
    admin: TestClient, settings: Settings, username: str, password: str, message: str
) -> None:
    response = post(
        admin, "/users", username=username, display_name="Nia <New>", role="marketer", password=password
    )
    assert response.status_code == 422
    page = response.text
    assert message in page
    assert f'name="username" value="{username}"' in page
    assert 'name="display_name" value="Nia &lt;New&gt;"' in page
    assert '<option value="marketer" selected>' in page
    assert password not in page  # never sent back
    with crm(settings) as session:
        assert session.scalars(select(Agent.username)).all() == ["ada", "alex", "mo"]


def test_deactivating_a_user_ends_their_open_session_at_once(
    admin: TestClient, app: Starlette, settings: Settings
) -> None:
    alex = browser(app)
    login(alex, "alex")
    assert alex.get("/").status_code == 200
    alex_id = agent_named(settings, "alex").id
    response = post(admin, f"/users/{alex_id}/active", active="no", confirmed="yes")
    assert response.status_code == 303
    after = alex.get("/")
    assert after.status_code == 303 and after.headers["location"].endswith("/login")
    token = CSRF.search(alex.get("/login").text).group(1)  # type: ignore[union-attr]
    relogin = alex.post("/login", data={"username": "alex", "password": "alex-pw", "csrf_token": token})
    assert relogin.status_code == 401
    assert post(admin, f"/users/{alex_id}/active", active="yes").status_code == 303
    login(alex, "alex")
    ada = f"agent:{agent_named(settings, 'ada').id}"
    assert audit_actions(settings, "agent") == [(ada, "agent_deactivated"), (ada, "agent_reactivated")]


def test_a_role_change_takes_effect_at_once(admin: TestClient, app: Starlette, settings: Settings) -> None:
    mo = browser(app)
    login(mo, "mo")
    assert mo.get("/campaigns").status_code == 200
    response = post(admin, f"/users/{agent_named(settings, 'mo').id}/role", role="agent")
    assert response.status_code == 303
    assert mo.get("/campaigns").status_code == 303  # the marketer's session is over
    login(mo, "mo")
    assert mo.get("/campaigns").status_code == 403
    assert agent_named(settings, "mo").role is Role.AGENT


def test_the_only_admin_cannot_deactivate_or_demote_themself(admin: TestClient, settings: Settings) -> None:
    ada_id = agent_named(settings, "ada").id
    deactivated = post(admin, f"/users/{ada_id}/active", active="no", confirmed="yes")
    assert deactivated.status_code == 409 and "You cannot deactivate yourself" in deactivated.text
    demoted = post(admin, f"/users/{ada_id}/role", role="agent")
    assert demoted.status_code == 409 and "You cannot change your own role" in demoted.text
    ada = agent_named(settings, "ada")
    assert (ada.active, ada.role) == (True, Role.ADMIN)
    assert admin.get("/users").status_code == 200
    assert audit_actions(settings, "agent") == []


def test_one_admin_can_deactivate_another(admin: TestClient, app: Starlette, settings: Settings) -> None:
    assert post(admin, f"/users/{agent_named(settings, 'alex').id}/role", role="admin").status_code == 303
    alex = browser(app)
    login(alex, "alex")
    assert (
        post(
            alex, f"/users/{agent_named(settings, 'ada').id}/active", active="no", confirmed="yes"
        ).status_code
        == 303
    )
    assert admin.get("/users").status_code == 303  # ada's session is over
    # alex is the last active admin now; the CRM refuses to lose them (tests/crm/test_staff.py)
    refused = post(alex, f"/users/{agent_named(settings, 'alex').id}/active", active="no", confirmed="yes")
    assert refused.status_code == 409
    assert agent_named(settings, "alex").active


def test_a_password_reset_replaces_the_old_password_and_ends_open_sessions(
    admin: TestClient, app: Starlette, settings: Settings
) -> None:
    alex_id = agent_named(settings, "alex").id
    open_session = browser(app)
    login(open_session, "alex")
    short = post(admin, f"/users/{alex_id}/password", password="too short", confirmed="yes")
    assert short.status_code == 422 and "at least 12 characters" in short.text
    assert open_session.get("/").status_code == 200  # a refused reset changes nothing
    assert (
        post(admin, f"/users/{alex_id}/password", password=NEW_PASSWORD, confirmed="yes").status_code == 303
    )
    assert open_session.get("/").status_code == 303
    client = browser(app)
    token = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    old = client.post("/login", data={"username": "alex", "password": "alex-pw", "csrf_token": token})
    assert old.status_code == 401
    login(client, "alex", NEW_PASSWORD)
    assert post(admin, "/users/999999/password", password=NEW_PASSWORD, confirmed="yes").status_code == 404


def test_a_generated_reset_password_survives_a_reload_of_the_page(
    admin: TestClient, app: Starlette, settings: Settings
) -> None:
    reset = post(admin, f"/users/{agent_named(settings, 'alex').id}/password", password="", confirmed="yes")
    assert reset.status_code == 303
    page = admin.get(reset.headers["location"]).text
    shown = re.search(r"The password for <strong>alex</strong> is\s+<code>([^<]+)</code>", page)
    assert shown is not None
    admin.get(reset.headers["location"])  # the reload: nothing is generated or set again
    login(browser(app), "alex", shown.group(1))


def test_user_data_is_shown_escaped(admin: TestClient, settings: Settings) -> None:
    hostile = "<script>alert(1)</script>"
    post(admin, "/users", username="xss", display_name=hostile, role="agent", password=NEW_PASSWORD)
    page = admin.get("/users").text
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ----- canned replies -----


def test_an_added_canned_reply_is_offered_to_agents(admin: TestClient, settings: Settings) -> None:
    response = post(admin, "/canned", title="  Refund timing ", text=" Refunds take 3–5 working days.\r\n")
    assert response.status_code == 303 and response.headers["location"] == "/canned?done=added"
    assert "Refund timing" in admin.get("/canned").text
    with crm(settings) as session:
        offered = {r.title: r.text for r in canned_replies(session=session)}
    assert offered["Refund timing"] == "Refunds take 3–5 working days."
    assert audit_actions(settings, "canned_reply") == [
        (f"agent:{agent_named(settings, 'ada').id}", "canned_reply_created")
    ]


def test_an_edited_or_deactivated_reply_changes_what_agents_get(
    admin: TestClient, settings: Settings
) -> None:
    with crm(settings) as session:
        reply = session.scalars(select(CannedReply).order_by(CannedReply.id)).first()
        assert reply is not None
    form = admin.get(f"/canned/{reply.id}/edit").text
    assert f'value="{reply.title}"' in form
    saved = post(admin, f"/canned/{reply.id}/edit", title="Renamed", text="New words.")
    assert saved.status_code == 303
    with crm(settings) as session:
        assert ("Renamed", "New words.") in [(r.title, r.text) for r in canned_replies(session=session)]
    assert post(admin, f"/canned/{reply.id}/active", active="no").status_code == 303
    with crm(settings) as session:
        assert "Renamed" not in [r.title for r in canned_replies(session=session)]
    page = admin.get("/canned?done=deactivated").text
    assert "Agents no longer see it" in page and "Reactivate" in page
    assert post(admin, "/canned/999999/active", active="no").status_code == 404


@pytest.mark.parametrize(
    ("title", "text", "message"),
    [
        ("", "Some text", "A title has 1 to 80 characters"),
        ("Fine title", "   ", "A reply has 1 to 1,000 characters"),
        ("Fine title", "x" * 1001, "A reply has 1 to 1,000 characters"),
    ],
)
def test_a_refused_reply_says_why_and_keeps_what_was_typed(
    admin: TestClient, settings: Settings, title: str, text: str, message: str
) -> None:
    with crm(settings) as session:
        before = session.scalars(select(CannedReply.title)).all()
    response = post(admin, "/canned", title=title, text=text)
    assert response.status_code == 422 and message in response.text
    assert f'name="title" value="{title}"' in response.text
    assert f">{text}</textarea>" in response.text
    with crm(settings) as session:
        assert session.scalars(select(CannedReply.title)).all() == before


def test_a_duplicate_title_is_refused_on_add_and_on_edit(admin: TestClient, settings: Settings) -> None:
    post(admin, "/canned", title="Opening hours", text="We are open 9–17.")
    post(admin, "/canned", title="Shipping", text="Shipping takes 2 days.")
    again = post(admin, "/canned", title="opening HOURS", text="Other text")
    assert again.status_code == 422 and "There is already a canned reply called" in again.text
    with crm(settings) as session:
        shipping = session.scalar(select(CannedReply).where(CannedReply.title == "Shipping"))
        assert shipping is not None
    edit = post(admin, f"/canned/{shipping.id}/edit", title="Opening hours", text="Changed")
    assert edit.status_code == 422 and ">Changed</textarea>" in edit.text
    with crm(settings) as session:
        assert session.get(CannedReply, shipping.id).text == "Shipping takes 2 days."  # type: ignore[union-attr]


def test_canned_replies_are_shown_escaped(admin: TestClient) -> None:
    hostile = "<script>alert(1)</script>"
    post(admin, "/canned", title=hostile, text=f"{hostile} & more")
    page = admin.get("/canned").text
    assert hostile not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2


async def test_an_agent_sees_a_new_canned_reply_in_their_chat(
    desk_gateway: RunningGateway, rasa: StandInRasa, console: dict[str, ConsoleClient]
) -> None:
    """Through the real gateway: what an admin adds is on the agent's chat page, escaped."""
    chat = await hand_off(desk_gateway, rasa)
    claim = await asyncio.to_thread(console["alex"].post, f"/handoffs/{chat.handoff_id}/claim")
    assert claim.status_code == 200, claim.text  # canned replies are offered to the agent in charge
    added = await asyncio.to_thread(
        console["ada"].post,
        "/canned",
        {"title": "Delay <b>sorry</b>", "text": "Sorry for the wait!"},
        as_json=False,
    )
    assert added.status_code == 303, added.text
    page = await asyncio.to_thread(console["alex"].http.get, f"/chats/{chat.handoff_id}")
    assert page.status_code == 200
    assert (
        'data-text="Sorry for the wait!"' in page.text
        and "Delay &lt;b&gt;sorry&lt;/b&gt;</button>" in page.text
    )


def test_deactivating_and_resetting_a_password_ask_first(admin: TestClient, settings: Settings) -> None:
    """Issue 19: without JavaScript, the destructive user changes are a second step that says what happens."""
    alex_id = agent_named(settings, "alex").id
    asked = post(admin, f"/users/{alex_id}/active", active="no")
    assert asked.status_code == 200 and "Deactivate Alex?" in asked.text
    assert "can no longer log in" in asked.text and 'name="confirmed" value="yes"' in asked.text
    assert agent_named(settings, "alex").active  # nothing happened yet
    reset = post(admin, f"/users/{alex_id}/password", password=NEW_PASSWORD)
    assert reset.status_code == 200 and "Reset the password of Alex?" in reset.text
    assert NEW_PASSWORD not in reset.text  # a password is never written back into a page: typed again there
    assert 'id="confirm-password"' in reset.text
    assert audit_actions(settings, "agent") == []
    list_page = admin.get("/users").text
    assert 'data-confirm="Deactivate Alex?' in list_page
