"""The case desk in the console: the Cases page (my teams' open cases, most urgent first, with
filters) and a case's page (the customer's words, the conversation, the customer record, the order,
the history and notes) with the forms that work the case.

The rules live in `bot.crm.cases`; these handlers read small forms, check the session's CSRF token,
and run every database call on the console's CRM workers. A refused form shows the case again with
the reason (a stale one with what changed since) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.console.auth import ConsoleUser
from bot.console.forms import field, number, read_form
from bot.crm import cases, drift, notices, transcript
from bot.crm.cases import CaseError, Filters, NoSuchCase, NotYourTeam, Resolution, StaleCase, Viewer
from bot.crm.models import (
    CaseEventKind,
    Complaint,
    Conversation,
    Customer,
    Direction,
    Order,
    Remedy,
    Segment,
    Severity,
    Team,
    utcnow,
)
from bot.crm.record import customer_record
from bot.crm.sla import SlaRules

if TYPE_CHECKING:
    from bot.console.app import Console

T = TypeVar("T")
MAX_FORM_BYTES = 12_288  # the largest form is a 2,000-character resolution, percent-encoded
TRANSCRIPT_LIMIT = 100
DONE = {
    "taken": "The case is yours now.",
    "moved": "State changed.",
    "assigned": "Reassigned.",
    "noted": "Note added.",
    "asked": "Question queued: the customer gets it in their channel (in the morning if it is night there).",
    "resolved": "Resolved. The customer is told what was done, and asked later whether everything is fine.",
}
TASK_DONE = "Task done: the customer's drift episode records it; it ends when they order or write again."


def routes(console: Console) -> list[BaseRoute]:
    """The Cases page, a case's page, and the changes."""
    pages = CasePages(console)
    return [
        Route("/cases", pages.list_page, methods=["GET"]),
        Route("/cases.json", pages.list_json, methods=["GET"]),
        Route("/cases/{case_id:int}", pages.case_page, methods=["GET"]),
        Route("/cases/{case_id:int}/take", pages.take, methods=["POST"]),
        Route("/cases/{case_id:int}/state", pages.move, methods=["POST"]),
        Route("/cases/{case_id:int}/assign", pages.assign, methods=["POST"]),
        Route("/cases/{case_id:int}/notes", pages.note, methods=["POST"]),
        Route("/cases/{case_id:int}/ask", pages.ask, methods=["POST"]),
        Route("/cases/{case_id:int}/resolve", pages.resolve, methods=["POST"]),
        Route("/cases/drift/{episode_id:int}/done", pages.drift_done, methods=["POST"]),
    ]


class CasePages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.rules = console.settings.sla_rules()  # how each team's clock counts (SLA_* settings)

    async def _crm(self, work: Callable[..., T]) -> T:
        return await self.console.crm.run(work)

    # ---- pages ---------------------------------------------------------------------------------

    async def list_page(self, request: Request) -> Response:
        user = await self.console.require(request, "cases")
        done = TASK_DONE if request.query_params.get("done") == "drift" else None
        return await self._list_page(request, user, done=done)

    async def _list_page(
        self, request: Request, user: ConsoleUser, *, done: str | None = None, error: str | None = None
    ) -> Response:
        filters = Filters.parse(dict(request.query_params))
        data = await self._crm(partial(_list, user=user, filters=filters, now=utcnow(), rules=self.rules))
        return self.console.page(
            request,
            "cases/list.html",
            user,
            filters=filters,
            choices=_choices(),
            labels=_labels(),
            done=done,
            error=error,
            **data,
        )

    async def drift_done(self, request: Request) -> Response:
        """A person called a drifting customer: the task is done, with a note of how it went."""
        user = await self.console.require(request, "cases")
        form = await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=5)
        self.console.require_csrf(user, field(form, "csrf_token"))
        episode_id, note = int(request.path_params["episode_id"]), field(form, "note")

        def run(session: Session) -> None:
            if not drift.sees_tasks(role=user.role, teams=cases.teams_of(session=session, agent_id=user.id)):
                raise drift.TaskError("Only the customer care team works these tasks.", status=403)
            drift.finish_task(
                session=session, episode_id=episode_id, agent_id=user.id, note=note, now=utcnow()
            )

        try:
            await self._crm(run)
        except drift.TaskError as refused:
            response = await self._list_page(request, user, error=refused.message)
            response.status_code = refused.status
            return response
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/cases?done=drift", status_code=303)

    async def list_json(self, request: Request) -> Response:
        user = await self.console.require(request, "cases")
        filters = Filters.parse(dict(request.query_params))
        data = await self._crm(partial(_list, user=user, filters=filters, now=utcnow(), rules=self.rules))
        return JSONResponse(
            {"cases": [row.view() for row in data["rows"]]}, headers={"Cache-Control": "no-store"}
        )

    async def case_page(self, request: Request) -> Response:
        user = await self.console.require(request, "cases")
        done = DONE.get(request.query_params.get("done", ""))
        return await self._case_page(request, user, done=done)

    async def _case_page(
        self,
        request: Request,
        user: ConsoleUser,
        *,
        error: str | None = None,
        changes: list[str] | None = None,
        typed: dict[str, str] | None = None,
        done: str | None = None,
        status: int = 200,
    ) -> Response:
        case_id = int(request.path_params["case_id"])
        try:
            data = await self._crm(partial(_case, user=user, case_id=case_id, now=utcnow(), rules=self.rules))
        except CaseError as refused:
            raise HTTPException(refused.status, detail=refused.message) from None
        response = self.console.page(
            request,
            "cases/show.html",
            user,
            error=error,
            changes=changes or [],
            typed=typed or {},
            done=done,
            labels=_labels(),
            remedies=[{"value": r.value, "label": cases.REMEDY_LABEL[r]} for r in Remedy],
            **data,
        )
        response.status_code = status
        return response

    # ---- changes -------------------------------------------------------------------------------

    async def take(self, request: Request) -> Response:
        return await self._change(request, "taken", lambda v, form, **k: cases.take(viewer=v, **k))

    async def move(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, **known: Any) -> Any:
            return cases.move(viewer=viewer, state=field(form, "state"), **known)

        return await self._change(request, "moved", work)

    async def assign(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, **known: Any) -> Any:
            owner = field(form, "owner_id")
            if owner and not owner.isdigit():
                raise CaseError("Choose the person from the list.")
            owner_id = int(owner) if owner else None
            return cases.reassign(viewer=viewer, owner_id=owner_id, team=field(form, "team"), **known)

        return await self._change(request, "assigned", work)

    async def note(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, *, session: Session, complaint_id: int, **_: Any) -> Any:
            return cases.add_note(
                session=session, viewer=viewer, complaint_id=complaint_id, text=field(form, "text")
            )

        return await self._change(request, "noted", work, typed_fields=("text",))

    async def ask(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, **known: Any) -> Any:
            return cases.ask_customer(viewer=viewer, question=field(form, "question"), **known)

        return await self._change(request, "asked", work, typed_fields=("question",))

    async def resolve(self, request: Request) -> Response:
        def work(viewer: Viewer, form: FormData, **known: Any) -> Any:
            typed = Resolution(field(form, "resolution"), field(form, "remedy"), field(form, "credit"))
            return cases.resolve(viewer=viewer, resolution=typed, **known)

        return await self._change(request, "resolved", work, typed_fields=("resolution", "remedy", "credit"))

    async def _change(
        self,
        request: Request,
        done: str,
        work: Callable[..., Any],
        typed_fields: tuple[str, ...] = (),
    ) -> Response:
        """Check the user, the form and its CSRF token, run `work` on a CRM worker; show the case
        again with the reason if it is refused."""
        user = await self.console.require(request, "cases")
        form = await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=20)
        self.console.require_csrf(user, request.headers.get("x-csrf-token") or field(form, "csrf_token"))
        case_id = int(request.path_params["case_id"])
        version, seen = number(field(form, "version")), number(field(form, "seen")) or 0
        typed = {name: field(form, name) for name in typed_fields}

        def run(session: Session) -> Any:
            viewer = cases.viewer_of(session=session, agent_id=user.id, role=user.role)
            return work(viewer, form, session=session, complaint_id=case_id, version=version, seen=seen)

        try:
            await self._crm(run)
        except (NoSuchCase, NotYourTeam) as refused:
            raise HTTPException(refused.status, detail=refused.message) from None
        except StaleCase as stale:
            return await self._refused(request, user, stale.message, stale.status, stale.changes, typed)
        except StaleDataError:  # changed by someone else between our read and our write
            changes = await self._crm(partial(_changes_since, case_id=case_id, seen=seen))
            return await self._refused(request, user, cases.StaleCase(changes).message, 409, changes, typed)
        except CaseError as refused:
            return await self._refused(request, user, refused.message, refused.status, [], typed)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"ok": True})
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/cases/{case_id}?done={done}", status_code=303)

    async def _refused(
        self,
        request: Request,
        user: ConsoleUser,
        message: str,
        status: int,
        changes: list[str],
        typed: dict[str, str],
    ) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": message, "changes": changes}, status_code=status)
        return await self._case_page(
            request, user, error=message, changes=changes, typed=typed, status=status
        )


def _choices() -> dict[str, list[str]]:
    return {
        "team": [t.value for t in Team],
        "state": [s.value for s in cases.STATE_LABEL],
        "severity": [s.value for s in Severity],
        "segment": [s.value for s in Segment],
        "clock": ["at_risk", "breached"],
    }


def _labels() -> dict[str, dict[str, str]]:
    return {
        "team": {t.value: label for t, label in cases.TEAM_LABEL.items()},
        "state": {s.value: label for s, label in cases.STATE_LABEL.items()},
        "clock": {"on_time": "on time", "at_risk": "at risk", "breached": "breached", "stopped": "—"},
        "remedy": {r.value: label for r, label in cases.REMEDY_LABEL.items()},
    }


# ---- what the pages show (run on the console's CRM workers) ---------------------------------------


def _list(
    session: Session, *, user: ConsoleUser, filters: Filters, now: datetime, rules: SlaRules
) -> dict[str, Any]:
    viewer = cases.viewer_of(session=session, agent_id=user.id, role=user.role)
    rows = cases.open_cases(session=session, viewer=viewer, filters=filters, now=now, rules=rules)
    tasks = drift.open_tasks(session=session) if drift.sees_tasks(role=user.role, teams=viewer.teams) else []
    return {
        "rows": rows,
        "drift_tasks": tasks,
        "my_teams": sorted(viewer.teams),
        "everything": user.role.value == "admin",
        "notices": notices.notices_of(session=session, agent_id=user.id, unread_only=True),
    }


def _changes_since(session: Session, *, case_id: int, seen: int) -> list[str]:
    names = cases.agent_names(session)
    return [
        cases.describe(e, names) for e in cases.history(session=session, complaint_id=case_id, after=seen)
    ]


def _case(
    session: Session, *, user: ConsoleUser, case_id: int, now: datetime, rules: SlaRules
) -> dict[str, Any]:
    viewer = cases.viewer_of(session=session, agent_id=user.id, role=user.role)
    complaint = cases.visible_case(session=session, viewer=viewer, complaint_id=case_id)
    customer = session.get_one(Customer, complaint.customer_id)
    names = cases.agent_names(session)
    events = cases.history(session=session, complaint_id=complaint.id)
    owner_or_lead = viewer.leads(complaint) or complaint.owner_id == viewer.id
    return {
        "case": {
            "id": complaint.id,
            "version": complaint.version,
            "state": complaint.status.value,
            "team": complaint.team,
            "category": complaint.category.value,
            "severity": complaint.severity.value,
            "priority": complaint.priority,
            "owner": names.get(complaint.owner_id) if complaint.owner_id else None,
            "owner_id": complaint.owner_id,
            "mine": complaint.owner_id == viewer.id,
            "may_work": owner_or_lead,
            "may_take": complaint.status.value in {s.value for s in cases.OPEN_STATUSES}
            and (
                complaint.owner_id is None
                or (viewer.leads(complaint) and not complaint.owner_id == viewer.id)
            ),
            "active": complaint.status in cases.OPEN_STATUSES,
            "description": complaint.description or "",
            "created_at": complaint.created_at,
            "sla_due_at": complaint.sla_due_at,
            "clock": cases.clock_of(complaint, now, rules).value,
            "resolution": complaint.resolution,
            "remedy": complaint.remedy.value if complaint.remedy else None,
            "credit_amount": complaint.credit_amount,
            "refund_id": complaint.refund_id,
        },
        "seen": events[-1].id if events else 0,
        "history": [
            {"text": cases.describe(e, names), "at": e.created_at, "kind": e.kind.value}
            for e in events
            if e.kind is not CaseEventKind.NOTE
        ],
        "notes": [
            {"text": e.text or "", "who": names.get(e.agent_id or 0, ""), "at": e.created_at}
            for e in events
            if e.kind is CaseEventKind.NOTE
        ],
        "messages": _conversation(session, complaint),
        "order": _order(session, complaint),
        "record": customer_record(
            session=session, customer_id=customer.id, conversation_id=complaint.conversation_id
        ),
        "members": [
            {"id": a.id, "name": a.display_name}
            for a in cases.team_members(session=session, team=complaint.team)
        ],
        "teams": [{"value": t.value, "label": cases.TEAM_LABEL[t]} for t in Team],
        "move_to": [s.value for s in cases.MOVABLE_BY_HAND if s in cases.MOVES[complaint.status]],
    }


def _conversation(session: Session, complaint: Complaint) -> list[dict[str, Any]]:
    if complaint.conversation_id is None or session.get(Conversation, complaint.conversation_id) is None:
        return []
    messages = transcript.recent_messages(
        session=session, conversation_id=complaint.conversation_id, limit=TRANSCRIPT_LIMIT
    )
    return [
        {
            "who": m.author.value,
            "text": m.text or "",
            "inbound": m.direction is Direction.INBOUND,
            "at": m.created_at,
        }
        for m in messages
    ]


def _order(session: Session, complaint: Complaint) -> dict[str, Any] | None:
    order = session.get(Order, complaint.order_id) if complaint.order_id else None
    if order is None:
        return None
    return {
        "number": order.number,
        "status": order.status.value,
        "total": order.total,
        "placed_at": order.placed_at,
        "delivered_at": order.delivered_at,
        "lines": [f"{line.quantity} × {line.product.name}" for line in order.lines],
    }
