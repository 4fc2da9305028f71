"""Admin campaign pages: the list, create and edit with a preview, schedule / pause / cancel, and a
campaign's sending progress, per-delivery status and reply figures.

Every change goes through `scheduler.campaigns`, the functions the CLI uses too; the running
scheduler finds a scheduled campaign in the CRM at its next sweep, so nothing else is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.console.auth import ConsoleUser
from bot.console.campaign_form import CampaignForm
from bot.console.confirm import ask, confirmed
from bot.console.forms import read_form
from bot.crm.clock import as_utc, utcnow
from bot.crm.labels import label
from bot.crm.models import Campaign, CampaignStatus, Channel, DeliveryStatus, Segment, Temperament
from scheduler.audience import PLACEHOLDERS, Audience, InvalidAudience
from scheduler.campaigns.draft import Draft, check_campaign
from scheduler.campaigns.figures import delivery_rows, figures, occurrence_figures, preview_for
from scheduler.campaigns.lifecycle import (
    TRANSITIONS,
    change_status,
    create_campaign,
    editable,
    update_campaign,
)
from scheduler.campaigns.schedule import EVERY, ZONES, Schedule, begun_somewhere, check_not_past
from scheduler.policy import zone_of
from scheduler.states import reason_label

if TYPE_CHECKING:
    from bot.console.app import Console

PERMISSION = "campaigns"
MAX_FORM_BYTES = 32_768  # a campaign form is a few kB; refuse anything far bigger before parsing it
PAGE_SIZE = 100
DONE_MESSAGES = {
    "draft": "Saved as a draft. Schedule it when it is ready.",
    "scheduled": "Scheduled. The scheduler picks it up at its next run.",
    "saved": "Your changes are saved.",
    "paused": "Paused: nothing more is sent until you resume it.",
    "cancelled": "Cancelled: messages not yet sent are dropped.",
}
ACTION_LABELS = {"schedule": "Schedule", "pause": "Pause", "cancel": "Cancel campaign"}
FIELD_NAMES = {  # the form's fields as the marketer sees them, for the list of mistakes
    "name": "Name",
    "message": "Text",
    "segments": "Segments",
    "temperaments": "Temperaments",
    "channels": "Reachable on",
    "last_contact_days_min": "Last contact at least … days ago",
    "last_contact_days_max": "… and at most … days ago",
    "churn_risk_min": "Churn risk at least",
    "date": "Date",
    "time": "Time",
    "button_1": "Button 1",
    "button_2": "Button 2",
}


def routes(console: Console, clock: Callable[[], datetime] = utcnow) -> list[BaseRoute]:
    """The campaign pages, for marketers and admins."""
    pages = CampaignPages(console, clock)
    return [
        Route("/campaigns", pages.list_page, methods=["GET"]),
        Route("/campaigns/new", pages.new_form, methods=["GET"]),
        Route("/campaigns/new", pages.create, methods=["POST"]),
        Route("/campaigns/{campaign_id:int}", pages.show, methods=["GET"]),
        Route("/campaigns/{campaign_id:int}/edit", pages.edit_form, methods=["GET"]),
        Route("/campaigns/{campaign_id:int}/edit", pages.edit, methods=["POST"]),
        Route("/campaigns/{campaign_id:int}/status", pages.change, methods=["POST"]),
        Route("/campaigns/{campaign_id:int}/progress.json", pages.progress, methods=["GET"]),
    ]


class CampaignPages:
    def __init__(self, console: Console, clock: Callable[[], datetime]) -> None:
        self.console, self.clock = console, clock

    # ----- the list -----

    async def list_page(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        rows = await self.console.crm.run(_list_rows)
        done = DONE_MESSAGES.get(request.query_params.get("done", ""))
        return self.console.page(request, "campaigns/list.html", user, rows=rows, done=done)

    # ----- create and edit -----

    async def new_form(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        tomorrow = (self.clock() + timedelta(days=1)).date().isoformat()
        return self._form_page(request, user, CampaignForm(date=tomorrow), campaign_id=None)

    async def create(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        form, intent = await self._read(request, user)
        if intent == "now":
            form = form.sending_now(self.clock())
        refused = self._refusal(request, user, form, intent, campaign_id=None)
        if refused is not None:
            return refused
        if intent == "preview":
            return await self._preview_page(request, user, form, None)
        if intent == "now":
            asking = await self._ask_send_now(request, user, form, back="/campaigns/new")
            if asking is not None:
                return asking
        try:
            campaign_id = await self.console.crm.run(
                partial(self._create, user=user, form=form, draft=intent == "draft")
            )
        except InvalidAudience as error:
            return self._form_page(request, user, form, campaign_id=None, error=str(error), status=422)
        done = "draft" if intent == "draft" else "scheduled"
        return self._redirect(request, f"/campaigns/{campaign_id}?done={done}")

    async def edit_form(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        campaign_id = int(request.path_params["campaign_id"])
        form = await self.console.crm.run(partial(self._editable_form, campaign_id=campaign_id))
        if form is None:
            return self._redirect(request, f"/campaigns/{campaign_id}")
        return self._form_page(request, user, form, campaign_id=campaign_id)

    async def edit(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        campaign_id = int(request.path_params["campaign_id"])
        form, intent = await self._read(request, user)
        if intent == "now":
            form = form.sending_now(self.clock())
        refused = self._refusal(request, user, form, intent, campaign_id=campaign_id)
        if refused is not None:
            return refused
        if intent == "preview":
            return await self._preview_page(request, user, form, campaign_id)
        if intent == "now":
            asking = await self._ask_send_now(request, user, form, back=f"/campaigns/{campaign_id}/edit")
            if asking is not None:
                return asking
        try:
            await self.console.crm.run(partial(self._update, user=user, campaign_id=campaign_id, form=form))
        except InvalidAudience as error:
            return self._form_page(request, user, form, campaign_id=campaign_id, error=str(error), status=422)
        return self._redirect(request, f"/campaigns/{campaign_id}?done=saved")

    async def _ask_send_now(
        self, request: Request, user: ConsoleUser, form: CampaignForm, *, back: str
    ) -> Response | None:
        """The "send it now to N customers?" step, unless the marketer confirmed it already; None also
        when the form is not valid (saving it then shows what to fix)."""
        posted = await request.form()  # already read and cached by _read
        if confirmed(posted):
            return None
        try:
            draft = check_campaign(**form.fields(), now=self.clock())
        except InvalidAudience:
            return None
        preview = await self.console.crm.run(partial(_preview, draft=draft, now=self.clock()))
        people = _customers(preview["consenting"])
        return ask(
            self.console,
            request,
            user,
            question=f"Send {form.name.strip() or 'this campaign'} now to {people}?",
            consequence=f"It goes out at the next minute to {people} (those in the audience who agreed to "
            "marketing messages; quiet hours still hold it for those for whom it is night). Once sent, a "
            "message cannot be taken back.",
            yes=f"Yes, send it to {people}",
            back=back,
            form=posted,
        )

    def _refusal(
        self, request: Request, user: ConsoleUser, form: CampaignForm, intent: str, *, campaign_id: int | None
    ) -> Response | None:
        """The form again with every mistake beside its field, or with the markup warning before it is
        scheduled or sent; None when it may go on. A draft may be saved with a passed date."""
        problems = form.problems(None if intent == "draft" else self.clock())
        if problems:
            return self._form_page(request, user, form, campaign_id=campaign_id, errors=problems, status=422)
        if intent in ("schedule", "now") and form.markup() and form.markup_ok != "yes":
            return self._form_page(request, user, form, campaign_id=campaign_id, status=422)
        return None

    def _create(self, session: Session, *, user: ConsoleUser, form: CampaignForm, draft: bool) -> int:
        campaign = create_campaign(
            session=session, **form.fields(), created_by=user.id, now=self.clock(), draft=draft
        )
        return campaign.id

    def _editable_form(self, session: Session, *, campaign_id: int) -> CampaignForm | None:
        """The campaign as a form, or None once sending has begun."""
        campaign = self._campaign(session, campaign_id)
        return CampaignForm.of(campaign) if editable(session=session, campaign=campaign) else None

    def _update(self, session: Session, *, user: ConsoleUser, campaign_id: int, form: CampaignForm) -> None:
        campaign = self._campaign(session, campaign_id)
        update_campaign(
            session=session,
            campaign=campaign,
            **form.fields(),
            actor=f"agent:{user.id}",
            now=self.clock(),
        )

    async def _preview_page(
        self, request: Request, user: ConsoleUser, form: CampaignForm, campaign_id: int | None
    ) -> Response:
        now = self.clock()
        try:
            draft = check_campaign(**form.fields(), now=now)
        except InvalidAudience as error:
            return self._form_page(request, user, form, campaign_id=campaign_id, error=str(error), status=422)
        preview = await self.console.crm.run(partial(_preview, draft=draft, now=now))
        return self._form_page(request, user, form, campaign_id=campaign_id, preview=preview)

    def _form_page(
        self,
        request: Request,
        user: ConsoleUser,
        form: CampaignForm,
        *,
        campaign_id: int | None,
        error: str | None = None,
        errors: dict[str, str] | None = None,
        preview: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        response = self.console.page(
            request,
            "campaigns/form.html",
            user,
            form=form,
            campaign_id=campaign_id,
            error=error,
            errors=errors or {},
            markup=form.markup(),
            field_names=FIELD_NAMES,
            preview=preview,
            placeholders=PLACEHOLDERS,
            segments=[s.value for s in Segment],
            temperaments=[t.value for t in Temperament],
            channels=[c.value for c in Channel],
            every=EVERY,
            zones=ZONES,
        )
        response.status_code = status
        return response

    # ----- one campaign -----

    async def show(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        done = DONE_MESSAGES.get(request.query_params.get("done", ""))
        return await self._show_page(request, user, int(request.path_params["campaign_id"]), done=done)

    async def progress(self, request: Request) -> Response:
        """What the campaign page's figures show, for its script to refresh them without a reload."""
        await self.console.require(request, PERMISSION)
        campaign_id = int(request.path_params["campaign_id"])
        data = await self.console.crm.run(partial(_progress_view, campaign_id=campaign_id))
        if data is None:
            return JSONResponse({"error": f"There is no campaign {campaign_id}."}, status_code=404)
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    async def change(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        campaign_id = int(request.path_params["campaign_id"])
        form = await self._form_data(request)
        self.console.require_csrf(user, str(form.get("csrf_token", "")))
        action = str(form.get("action", ""))
        if not confirmed(form):
            asking = await self.console.crm.run(
                partial(_confirmation, campaign_id=campaign_id, action=action, now=self.clock())
            )
            if asking is not None:  # an impossible action is refused below, not asked about
                question, consequence, yes = asking
                return ask(
                    self.console,
                    request,
                    user,
                    question=question,
                    consequence=consequence,
                    yes=yes,
                    back=f"/campaigns/{campaign_id}",
                    form=form,
                )
        try:
            await self.console.crm.run(
                partial(self._change, user=user, campaign_id=campaign_id, action=action)
            )
        except InvalidAudience as error:
            return await self._show_page(request, user, campaign_id, error=str(error), status=409)
        done = {"schedule": "scheduled", "pause": "paused", "cancel": "cancelled"}[action]
        return self._redirect(request, f"/campaigns/{campaign_id}?done={done}")

    def _change(self, session: Session, *, user: ConsoleUser, campaign_id: int, action: str) -> None:
        campaign = self._campaign(session, campaign_id)
        change_status(
            session=session, campaign=campaign, action=action, actor=f"agent:{user.id}", now=self.clock()
        )

    async def _show_page(
        self,
        request: Request,
        user: ConsoleUser,
        campaign_id: int,
        *,
        done: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        wanted = request.query_params.get("status", "")
        only = DeliveryStatus(wanted) if wanted in {s.value for s in DeliveryStatus} else None
        page = _page_number(request.query_params.get("page", "1"))
        context = await self.console.crm.run(
            partial(self._show_context, campaign_id=campaign_id, only=only, page=page, now=self.clock())
        )
        response = self.console.page(request, "campaigns/show.html", user, done=done, error=error, **context)
        response.status_code = status
        return response

    def _show_context(
        self, session: Session, *, campaign_id: int, only: DeliveryStatus | None, page: int, now: datetime
    ) -> dict[str, Any]:
        """What a campaign's page shows: progress, skips, one page of deliveries, the audience."""
        campaign = self._campaign(session, campaign_id)
        counts = figures(session=session, campaign_id=campaign_id)
        schedule = Schedule.parse(campaign.schedule)
        recurring = schedule.every != "once"
        occurrences = occurrence_figures(session=session, campaign_id=campaign_id) if recurring else []
        rows = delivery_rows(
            session=session,
            campaign_id=campaign_id,
            status=only,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE + 1,
        )
        audience = Audience.parse(campaign.audience)
        shown = preview_for(session=session, audience=audience, message=campaign.message, now=now)
        return {
            "campaign": campaign,
            "progress": _progress(counts),
            "skips": _skips(counts),
            "deliveries": [_delivery_view(d, c, now) for d, c in rows[:PAGE_SIZE]],
            "more": len(rows) > PAGE_SIZE,
            "page_number": page,
            "only": only.value if only else "",
            "statuses": [s.value for s in DeliveryStatus],
            "audience_size": shown.size,
            "consenting": shown.consenting,
            "sample": shown.sample.display_name if shown.sample else None,
            "sample_text": shown.text,
            "schedule": schedule,
            "occurrences": [(day, _progress(c)) for day, c in occurrences],
            "actions": [
                (a, ACTION_LABELS[a], _confirmation(session, campaign_id=campaign_id, action=a, now=now))
                for a, (sources, _) in TRANSITIONS.items()
                if campaign.status in sources
            ],
            "resume": campaign.status is CampaignStatus.PAUSED,
            "can_edit": editable(session=session, campaign=campaign),
            "now_hhmm": now.astimezone(timezone.utc).strftime("%H:%M:%S"),
        }

    # ----- plumbing -----

    @staticmethod
    def _campaign(session: Session, campaign_id: int) -> Campaign:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise HTTPException(404, detail=f"There is no campaign {campaign_id}.")
        return campaign

    async def _form_data(self, request: Request) -> FormData:
        return await read_form(
            request,
            max_bytes=MAX_FORM_BYTES,
            max_fields=100,
            too_large="The form is too large: a campaign message has at most 1,000 characters.",
        )

    async def _read(self, request: Request, user: ConsoleUser) -> tuple[CampaignForm, str]:
        form = await self._form_data(request)
        self.console.require_csrf(user, str(form.get("csrf_token", "")))
        intent = str(form.get("intent", "preview"))
        if intent not in ("preview", "draft", "schedule", "now"):
            raise HTTPException(400, detail="Unknown form action.")
        return CampaignForm.read(form), intent

    @staticmethod
    def _redirect(request: Request, path: str) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)


def _list_rows(session: Session) -> list[tuple[Campaign, dict[str, int]]]:
    campaigns = session.scalars(select(Campaign).order_by(Campaign.id.desc())).all()
    return [(c, _progress(figures(session=session, campaign_id=c.id))) for c in campaigns]


def _preview(session: Session, *, draft: Draft, now: datetime) -> dict[str, Any]:
    """The preview of a checked draft: audience size, consenting customers, one sample message."""
    shown = preview_for(session=session, audience=draft.audience, message=draft.message, now=now)
    return {
        "size": shown.size,
        "consenting": shown.consenting,
        "sample": shown.sample.display_name if shown.sample else None,
        "sample_id": shown.sample.id if shown.sample else None,
        "text": shown.text,
        "buttons": list(draft.buttons),
        "begun": begun_somewhere(draft.schedule, now),
    }


def _progress_view(session: Session, *, campaign_id: int) -> dict[str, Any] | None:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    counts = figures(session=session, campaign_id=campaign_id)
    return {
        "status": campaign.status.value,
        "status_label": label(campaign.status),
        "progress": _progress(counts),
        "skips": _skips(counts),
    }


def _confirmation(
    session: Session, *, campaign_id: int, action: str, now: datetime
) -> tuple[str, str, str] | None:
    """(question, what will happen, the yes button) before a status change, or None when the
    campaign cannot take `action` from where it is (the change itself then says why)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or action not in TRANSITIONS or campaign.status not in TRANSITIONS[action][0]:
        return None
    counts = _progress(figures(session=session, campaign_id=campaign_id))
    reach = preview_for(
        session=session, audience=Audience.parse(campaign.audience), message=campaign.message, now=now
    ).consenting
    people = _customers(reach)
    if action == "schedule" and campaign.status is CampaignStatus.PAUSED:
        return (
            f"Resume {campaign.name}?",
            f"Sending goes on: {_customers(counts['waiting'])} still waiting get it, each checked again for "
            "consent, quiet hours and the weekly cap.",
            "Yes, resume sending",
        )
    if action == "schedule":
        when = Schedule.parse(campaign.schedule)
        try:
            check_not_past(when, now)
        except InvalidAudience:
            return None  # scheduling it is refused, with why
        return (
            f"Schedule {campaign.name}?",
            f"It will go to {people} (those in the audience who agreed to marketing messages, as of now), "
            "from "
            f"{when.start.isoformat()} at {when.at.strftime('%H:%M')} "
            f"{'UTC' if when.zone == 'utc' else 'in each customer’s own time zone'}.",
            f"Yes, schedule it for {people}",
        )
    if action == "pause":
        return (
            f"Pause {campaign.name}?",
            f"Nothing more is sent until you resume it; {_customers(counts['waiting'])} waiting keep their "
            "place. You can resume it at any time.",
            "Yes, pause sending",
        )
    return (
        f"Cancel {campaign.name}?",
        f"{_customers(counts['waiting'] if counts['total'] else reach)} will not get it. Messages already "
        f"sent ({counts['sent']}) stay sent. This cannot be undone.",
        "Yes, cancel the campaign",
    )


def _customers(count: int) -> str:
    return f"{count:,} customer" + ("" if count == 1 else "s")


def _page_number(raw: str) -> int:
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


def _progress(counts: dict[str, int]) -> dict[str, int]:
    """Totals for the progress bar: handled = sent + skipped + failed, of all deliveries."""
    skipped = sum(v for k, v in counts.items() if k.startswith("skipped:"))
    total = counts.get("total", 0)
    waiting = counts.get("queued", 0) + counts.get("sending", 0)
    return {
        "total": total,
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "skipped": skipped,
        "waiting": waiting,
        "replied": counts.get("replied", 0),
        "percent": round(100 * (total - waiting) / total) if total else 0,
    }


def _skips(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(
        ((reason_label(k.split(":", 1)[1]), v) for k, v in counts.items() if k.startswith("skipped:")),
        key=lambda item: -item[1],
    )


def _delivery_view(delivery: Any, customer: Any, now: datetime) -> dict[str, Any]:
    """One row of the delivery table: who, status, and why (skipped, failed, or still waiting)."""
    status = delivery.status.value
    reason = None
    if delivery.status is DeliveryStatus.SKIPPED:
        reason = reason_label(delivery.skip_reason)
    elif delivery.status is DeliveryStatus.FAILED:
        reason = delivery.error or "the gateway did not accept it"
    elif delivery.status is DeliveryStatus.QUEUED and delivery.skip_reason:
        reason = f"held: {reason_label(delivery.skip_reason)}"
    elif delivery.status is DeliveryStatus.QUEUED and delivery.error:
        reason = f"will retry: {delivery.error}"
    scheduled = as_utc(delivery.scheduled_for)
    zone = zone_of(customer)  # as the sender reads it
    waiting = delivery.status is DeliveryStatus.QUEUED
    return {
        "customer": customer.display_name,
        "customer_id": customer.id,
        "timezone": customer.timezone,
        "status": status,
        "reason": reason,
        "due": _local(scheduled, zone) if waiting and scheduled > now else None,
        "sent_at": _local(as_utc(delivery.sent_at), zone),
        "replied_at": _local(as_utc(delivery.replied_at), zone),
    }


def _local(moment: datetime | None, zone: tzinfo) -> dict[str, str] | None:
    """A time as the customer lived it (campaigns go out at each customer's local time), with UTC."""
    if moment is None:
        return None
    return {
        "local": moment.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "utc": moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "iso": moment.isoformat(),
    }
