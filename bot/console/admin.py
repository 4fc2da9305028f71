"""Admin pages: console users (create, change role, deactivate / reactivate, reset password) and the
canned replies agents pick from (add, edit, deactivate / reactivate).

The rules live in `bot.crm.staff` and `bot.crm.canned`; these pages read forms, check the session's
CSRF token, and show a refused form again with what the admin typed (never a password). A role
change, a deactivation or a password reset ends that user's sessions at their next request,
because `bot.console.auth.Sessions.read` re-checks all three on every request.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.console.auth import ConsoleUser
from bot.console.once import ShownOnce
from bot.crm import canned, staff
from bot.crm.canned import CannedError
from bot.crm.db import session_scope
from bot.crm.models import CannedReply, Role
from bot.crm.staff import StaffError, UnknownAgent

if TYPE_CHECKING:
    from bot.console.app import Console

MAX_FORM_BYTES = 8192  # the largest form is a 1,000-character canned reply
USERS_DONE = {
    "created": "The user is created. They can log in now.",
    "role": "Role changed. Their open sessions have ended; they log in again with the new role.",
    "deactivated": "Deactivated. Their open sessions have ended and they can no longer log in.",
    "reactivated": "Reactivated. They can log in again.",
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

    def _session(self) -> Any:
        return session_scope(self.console.settings.database_url)

    async def _post(self, request: Request) -> tuple[ConsoleUser, FormData]:
        """The admin and their form, after the permission, size and CSRF checks."""
        user = self.console.require(request, self.permission)
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            raise HTTPException(411, detail="The form must say how long it is.")
        if int(declared) > MAX_FORM_BYTES:
            raise HTTPException(413, detail="The form is too large.")
        form = await request.form()
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

    def list_page(self, request: Request) -> Response:
        user = self.console.require(request, self.permission)
        done = USERS_DONE.get(request.query_params.get("done", ""))
        token = request.query_params.get("shown", "")
        if not token:
            return self._page(request, user, done=done)
        shown = self.shown_once.take(user.id, token)
        if shown is None:  # a reload, a shared link or too late: it is never shown twice
            return self._page(request, user, done=USERS_DONE["shown"])
        return self._page(request, user, shown_password=shown)

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

        def create() -> str:
            with self._session() as session:
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
            username = await run_in_threadpool(create)
        except StaffError as error:
            return self._page(request, user, form=typed, error=error, status=422)
        if generated:
            return self._show_once(request, user, username, password)
        return self._redirect(request, "/users?done=created")

    async def change_role(self, request: Request) -> Response:
        user, form = await self._post(request)
        agent_id = int(request.path_params["agent_id"])

        def change() -> None:
            with self._session() as session:
                staff.change_role(
                    session=session,
                    agent_id=agent_id,
                    role=_role(str(form.get("role", ""))),
                    actor_id=user.id,
                    actor=f"agent:{user.id}",
                )

        return await self._row_action(request, user, change, "role")

    async def set_active(self, request: Request) -> Response:
        user, form = await self._post(request)
        agent_id = int(request.path_params["agent_id"])
        active = str(form.get("active", "")) == "yes"

        def change() -> None:
            with self._session() as session:
                staff.set_active(
                    session=session,
                    agent_id=agent_id,
                    active=active,
                    actor_id=user.id,
                    actor=f"agent:{user.id}",
                )

        return await self._row_action(request, user, change, "reactivated" if active else "deactivated")

    async def reset_password(self, request: Request) -> Response:
        user, form = await self._post(request)
        agent_id = int(request.path_params["agent_id"])
        password = str(form.get("password", ""))
        generated = not password
        if generated:
            password = staff.generate_password()

        def change() -> str:
            with self._session() as session:
                agent = staff.reset_password(
                    session=session, agent_id=agent_id, password=password, actor=f"agent:{user.id}"
                )
                return agent.username

        try:
            username = await run_in_threadpool(change)
        except UnknownAgent as error:
            raise HTTPException(404, detail=error.message) from None
        except StaffError as error:
            return self._page(request, user, error=error, status=422)
        if generated:
            return self._show_once(request, user, username, password)
        return self._redirect(request, "/users?done=password")

    async def _row_action(self, request: Request, user: ConsoleUser, change: Any, done: str) -> Response:
        try:
            await run_in_threadpool(change)
        except UnknownAgent as error:
            raise HTTPException(404, detail=error.message) from None
        except StaffError as error:
            return self._page(request, user, error=error, status=409)
        return self._redirect(request, f"/users?done={done}")

    def _page(
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
        with self._session() as session:
            rows = staff.staff(session=session)
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
        )
        response.status_code = status
        if shown_password:
            response.headers["Cache-Control"] = "no-store"  # the password is shown once, never cached
        return response


class CannedPages(_Pages):
    permission = "canned"

    def list_page(self, request: Request) -> Response:
        user = self.console.require(request, self.permission)
        return self._list(request, user, done=CANNED_DONE.get(request.query_params.get("done", "")))

    async def add(self, request: Request) -> Response:
        user, form = await self._post(request)
        typed = CannedForm.read(form)

        def save() -> None:
            with self._session() as session:
                canned.add_canned_reply(
                    session=session, title=typed.title, text=typed.text, actor=f"agent:{user.id}"
                )

        try:
            await run_in_threadpool(save)
        except CannedError as error:
            return self._list(request, user, form=typed, error=error, status=422)
        return self._redirect(request, "/canned?done=added")

    def edit_form(self, request: Request) -> Response:
        user = self.console.require(request, self.permission)
        reply_id = int(request.path_params["reply_id"])
        with self._session() as session:
            reply = self._reply(session, reply_id)
            typed = CannedForm(title=reply.title, text=reply.text)
        return self._edit_page(request, user, reply_id, typed)

    async def edit(self, request: Request) -> Response:
        user, form = await self._post(request)
        reply_id = int(request.path_params["reply_id"])
        typed = CannedForm.read(form)

        def save() -> None:
            with self._session() as session:
                self._reply(session, reply_id)
                canned.edit_canned_reply(
                    session=session,
                    reply_id=reply_id,
                    title=typed.title,
                    text=typed.text,
                    actor=f"agent:{user.id}",
                )

        try:
            await run_in_threadpool(save)
        except CannedError as error:
            return self._edit_page(request, user, reply_id, typed, error=error, status=422)
        return self._redirect(request, "/canned?done=saved")

    async def set_active(self, request: Request) -> Response:
        user, form = await self._post(request)
        reply_id = int(request.path_params["reply_id"])
        active = str(form.get("active", "")) == "yes"

        def change() -> None:
            with self._session() as session:
                self._reply(session, reply_id)
                canned.set_canned_reply_active(
                    session=session, reply_id=reply_id, active=active, actor=f"agent:{user.id}"
                )

        await run_in_threadpool(change)
        return self._redirect(request, f"/canned?done={'reactivated' if active else 'deactivated'}")

    def _list(
        self,
        request: Request,
        user: ConsoleUser,
        *,
        form: CannedForm | None = None,
        error: CannedError | None = None,
        done: str | None = None,
        status: int = 200,
    ) -> Response:
        with self._session() as session:
            replies = canned.all_canned_replies(session=session)
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
    def _reply(session: Any, reply_id: int) -> CannedReply:
        reply = session.get(CannedReply, reply_id)
        if reply is None:
            raise HTTPException(404, detail=f"There is no canned reply {reply_id}.")
        return reply


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise StaffError("Choose a role: agent, marketer or admin", "role") from None
