"""The console's ASGI app: login, logout and the role-aware home; other pages mount their routes here."""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.console import admin, campaigns, integrations, loyalty, nlu_review, notices, outbox, reports
from bot.console import cases as case_desk
from bot.console import feedback as feedback_desk
from bot.console.auth import (
    MAX_USERNAME,
    SESSION_COOKIE,
    ConsoleUser,
    LoginThrottle,
    Sessions,
    account_of,
    authenticate,
    check_secret,
    client_address,
    csrf_ok,
    trusted_networks,
)
from bot.console.error_pages import handlers as error_handlers
from bot.console.home import summary as home_summary
from bot.console.humane import duration
from bot.crm.labels import label
from bot.crm.models import utcnow
from bot.crm.queries import record_audit
from bot.gateway.store import Crm
from bot.ops.status import supervised_services
from bot.settings import Settings

HERE = Path(__file__).resolve().parent
LOGIN_CSRF_COOKIE = "careloop_login_csrf"
# Anyone may post the login form: read at most this much of it (three short fields; a password
# has at most 200 characters, up to 1,800 bytes once percent-encoded).
FORM_MAX_BYTES = 4096
FORM_MAX_FIELDS = 5
FORM_MAX_PART = 2048
SECURITY_HEADERS = {
    # Console pages load scripts, styles and sockets only from the console itself and run no
    # inline script, so an injected <script> or onerror= does nothing; nobody may frame them.
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    ),
    "X-Frame-Options": "DENY",  # for browsers without frame-ancestors
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class Console:
    """What console pages share: settings, the CRM, sessions, templates, and the permission check.

    Every page's database work and password hashing goes through `crm.run`, off the event loop
    that also serves every customer's socket."""

    def __init__(self, settings: Settings, crm: Crm) -> None:
        check_secret(settings.secret_key, settings.environment)
        self.settings = settings
        self.crm = crm
        self.sessions = Sessions(
            settings.secret_key,
            max_age=settings.console_session_max_hours * 3600,
            idle=settings.console_session_idle_minutes * 60,
        )
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes .html
        self.templates.env.filters["label"] = label  # every code a page shows, in words (bot/crm/labels)
        self.templates.env.filters["duration"] = duration
        self.throttle = LoginThrottle()
        self.trusted_proxies = trusted_networks(settings.console_trusted_proxies)
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
        try:
            form = await small_form(request)
        except FormRefused as refused:
            return _login_page(console, request, refused.message, refused.status)
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        sent, expected = str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent, expected):
            return _login_page(console, request, "The form expired. Please try again.", 403)
        account = account_of(username)
        if account is None:
            return _login_page(console, request, f"A username has at most {MAX_USERNAME} characters.", 400)
        client = client_address(request, console.trusted_proxies)
        wait = console.throttle.begin(account, client)
        if wait > 0:
            return _throttled(console, request, wait)
        cookie = await console.crm.run(partial(_sign_in, console.sessions, account, password))
        if cookie is None:
            console.throttle.failed(account, client)
            return _login_page(console, request, "Wrong username or password.", 401)
        console.throttle.succeeded(account, client)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(console.sessions.max_age),
            httponly=True,
            samesite="lax",
            secure=console.secure_cookies,
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    async def logout(request: Request) -> Response:
        user = await console.require(request)
        try:
            form = await small_form(request)
        except FormRefused as refused:
            raise HTTPException(refused.status, detail=refused.message) from None
        console.require_csrf(user, str(form.get("csrf_token", "")))
        await console.crm.run(partial(_sign_out, console.sessions, request.cookies.get(SESSION_COOKIE), user))
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def home(request: Request) -> Response:
        user = await console.require(request)
        services = await run_in_threadpool(supervised_services, console.settings.var_dir)
        summary = await console.crm.run(partial(home_summary, user=user, now=utcnow()))
        return console.page(request, "home.html", user, services=services, summary=summary)

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
            *loyalty.routes(console),
            *admin.routes(console),
            *case_desk.routes(console),
            *feedback_desk.routes(console),
            *notices.routes(console),
            *nlu_review.routes(console),
            *outbox.routes(console),
            *integrations.routes(console),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers=error_handlers(console, SECURITY_HEADERS),
    )
    app.state.console = console
    return app


def _sign_in(sessions: Sessions, account: str, password: str, *, session: Session) -> str | None:
    """Check the password (Argon2, on a CRM worker) and open a session: its cookie, or None."""
    agent = authenticate(session=session, account=account, password=password)
    if agent is None:
        return None
    cookie, _ = sessions.issue(agent, session=session)
    record_audit(
        session=session, actor=f"agent:{agent.id}", action="login", entity="agent", entity_id=agent.id
    )
    return cookie


def _sign_out(sessions: Sessions, cookie: str | None, user: ConsoleUser, *, session: Session) -> None:
    sessions.end(cookie, session=session)
    record_audit(
        session=session, actor=f"agent:{user.id}", action="logout", entity="agent", entity_id=user.id
    )


def _throttled(console: Console, request: Request, wait: float) -> Response:
    seconds = math.ceil(wait)
    when = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    message = f"Too many failed attempts. Please wait {when} and try again."
    response = _login_page(console, request, message, 429)
    response.headers["Retry-After"] = str(seconds)
    return response


class FormRefused(Exception):
    """A form beyond the small limits; the message is for the person who sent it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def small_form(request: Request) -> FormData:
    """The request's form, read only within small limits: the body stops being read past
    FORM_MAX_BYTES (413), and files, many fields or a long field are refused (400)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > FORM_MAX_BYTES):
        raise FormRefused(413, "The form is too large.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise FormRefused(413, "The form is too large.")
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    try:
        return await Request(request.scope, replay).form(
            max_files=0, max_fields=FORM_MAX_FIELDS, max_part_size=FORM_MAX_PART
        )
    except HTTPException:  # Starlette's 400 for a form beyond the limits
        raise FormRefused(400, "The form could not be read. Please use the form on this page.") from None


class SecurityHeaders:
    """Add SECURITY_HEADERS to every console response (pages, refusals, JSON, static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    # Pages show customers' data: neither the browser's cache nor its back button
                    # may show them after the logout.
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
