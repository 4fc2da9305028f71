"""The console's ASGI app: login, logout and the role-aware home; other pages mount their routes here."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot.console import admin, campaigns, reports
from bot.console.auth import (
    SESSION_COOKIE,
    ConsoleUser,
    LoginThrottle,
    Sessions,
    authenticate,
    check_secret,
    client_address,
    csrf_ok,
)
from bot.crm.db import session_scope
from bot.crm.queries import record_audit
from bot.gateway.store import Crm
from bot.ops.status import supervised_services
from bot.settings import Settings

HERE = Path(__file__).resolve().parent
LOGIN_CSRF_COOKIE = "careloop_login_csrf"


class Console:
    """What console pages share: settings, the CRM, sessions, templates, and the permission check.

    Every page's database work and password hashing goes through `crm.run`, off the event loop
    that also serves every customer's socket."""

    def __init__(self, settings: Settings, crm: Crm) -> None:
        check_secret(settings.secret_key, settings.environment)
        self.settings = settings
        self.crm = crm
        self.sessions = Sessions(settings.secret_key)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes .html
        self.throttle = LoginThrottle()
        self.secure_cookies = settings.environment == "production"

    async def user(self, connection: HTTPConnection) -> ConsoleUser | None:
        """The logged-in user behind the request's or websocket's session cookie, if any."""
        return await self.crm.run(partial(self.sessions.read, connection.cookies.get(SESSION_COOKIE)))

    async def require(self, request: Request, permission: str | None = None) -> ConsoleUser:
        """The logged-in user allowed `permission`; otherwise to the login page (303) or 403."""
        user = await self.user(request)
        if user is None:
            raise HTTPException(303, headers={"Location": f"{request.scope.get('root_path', '')}/login"})
        if permission is not None and not user.may(permission):
            raise HTTPException(403, detail="Your role does not allow this page.")
        return user

    def require_csrf(self, user: ConsoleUser, token: str | None) -> None:
        if not csrf_ok(user, token):
            raise HTTPException(
                403, detail="The form expired or did not come from the console. Please try again."
            )

    def page(self, request: Request, template: str, user: ConsoleUser | None, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, template, {"user": user, **context})


def _login_page(console: Console, request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = console.page(request, "login.html", None, csrf=token, error=error)
    response.status_code = status
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=console.secure_cookies
    )
    return response


def routes(console: Console) -> list[BaseRoute]:
    """Login, logout and home."""

    def login_form(request: Request) -> Response:
        return _login_page(console, request)

    async def login(request: Request) -> Response:
        form = await request.form()
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        sent, expected = str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent, expected):
            return _login_page(console, request, "The form expired. Please try again.", 403)
        keys = (f"user:{username.lower()}", f"ip:{client_address(request)}")
        if console.throttle.blocked(*keys):
            return _login_page(console, request, "Too many failed attempts. Please wait a few minutes.", 429)
        with session_scope(console.settings.database_url) as session:
            agent = authenticate(session=session, username=username, password=password)
            if agent is None:
                console.throttle.failed(*keys)
                return _login_page(console, request, "Wrong username or password.", 401)
            cookie, _ = console.sessions.issue(agent)
            record_audit(
                session=session, actor=f"agent:{agent.id}", action="login", entity="agent", entity_id=agent.id
            )
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=console.sessions.max_age,
            httponly=True,
            samesite="lax",
            secure=console.secure_cookies,
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    async def logout(request: Request) -> Response:
        user = await console.require(request)
        form = await request.form()
        console.require_csrf(user, str(form.get("csrf_token", "")))
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def home(request: Request) -> Response:
        user = await console.require(request)
        services = await run_in_threadpool(supervised_services, console.settings.var_dir)
        return console.page(request, "home.html", user, services=services)

    return [
        Route("/", home, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="console-static"),
    ]


def create_console_app(console: Console, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The console, to be mounted by the gateway at /console (which starts and closes its CRM)."""
    app = Starlette(
        routes=[
            *extra_routes,
            *routes(console),
            *campaigns.routes(console),
            *reports.routes(console),
            *admin.routes(console),
        ]
    )
    app.state.console = console
    return app
