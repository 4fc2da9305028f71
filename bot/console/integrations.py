"""The Integrations page (admins): API keys for the shop's systems (bot/api), and the webhooks
that tell them about CRM events (bot/crm/webhooks.py), with their delivery log and a resend.

A key's secret is shown once, right after it was made, through a redirect and a one-time token
(bot/console/once.py), so a reload neither shows it again nor makes another key; only its hash is
stored (bot/crm/integrations.py). Revoking asks first (bot/console/confirm.py) and takes effect on
the key's next request.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.console.auth import ConsoleUser
from bot.console.confirm import ask, confirmed
from bot.console.once import ShownOnce
from bot.crm import integrations, webhooks
from bot.crm.integrations import KeyRefused
from bot.crm.models import ApiScope
from bot.crm.webhooks import WebhookRefused

if TYPE_CHECKING:
    from bot.console.app import Console

PERMISSION = "integrations"
MAX_FORM_BYTES = 4096  # a name, a scope and the CSRF token; or a URL, its events and the token
DONE = {
    "revoked": "Revoked. Requests with that key are refused from now on.",
    "shown": "A key is shown only once. If it was not copied, revoke it and make a new one.",
    "hook_shown": "A signing secret is shown only once. If it was not copied, stop that webhook and add "
    "it again.",
    "hook_disabled": "Stopped. Nothing more is sent to that URL.",
    "resent": "Queued again: the scheduler sends it within a few seconds.",
}


def routes(console: Console) -> list[BaseRoute]:
    pages = IntegrationPages(console)
    return [
        Route("/integrations", pages.list_page, methods=["GET"]),
        Route("/integrations/keys", pages.create, methods=["POST"]),
        Route("/integrations/keys/{key_id:int}/revoke", pages.revoke, methods=["POST"]),
        Route("/integrations/webhooks", pages.subscribe, methods=["POST"]),
        Route("/integrations/webhooks/{subscription_id:int}/disable", pages.disable, methods=["POST"]),
        Route("/integrations/webhook-deliveries/{delivery_id:int}/resend", pages.resend, methods=["POST"]),
    ]


class IntegrationPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown_once = ShownOnce()
        self.secrets_shown_once = ShownOnce()  # webhook signing secrets, apart from API keys

    async def list_page(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        hook_token = request.query_params.get("hook", "")
        if hook_token:
            hook_shown = self.secrets_shown_once.take(user.id, hook_token)
            if hook_shown is None:
                return await self._page(request, user, done=DONE["hook_shown"])
            return await self._page(request, user, hook_shown=hook_shown)
        token = request.query_params.get("shown", "")
        if not token:
            return await self._page(request, user, done=DONE.get(request.query_params.get("done", "")))
        shown = self.shown_once.take(user.id, token)
        if shown is None:  # a reload, a shared link or too late: a secret is never shown twice
            return await self._page(request, user, done=DONE["shown"])
        return await self._page(request, user, shown=shown)

    async def create(self, request: Request) -> Response:
        user, form = await self._post(request)
        name, scope = str(form.get("name", "")), str(form.get("scope", ""))
        if scope not in {s.value for s in ApiScope}:
            return await self._page(
                request, user, error="Choose whether the key may read or also write.", name=name, status=422
            )
        try:
            row, secret = await self.console.crm.run(
                partial(integrations.create_key, name=name, scope=ApiScope(scope), agent_id=user.id)
            )
        except KeyRefused as refused:
            return await self._page(request, user, error=str(refused), name=name, status=422)
        token = self.shown_once.put(user.id, (row.name, secret))
        return self._redirect(request, f"/integrations?shown={token}")

    async def revoke(self, request: Request) -> Response:
        user, form = await self._post(request)
        key_id = int(request.path_params["key_id"])
        try:
            key = await self.console.crm.run(partial(integrations.key_named, key_id=key_id))
        except LookupError:
            raise HTTPException(404, detail="There is no such key.") from None
        if not confirmed(form):
            return ask(
                self.console,
                request,
                user,
                question=f"Revoke the key {key.name!r}?",
                consequence="Every request with this key is refused from now on (401). The shop's system "
                "that uses it stops syncing until it gets a new key. This cannot be undone.",
                yes="Yes, revoke it",
                back="/integrations",
                form=form,
            )
        await self.console.crm.run(partial(integrations.revoke_key, key_id=key_id, agent_id=user.id))
        return self._redirect(request, "/integrations?done=revoked")

    async def subscribe(self, request: Request) -> Response:
        user, form = await self._post(request)
        url, events = str(form.get("url", "")), [str(e) for e in form.getlist("events")]
        try:
            row, secret = await self.console.crm.run(
                partial(
                    webhooks.create_subscription,
                    url=url,
                    events=events,
                    agent_id=user.id,
                    environment=self.console.settings.environment,
                )
            )
        except WebhookRefused as refused:
            return await self._page(
                request, user, hook_error=str(refused), hook_url=url, hook_events=events, status=422
            )
        token = self.secrets_shown_once.put(user.id, (row.url, secret))
        return self._redirect(request, f"/integrations?hook={token}#webhooks")

    async def disable(self, request: Request) -> Response:
        user, form = await self._post(request)
        subscription_id = int(request.path_params["subscription_id"])
        if not confirmed(form):
            return ask(
                self.console,
                request,
                user,
                question="Stop sending events to this URL?",
                consequence="Nothing more is sent to it, including the deliveries still waiting. "
                "To start again, add the URL again (it gets a new secret).",
                yes="Yes, stop it",
                back="/integrations#webhooks",
                form=form,
            )
        try:
            await self.console.crm.run(
                partial(webhooks.disable_subscription, subscription_id=subscription_id, agent_id=user.id)
            )
        except LookupError:
            raise HTTPException(404, detail="There is no such webhook.") from None
        return self._redirect(request, "/integrations?done=hook_disabled#webhooks")

    async def resend(self, request: Request) -> Response:
        user, _ = await self._post(request)
        delivery_id = int(request.path_params["delivery_id"])
        try:
            await self.console.crm.run(partial(webhooks.resend, delivery_id=delivery_id, agent_id=user.id))
        except LookupError:
            raise HTTPException(404, detail="There is no such delivery.") from None
        return self._redirect(request, "/integrations?done=resent#webhooks")

    async def _post(self, request: Request) -> tuple[ConsoleUser, FormData]:
        """The admin and their form, after the permission, size and CSRF checks."""
        user = await self.console.require(request, PERMISSION)
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            raise HTTPException(411, detail="The form must say how long it is.")
        if int(declared) > MAX_FORM_BYTES:
            raise HTTPException(413, detail="The form is too large.")
        form = await request.form(max_files=0, max_fields=16, max_part_size=MAX_FORM_BYTES)
        self.console.require_csrf(user, str(form.get("csrf_token", "")))
        return user, form

    async def _page(
        self,
        request: Request,
        user: ConsoleUser,
        *,
        shown: tuple[str, str] | None = None,
        done: str | None = None,
        error: str | None = None,
        name: str = "",
        hook_shown: tuple[str, str] | None = None,
        hook_error: str | None = None,
        hook_url: str = "",
        hook_events: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        keys = await self.console.crm.run(integrations.list_keys)
        subscriptions = await self.console.crm.run(webhooks.list_subscriptions)
        deliveries = await self.console.crm.run(webhooks.recent_deliveries)
        response = self.console.page(
            request,
            "integrations/keys.html",
            user,
            keys=keys,
            shown=shown,
            done=done,
            error=error,
            name=name,
            api_url=str(request.url.replace(path="/api/v1", query="")),
            scopes=[s.value for s in ApiScope],
            subscriptions=subscriptions,
            deliveries=deliveries,
            events=webhooks.EVENTS,
            hook_shown=hook_shown,
            hook_error=hook_error,
            hook_url=hook_url,
            hook_events=hook_events,
        )
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"  # a secret is shown once, never cached
        return response

    @staticmethod
    def _redirect(request: Request, path: str) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)
