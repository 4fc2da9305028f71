"""Notices in the console: the scheduler's SLA clock writes them (a case at risk for its owner or
team, a promise about to be missed for the team's leads); the header counts the unread ones on
every page, the Cases page lists them, and this page lists them all with a "mark read" form.

They are rows in the CRM (bot/crm/notices.py), so a reload, a closed tab or a console restart loses
none; a person marks them read when they have seen to them.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.crm import notices

if TYPE_CHECKING:
    from bot.console.app import Console

MAX_FORM_BYTES = 1024


def routes(console: Console) -> list[BaseRoute]:
    """The Notices page, the header's count, and marking read."""

    async def page(request: Request) -> Response:
        user = await console.require(request, "cases")
        shown = await console.crm.run(partial(notices.notices_of, agent_id=user.id))
        return console.page(request, "notices/list.html", user, notices=shown)

    async def count(request: Request) -> Response:
        user = await console.require(request, "cases")
        unread = await console.crm.run(partial(notices.unread_count, agent_id=user.id))
        return JSONResponse({"unread": unread}, headers={"Cache-Control": "no-store"})

    async def read(request: Request) -> Response:
        user = await console.require(request, "cases")
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            raise HTTPException(413, detail="The form is too large.")
        form = await request.form(max_files=0, max_fields=5)
        console.require_csrf(user, str(form.get("csrf_token", "")))
        which = str(form.get("notice", ""))
        if which and not (which.isdigit() and len(which) < 12):
            raise HTTPException(400, detail="That is not one of your notices.")
        notice_id = int(which) if which else None
        await console.crm.run(partial(notices.mark_read, agent_id=user.id, notice_id=notice_id))
        back = "/cases" if str(form.get("back", "")) == "cases" else "/notices"
        return RedirectResponse(f"{request.scope.get('root_path', '')}{back}", status_code=303)

    return [
        Route("/notices", page, methods=["GET"]),
        Route("/notices.json", count, methods=["GET"]),
        Route("/notices/read", read, methods=["POST"]),
    ]
