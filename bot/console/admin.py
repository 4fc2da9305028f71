"""Admin pages: console users (create, change role, deactivate / reactivate, reset password) and the
canned replies agents pick from (add, edit, deactivate / reactivate).

The rules live in `bot.crm.staff` and `bot.crm.canned`; these pages read forms, check the session's
CSRF token, and show a refused form again with what the admin typed (never a password). A role
change, a deactivation or a password reset ends that user's sessions at once, in the same
transaction (`bot.console.auth.end_sessions`), and "Sign out everywhere" ends them on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.console.auth import ConsoleUser, end_sessions, open_sessions
from bot.console.confirm import ask, confirmed
from bot.console.forms import read_form
from bot.console.once import ShownOnce
from bot.crm import canned, cases, staff
from bot.crm.canned import CannedError
from bot.crm.cases import CaseError
from bot.crm.models import Agent, CannedReply, Role, Team
from bot.crm.queries import record_audit
from bot.crm.staff import StaffError, UnknownAgent

if TYPE_CHECKING:
    from bot.console.app import Console

T = TypeVar("T")
MAX_FORM_BYTES = 8192  # the largest form is a 1,000-character canned reply
USERS_DONE = {
    "created": "The user is created. They can log in now.",
    "role": "Role changed. Their open sessions have ended; they log in again with the new role.",
    "deactivated": "Deactivated. Their open sessions have ended and they can no longer log in.",
    "reactivated": "Reactivated. They can log in again.",
    "signed_out": "Signed out everywhere. Their open sessions have ended; they log in again to go on.",
    "teams": "Teams saved. The Cases page shows them their teams' cases now.",
    "password": "Password changed. The old one no longer works and their open sessions have ended.",
    "shown": "A generated password is shown only once. If it was not noted, reset the password again.",
}
CANNED_DONE = {
    "added": "Added. Agents see it in their chats now.",
    "saved": "Saved.",
    "deactivated": "Deactivated. Agents no longer see it.",
    "reactivated": "Reactivated. Agents see it again.",
}


@dataclass
class UserForm:
    """The new-user form as typed; the password is never sent back to the browser."""

    username: str = ""
    display_name: str = ""
    role: str = Role.AGENT.value

    @classmethod
    def read(cls, form: FormData) -> UserForm:
        return cls(**{f.name: str(form.get(f.name, "")) for f in fields(cls)})


@dataclass
class CannedForm:
    title: str = ""
    text: str = ""

    @classmethod
    def read(cls, form: FormData) -> CannedForm:
        return cls(**{f.name: str(form.get(f.name, "")) for f in fields(cls)})


def routes(console: Console) -> list[BaseRoute]:
    """The users and canned-reply pages, for admins."""
    users, replies = UserPages(console), CannedPages(console)
    return [
        Route("/users", users.list_page, methods=["GET"]),
        Route("/users", users.create, methods=["POST"]),
        Route("/users/{agent_id:int}/role", users.change_role, methods=["POST"]),
        Route("/users/{agent_id:int}/active", users.set_active, methods=["POST"]),
        Route("/users/{agent_id:int}/password", users.reset_password, methods=["POST"]),
        Route("/users/{agent_id:int}/sessions/end", users.sign_out_everywhere, methods=["POST"]),
        Route("/users/{agent_id:int}/teams", users.set_teams, methods=["POST"]),
        Route("/canned", replies.list_page, methods=["GET"]),
        Route("/canned", replies.add, methods=["POST"]),
        Route("/canned/{reply_id:int}/edit", replies.edit_form, methods=["GET"]),
        Route("/canned/{reply_id:int}/edit", replies.edit, methods=["POST"]),
        Route("/canned/{reply_id:int}/active", replies.set_active, methods=["POST"]),
    ]


class _Pages:
    permission = ""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def _crm(self, work: Callable[..., T]) -> T:
        """Run `work(session=…)` on the console's CRM workers (it may hash a password)."""
        return await self.console.crm.run(work)

    async def _post(self, request: Request) -> tuple[ConsoleUser, FormData]:
        """The admin and their form, after the permission, size and CSRF checks."""
        user = await self.console.require(request, self.permission)
        form = await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=50)
        self.console.require_csrf(user, str(form.get("csrf_token", "")))
        return user, form

    @staticmethod
    def _redirect(request: Request, path: str) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)


class UserPages(_Pages):
    permission = "users"

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.shown_once = ShownOnce()

    async def list_page(self, request: Request) -> Response:
        user = await self.console.require(request, self.permission)
        done = USERS_DONE.get(request.query_params.get("done", ""))
        token = request.query_params.get("shown", "")
        if not token:
            return await self._page(request, user, done=done)
        shown = self.shown_once.take(user.id, token)
        if shown is None:  # a reload, a shared link or too late: it is never shown twice
            return await self._page(request, user, done=USERS_DONE["shown"])
        return await self._page(request, user, shown_password=shown)

    def _show_once(self, request: Request, user: ConsoleUser, username: str, password: str) -> Response:
        """Redirect to the list, which shows the generated password this once (see bot/console/once)."""
        token = self.shown_once.put(user.id, (username, password))
        return self._redirect(request, f"/users?shown={token}")

    async def create(self, request: Request) -> Response:
        user, form = await self._post(request)
        typed = UserForm.read(form)
        password = str(form.get("password", ""))
        generated = not password
        if generated:
            password = staff.generate_password()

        def create(session: Session) -> str:
            agent = staff.create_agent(
                session=session,
                username=typed.username,
                display_name=typed.display_name,
                role=_role(typed.role),
                password=password,
                actor=f"agent:{user.id}",
            )
            return agent.username

        try:
            username = await self._crm(create)
        except StaffError as error:
            return await self._page(request, user, form=typed, error=error, status=422)
        if generated:
            return self._show_once(request, user, username, password)
        return self._redirect(request, "/users?done=created")

    async def change_role(self, request: Request) -> Response:
        user, form = await self._post(request)
        agent_id = int(request.path_params["agent_id"])

        role = str(form.get("role", ""))

        def change(session: Session) -> None:
            staff.change_role(
                session=session,
                agent_id=agent_id,
                role=_role(role),
                actor_id=user.id,
                actor=f"agent:{user.id}",
            )
            end_sessions(session=session, agent_id=agent_id)

        return await self._row_action(request, user, change, "role")

    async def set_active(self, request: Request) -> Response:
        user, form = await self._post(request)
        agent_id = int(request.path_params["agent_id"])
        active = str(form.get("active", "")) == "yes"
        if not active and not confirmed(form):
            name = await self._name_of(agent_id)
            return ask(
                self.console,
                request,
                user,
                question=f"Deactivate {name}?",
                consequence=f"{name} is signed out everywhere at once and can no longer log in. "
                "Chats they hold go back to the queue when they are away. You can reactivate them later.",
                yes=f"Yes, deactivate {name}",
                back="/users",
                form=form,
            )

        def change(session: Session) -> None:
            staff.set_active(
                session=session, agent_id=agent_id, active=active, actor_id=user.id, actor=f"agent:{user.id}"
            )
            if not active:
                end_sessions(session=session, agent_id=agent_id)

        return await self._row_action(request, user, change, "reactivated" if active else "deactivated")

    async def reset_password(self, request: Request) -> Response:
        user, form = await self._post(request)
        agent_id = int(request.path_params["agent_id"])
        if not confirmed(form):
            name = await self._name_of(agent_id)
            return ask(
                self.console,
                request,
                user,
                question=f"Reset the password of {name}?",
                consequence=f"Their old password stops working now and every open session of {name} ends; "
                "they log in with the new one. This cannot be undone.",
                yes="Yes, reset the password",
                back="/users",
                form=form,
                password_field="password",
            )
        password = str(form.get("password", ""))
        generated = not password
        if generated:
            password = staff.generate_password()

        def change(session: Session) -> str:
            agent = staff.reset_password(
                session=session, agent_id=agent_id, password=password, actor=f"agent:{user.id}"
            )
            end_sessions(session=session, agent_id=agent_id, keep=_own(user, agent_id))
            return agent.username

        try:
            username = await self._crm(change)
        except UnknownAgent as error:
            raise HTTPException(404, detail=error.message) from None
        except StaffError as error:
            return await self._page(request, user, error=error, status=422)
        if generated:
            return self._show_once(request, user, username, password)
        return self._redirect(request, "/users?done=password")

    async def sign_out_everywhere(self, request: Request) -> Response:
        """End every open session of a user (for oneself: every other one)."""
        user, _ = await self._post(request)
        agent_id = int(request.path_params["agent_id"])

        def sign_out(session: Session) -> None:
            if session.get(Agent, agent_id) is None:
                raise UnknownAgent(f"There is no console user {agent_id}")
            ended = end_sessions(session=session, agent_id=agent_id, keep=_own(user, agent_id))
            record_audit(
                session=session,
                actor=f"agent:{user.id}",
                action="agent_signed_out",
                entity="agent",
                entity_id=agent_id,
                details={"sessions": str(ended)},
            )

        return await self._row_action(request, user, sign_out, "signed_out")

    async def _name_of(self, agent_id: int) -> str:
        """The display name of a console user, for a confirmation (404 when there is none)."""
        name = await self._crm(
            lambda session: session.scalar(select(Agent.display_name).where(Agent.id == agent_id))
        )
        if name is None:
            raise HTTPException(404, detail=f"There is no console user {agent_id}.")
        return name

    async def set_teams(self, request: Request) -> Response:
        """Put a user in the teams ticked (complaint cases of those teams are theirs to work)."""
        user, form = await self._post(request)
        agent_id = int(request.path_params["agent_id"])
        chosen = [str(team) for team in form.getlist("team")]

        def change(session: Session) -> None:
            if session.get(Agent, agent_id) is None:
                raise UnknownAgent(f"There is no console user {agent_id}")
            try:
                teams = cases.set_teams(session=session, agent_id=agent_id, teams=chosen)
            except CaseError as error:
                raise StaffError(error.message, "team") from None
            record_audit(
                session=session,
                actor=f"agent:{user.id}",
                action="agent_teams_set",
                entity="agent",
                entity_id=agent_id,
                details={"teams": ",".join(teams)},
            )

        return await self._row_action(request, user, change, "teams")

    async def _row_action(
        self, request: Request, user: ConsoleUser, change: Callable[..., Any], done: str
    ) -> Response:
        try:
            await self._crm(change)
        except UnknownAgent as error:
            raise HTTPException(404, detail=error.message) from None
        except StaffError as error:
            return await self._page(request, user, error=error, status=409)
        return self._redirect(request, f"/users?done={done}")

    async def _page(
        self,
        request: Request,
        user: ConsoleUser,
        *,
        form: UserForm | None = None,
        error: StaffError | None = None,
        done: str | None = None,
        shown_password: tuple[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        rows = await self._crm(staff.staff)
        sessions = await self._crm(open_sessions)
        agent_teams = await self._crm(cases.all_teams)
        response = self.console.page(
            request,
            "admin/users.html",
            user,
            rows=rows,
            form=form or UserForm(),
            error=error,
            done=done,
            shown_password=shown_password,
            roles=[r.value for r in Role],
            min_password=staff.MIN_PASSWORD,
            sessions=sessions,
            teams=[{"value": t.value, "label": cases.TEAM_LABEL[t]} for t in Team],
            agent_teams=agent_teams,
        )
        response.status_code = status
        if shown_password:
            response.headers["Cache-Control"] = "no-store"  # the password is shown once, never cached
        return response


class CannedPages(_Pages):
    permission = "canned"

    async def list_page(self, request: Request) -> Response:
        user = await self.console.require(request, self.permission)
        return await self._list(request, user, done=CANNED_DONE.get(request.query_params.get("done", "")))

    async def add(self, request: Request) -> Response:
        user, form = await self._post(request)
        typed = CannedForm.read(form)

        save = partial(canned.add_canned_reply, title=typed.title, text=typed.text, actor=f"agent:{user.id}")
        try:
            await self._crm(save)
        except CannedError as error:
            return await self._list(request, user, form=typed, error=error, status=422)
        return self._redirect(request, "/canned?done=added")

    async def edit_form(self, request: Request) -> Response:
        user = await self.console.require(request, self.permission)
        reply_id = int(request.path_params["reply_id"])

        def read(session: Session) -> CannedForm:
            reply = self._reply(session, reply_id)
            return CannedForm(title=reply.title, text=reply.text)

        return self._edit_page(request, user, reply_id, await self._crm(read))

    async def edit(self, request: Request) -> Response:
        user, form = await self._post(request)
        reply_id = int(request.path_params["reply_id"])
        typed = CannedForm.read(form)

        def save(session: Session) -> None:
            self._reply(session, reply_id)
            canned.edit_canned_reply(
                session=session,
                reply_id=reply_id,
                title=typed.title,
                text=typed.text,
                actor=f"agent:{user.id}",
            )

        try:
            await self._crm(save)
        except CannedError as error:
            return self._edit_page(request, user, reply_id, typed, error=error, status=422)
        return self._redirect(request, "/canned?done=saved")

    async def set_active(self, request: Request) -> Response:
        user, form = await self._post(request)
        reply_id = int(request.path_params["reply_id"])
        active = str(form.get("active", "")) == "yes"

        def change(session: Session) -> None:
            self._reply(session, reply_id)
            canned.set_canned_reply_active(
                session=session, reply_id=reply_id, active=active, actor=f"agent:{user.id}"
            )

        await self._crm(change)
        return self._redirect(request, f"/canned?done={'reactivated' if active else 'deactivated'}")

    async def _list(
        self,
        request: Request,
        user: ConsoleUser,
        *,
        form: CannedForm | None = None,
        error: CannedError | None = None,
        done: str | None = None,
        status: int = 200,
    ) -> Response:
        replies = await self._crm(canned.all_canned_replies)
        response = self.console.page(
            request,
            "admin/canned.html",
            user,
            replies=replies,
            form=form or CannedForm(),
            error=error,
            done=done,
            max_title=canned.MAX_TITLE,
            max_text=canned.MAX_TEXT,
        )
        response.status_code = status
        return response

    def _edit_page(
        self,
        request: Request,
        user: ConsoleUser,
        reply_id: int,
        form: CannedForm,
        *,
        error: CannedError | None = None,
        status: int = 200,
    ) -> Response:
        response = self.console.page(
            request,
            "admin/canned_edit.html",
            user,
            reply_id=reply_id,
            form=form,
            error=error,
            max_title=canned.MAX_TITLE,
            max_text=canned.MAX_TEXT,
        )
        response.status_code = status
        return response

    @staticmethod
    def _reply(session: Session, reply_id: int) -> CannedReply:
        reply = session.get(CannedReply, reply_id)
        if reply is None:
            raise HTTPException(404, detail=f"There is no canned reply {reply_id}.")
        return reply


def _own(user: ConsoleUser, agent_id: int) -> int | None:
    """The session to keep when an admin ends their own: the one they are using."""
    return user.session_id if agent_id == user.id else None


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise StaffError("Choose a role: agent, lead, marketer or admin", "role") from None
