"""NLU review, for admins: what the bot did not understand or was unsure about in live chats,
confirmed or corrected in one click, and exported as a new NLU training file.

The rules live in `bot.crm.nlu_review` (what is listed, decisions) and `bot.crm.nlu_export` (the
file); this page reads Rasa's tracker store for new messages on every visit, on the console's CRM
workers like every other database call, and checks the session's CSRF token on every form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.console.auth import ConsoleUser
from bot.console.forms import read_form
from bot.crm import nlu_review
from bot.crm.nlu_export import FILE_NAME, ExportResult, export
from bot.crm.nlu_review import Item, ReviewError, Vocabulary
from bot.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from bot.console.app import Console

PERMISSION = "nlu_review"
MAX_FORM_BYTES = 1024  # a token and an intent name
LEAVE_OUT = "leave_out"
TABS = ("to_review", "reviewed")
DONE = {
    "confirmed": "Confirmed. The message left this list; it is under Reviewed until it is exported.",
    "corrected": "Corrected. The message left this list; it is under Reviewed until it is exported.",
    "left_out": "Left out: it will not be exported.",
    "reopened": "Back on the list to review.",
}


@dataclass(frozen=True)
class PageData:
    items: list[Item]
    undecided: int
    unexported: int
    tracker_found: bool


def routes(console: Console) -> list[BaseRoute]:
    pages = ReviewPages(console)
    return [
        Route("/nlu-review", pages.list_page, methods=["GET"]),
        Route("/nlu-review/{review_id:int}/decision", pages.decide, methods=["POST"]),
        Route("/nlu-review/{review_id:int}/reopen", pages.reopen, methods=["POST"]),
        Route("/nlu-review/export", pages.export, methods=["POST"]),
    ]


class ReviewPages:
    def __init__(self, console: Console, project_root: Path = PROJECT_ROOT) -> None:
        self.console, self.project_root = console, project_root

    async def list_page(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        tab = request.query_params.get("tab", TABS[0])
        if tab not in TABS:
            raise HTTPException(404, detail="There is no such tab.")
        done = DONE.get(request.query_params.get("done", ""))
        exported = self._exported_notice(request)
        return await self._page(request, user, tab, done=exported or done)

    async def decide(self, request: Request) -> Response:
        user, form = await self._post(request)
        review_id = int(request.path_params["review_id"])
        chosen = str(form.get("intent", "")).strip()
        intent = None if form.get(LEAVE_OUT) else chosen
        words = await self._vocabulary()
        if intent is not None and intent not in words.intents:
            message = f"“{intent}” is not an intent of the assistant: choose one from the list."
            return await self._page(request, user, TABS[0], error=message, status=422)
        work = partial(
            nlu_review.decide, review_id=review_id, intent=intent, agent_id=user.id, vocabulary=words
        )
        try:
            decision = await self.console.crm.run(work)
        except LookupError as missing:
            raise HTTPException(404, detail=str(missing)) from None
        except ReviewError as error:
            return await self._page(request, user, TABS[0], error=error.message, status=409)
        return self._redirect(request, f"/nlu-review?done={decision.value}")

    async def reopen(self, request: Request) -> Response:
        user, _ = await self._post(request)
        work = partial(nlu_review.reopen, review_id=int(request.path_params["review_id"]), agent_id=user.id)
        try:
            await self.console.crm.run(work)
        except LookupError as missing:
            raise HTTPException(404, detail=str(missing)) from None
        except ReviewError as error:
            return await self._page(request, user, TABS[1], error=error.message, status=409)
        return self._redirect(request, "/nlu-review?tab=reviewed&done=reopened")

    async def export(self, request: Request) -> Response:
        user, _ = await self._post(request)
        words = await self._vocabulary()
        work = partial(
            export,
            directory=self.console.settings.nlu_review_dir,
            known_data=[self.project_root / "data", self.project_root / "tests" / "nlu"],
            entities=words.entities,
            actor=f"agent:{user.id}",
        )
        try:
            result = await self.console.crm.run(work)
        except OSError as error:  # the folder is not writable: say so, lose no decision
            message = f"The export file could not be written ({error.strerror or type(error).__name__})."
            return await self._page(request, user, TABS[1], error=message, status=500)
        query = f"&file={result.file}&lines={result.lines}" if result.file else ""
        return self._redirect(request, f"/nlu-review?tab=reviewed&known={result.already_known}{query}")

    async def _page(
        self,
        request: Request,
        user: ConsoleUser,
        tab: str,
        *,
        done: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        settings = self.console.settings
        work = partial(
            _page_data,
            tab=tab,
            tracker_db=settings.rasa_tracker_db,
            threshold=settings.nlu_review_confidence,
            project_root=self.project_root,
        )
        data = await self.console.crm.run(work)
        words = await self._vocabulary()
        response = self.console.page(
            request,
            "admin/nlu_review.html",
            user,
            tab=tab,
            data=data,
            intents=words.intents,
            done=done,
            error=error,
            threshold=settings.nlu_review_confidence,
            export_dir=_shown_path(settings.nlu_review_dir, self.project_root),
            leave_out=LEAVE_OUT,
        )
        response.status_code = status
        return response

    async def _vocabulary(self) -> Vocabulary:
        """The domain's intents and entities (files read on a CRM worker, off the event loop)."""
        return await self.console.crm.run(lambda session: nlu_review.vocabulary(self.project_root))

    async def _post(self, request: Request) -> tuple[ConsoleUser, FormData]:
        """The admin and their form, after the permission, size and CSRF checks."""
        user = await self.console.require(request, PERMISSION)
        form = await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=5)
        self.console.require_csrf(user, str(form.get("csrf_token", "")))
        return user, form

    def _exported_notice(self, request: Request) -> str | None:
        params = request.query_params
        if "known" not in params:
            return None
        known = int(params["known"]) if params["known"].isdigit() else 0
        name, lines = params.get("file", ""), params.get("lines", "0")
        result = ExportResult(
            file=name if FILE_NAME.fullmatch(name) else None,
            lines=int(lines) if lines.isdigit() else 0,
            already_known=known,
        )
        summary = result.summary()
        if result.file:
            where = _shown_path(self.console.settings.nlu_review_dir / result.file, self.project_root)
            summary = summary.replace(result.file, where)
            summary += " Read it, then commit it: the next make run trains on it."
        return summary

    @staticmethod
    def _redirect(request: Request, path: str) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)


def _page_data(
    *, session: Session, tab: str, tracker_db: Path, threshold: float, project_root: Path
) -> PageData:
    """Read what is new in the tracker store, then the tab's messages and the counts."""
    fallbacks = nlu_review.fallback_actions(project_root)
    nlu_review.collect(session, tracker_db=tracker_db, threshold=threshold, fallback_actions=fallbacks)
    session.commit()  # the new messages stand even if listing them fails
    items = (
        nlu_review.to_review(session=session) if tab == "to_review" else nlu_review.reviewed(session=session)
    )
    undecided, unexported = nlu_review.waiting(session=session)
    return PageData(items, undecided, unexported, tracker_db.exists())


def _shown_path(path: Path, root: Path) -> str:
    """A path as an admin would look for it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)
