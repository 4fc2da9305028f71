"""Refusals and failures inside the console's layout, with a way back: 403, 404, 500 and the rest.

A page gets the console's header (who is logged in, the sections they may open) and links back; a
script asking for JSON gets `{"error": …}`; a redirect raised as an HTTPException (to the login)
stays a redirect. The 500 page is built without the database (which may be why it failed).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

if TYPE_CHECKING:
    from bot.console.app import Console

log = logging.getLogger(__name__)

TITLES = {
    400: "The form could not be used",
    403: "Not allowed",
    404: "Not found",
    409: "That cannot be done now",
    411: "The form could not be used",
    413: "The form is too large",
    500: "Something went wrong on our side",
}
DETAILS = {
    404: "There is nothing at this address. It may have been removed, or the link is mistyped.",
    500: "The page could not be shown. Nothing you entered was lost by this error; try again in a moment.",
}


def handlers(console: Console, security_headers: dict[str, str]) -> dict[Any, Any]:
    """The console app's exception handlers (`security_headers` for the 500 page, see below)."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code < 400:  # e.g. 303 to the login page
            return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        detail = exc.detail if exc.detail and exc.detail != _reason(exc.status_code) else None
        text = detail or DETAILS.get(exc.status_code, "")
        if _wants_json(request):
            return JSONResponse({"error": text}, status_code=exc.status_code, headers=exc.headers)
        user = await console.user(request)
        return _page(console, request, exc.status_code, text, user, exc.headers)

    async def failed(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):  # nobody to answer; bot.gateway.hangups logs it once
            return PlainTextResponse("", status_code=400)
        log.error("console page failed: %s %s", request.method, request.url.path, exc_info=exc)
        if _wants_json(request):
            response: Response = JSONResponse({"error": DETAILS[500]}, status_code=500)
        else:
            response = _page(console, request, 500, DETAILS[500], None, None)
        # The server-error layer sits outside the console's header middleware: add them here.
        response.headers.update(security_headers)
        response.headers["cache-control"] = "no-store"
        return response

    return {HTTPException: refused, 500: failed}


def _page(
    console: Console,
    request: Request,
    status: int,
    text: str,
    user: Any,
    headers: dict[str, str] | None,
) -> Response:
    root = request.scope.get("root_path", "")
    section = "/" + request.url.path.removeprefix(root).strip("/").split("/", 1)[0]
    response = console.page(
        request,
        "error.html",
        user,
        status=status,
        title=TITLES.get(status, "That did not work"),
        text=text,
        section=section if section not in ("/", "/login") and status != 404 else None,
    )
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.url.path.endswith(".json")


def _reason(status: int) -> str:
    return HTTPStatus(status).phrase
