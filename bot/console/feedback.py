"""The Feedback page in the console: every customer's feedback, comment on a rating and answer of a
customer who left, grouped by theme, with an owner and a state; an item's page with its history and
the forms that work it, "tell the customer what we changed" among them.

Agents, leads and admins use it (the `feedback` permission): they are the people who answer
customers, and telling a customer what changed is a service message written by one of them.
Marketers do not: a service message may reach customers who refused marketing, so it must not
become a marketing channel.

The rules live in `bot.crm.feedback`; these handlers read small forms, check the session's CSRF
token, and run every database call on the console's CRM workers. A refused form shows the item
again with the reason (a stale one with what changed since) and the words typed, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.console.auth import ConsoleUser
from bot.console.campaign_form import CampaignForm
from bot.console.forms import field, number, read_form
from bot.crm import feedback
from bot.crm.feedback import FeedbackError, Filters, NoSuchItem, StaleItem, Viewer
from bot.crm.models import (
    Customer,
    FeedbackEvent,
    FeedbackSource,
    FeedbackState,
    FeedbackTheme,
)

if TYPE_CHECKING:
    from bot.console.app import Console

MAX_FORM_BYTES = 8192  # the largest form is a 1,000-character message, percent-encoded
DONE = {
    "taken": "The feedback is yours now.",
    "assigned": "Owner changed.",
    "moved": "State changed.",
    "told": "Message queued: the customer gets it in their channel (in the morning if it is night "
    "there). The feedback is marked as told and done.",
}


def routes(console: Console) -> list[BaseRoute]:
    """The Feedback page, an item's page, and the changes."""
    pages = FeedbackPages(console)
    return [
        Route("/feedback", pages.list_page, methods=["GET"]),
        Route("/feedback/{item_id:int}", pages.item_page, methods=["GET"]),
        Route("/feedback/{item_id:int}/take", pages.take, methods=["POST"]),
        Route("/feedback/{item_id:int}/assign", pages.assign, methods=["POST"]),
        Route("/feedback/{item_id:int}/state", pages.move, methods=["POST"]),
        Route("/feedback/{item_id:int}/tell", pages.tell, methods=["POST"]),
    ]


class FeedbackPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def list_page(self, request: Request) -> Response:
        user = await self.console.require(request, "feedback")
        filters = Filters.parse(dict(request.query_params))
        data = await self.console.crm.run(partial(_list, user=user, filters=filters))
        return self.console.page(
            request, "feedback/list.html", user, filters=filters, choices=_choices(), **data
        )

    async def item_page(self, request: Request) -> Response:
        user = await self.console.require(request, "feedback")
        return await self._item_page(request, user, done=DONE.get(request.query_params.get("done", "")))

    async def _item_page(
        self,
        request: Request,
        user: ConsoleUser,
        *,
        error: str | None = None,
        changes: list[str] | None = None,
        typed: dict[str, str] | None = None,
        markup: list[str] | None = None,
        done: str | None = None,
        status: int = 200,
    ) -> Response:
        item_id = int(request.path_params["item_id"])
        try:
            data = await self.console.crm.run(partial(_item, user=user, item_id=item_id))
        except NoSuchItem as missing:
            raise HTTPException(404, detail=missing.message) from None
        response = self.console.page(
            request,
            "feedback/show.html",
            user,
            error=error,
            changes=changes or [],
            typed=typed or {},
            markup=markup or [],
            done=done,
            max_message=feedback.MAX_MESSAGE,
            **data,
        )
        response.status_code = status
        return response

    # ---- changes -------------------------------------------------------------------------------

    async def take(self, request: Request) -> Response:
        return await self._change(
            request, "taken", lambda viewer, form, **k: feedback.take(viewer=viewer, **k)
        )

    async def assign(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, **known: Any) -> int:
            owner = field(form, "owner_id")
            if owner and not (owner.isdigit() and len(owner) < 12):
                raise FeedbackError("Choose the person from the list.")
            return feedback.assign(viewer=viewer, owner_id=int(owner) if owner else None, **known)

        return await self._change(request, "assigned", work)

    async def move(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, **known: Any) -> int:
            return feedback.move(viewer=viewer, state=field(form, "state"), **known)

        return await self._change(request, "moved", work)

    async def tell(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, **known: Any) -> int:
            return feedback.tell_customer(viewer=viewer, message=field(form, "message"), **known)

        return await self._change(request, "told", work, typed_fields=("message",))

    async def _change(
        self,
        request: Request,
        done: str,
        work: Callable[..., int],
        typed_fields: tuple[str, ...] = (),
    ) -> Response:
        """Check the user, the form and its CSRF token, run `work` on a CRM worker; show the item
        again with the reason if it is refused."""
        user = await self.console.require(request, "feedback")
        form = await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=10)
        self.console.require_csrf(user, request.headers.get("x-csrf-token") or field(form, "csrf_token"))
        item_id = int(request.path_params["item_id"])
        version, seen = number(field(form, "version")), number(field(form, "seen")) or 0
        typed = {name: field(form, name).replace("\r\n", "\n") for name in typed_fields}
        markup = CampaignForm(message=typed.get("message", "")).markup()
        if markup and field(form, "markup_ok") != "yes":  # shown literally: say so before it goes
            return await self._refused(request, user, "", 422, [], typed, markup)

        def run(session: Session) -> int:
            viewer = Viewer(user.id, user.role)
            return work(viewer, form, session=session, item_id=item_id, version=version, seen=seen)

        try:
            await self.console.crm.run(run)
        except NoSuchItem as missing:
            raise HTTPException(404, detail=missing.message) from None
        except StaleItem as stale:
            return await self._refused(request, user, stale.message, 409, stale.changes, typed)
        except StaleDataError:  # changed by someone else between our read and our write
            changes = await self.console.crm.run(partial(feedback.changes_since, item_id=item_id, seen=seen))
            return await self._refused(request, user, StaleItem(changes).message, 409, changes, typed)
        except FeedbackError as refused:
            return await self._refused(request, user, refused.message, refused.status, [], typed)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"ok": True})
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/feedback/{item_id}?done={done}", status_code=303)

    async def _refused(
        self,
        request: Request,
        user: ConsoleUser,
        message: str,
        status: int,
        changes: list[str],
        typed: dict[str, str],
        markup: list[str] | None = None,
    ) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            error = message or "The message has markup customers would see as written: confirm it."
            return JSONResponse(
                {"error": error, "changes": changes, "markup": markup or []}, status_code=status
            )
        return await self._item_page(
            request, user, error=message or None, changes=changes, typed=typed, markup=markup, status=status
        )


def _choices() -> dict[str, list[str]]:
    return {
        "theme": [t.value for t in FeedbackTheme],
        "state": [s.value for s in FeedbackState],
        "source": [s.value for s in FeedbackSource],
    }


# ---- what the pages show (run on the console's CRM workers) ---------------------------------------


def _list(session: Session, *, user: ConsoleUser, filters: Filters) -> dict[str, Any]:
    feedback.read_themes(session=session)  # items the migration copied get their theme on first sight
    rows = feedback.items(session=session, viewer=Viewer(user.id, user.role), filters=filters)
    seen = _last_events(session, [r.id for r in rows])
    return {"groups": feedback.by_theme(rows), "total": len(rows), "seen": seen}


def _last_events(session: Session, item_ids: list[int]) -> dict[int, int]:
    """Each item's newest history line: what a form on the list has seen."""
    if not item_ids:
        return {}
    query = (
        select(FeedbackEvent.item_id, func.max(FeedbackEvent.id))
        .where(FeedbackEvent.item_id.in_(item_ids))
        .group_by(FeedbackEvent.item_id)
    )
    return dict(session.execute(query).tuples().all())


def _item(session: Session, *, user: ConsoleUser, item_id: int) -> dict[str, Any]:
    feedback.read_themes(session=session)
    item = feedback.item_of(session=session, item_id=item_id)
    viewer = Viewer(user.id, user.role)
    customer = session.get_one(Customer, item.customer_id)
    names = feedback.agent_names(session)
    events = feedback.history(session=session, item_id=item.id)
    delivery = feedback.delivery_of(session=session, item_id=item.id)
    return {
        "item": {
            "id": item.id,
            "version": item.version,
            "source": item.source,
            "text": item.text,
            "score": item.score,
            "theme": item.theme or FeedbackTheme.OTHER,
            "product": item.product,
            "competitor": item.competitor,
            "state": item.state,
            "owner": names.get(item.owner_id) if item.owner_id else None,
            "owner_id": item.owner_id,
            "mine": item.owner_id == viewer.id,
            "may_work": viewer.leads or item.owner_id == viewer.id,
            "may_take": item.owner_id != viewer.id and (item.owner_id is None or viewer.leads),
            "may_assign": item.owner_id is None or viewer.leads or item.owner_id == viewer.id,
            "created_at": item.created_at,
            "told_at": item.customer_told_at,
            "told_by": names.get(item.customer_told_by or 0),
        },
        "customer": {"name": customer.display_name, "first_name": customer.first_name or "there"},
        "delivery": {"status": delivery.status, "why": delivery.skip_reason or ""} if delivery else None,
        "seen": events[-1].id if events else 0,
        "history": [{"text": feedback.describe(e, names), "at": e.created_at} for e in events],
        "people": [{"id": a.id, "name": a.display_name} for a in feedback.people(session=session)],
        "states": list(FeedbackState),
    }
