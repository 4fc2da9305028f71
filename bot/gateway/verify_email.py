"""The page behind the link in an address confirmation mail: /verify-email?token=….

Opening the link only shows a button; the address is confirmed when the button is pressed (a
POST). Mail scanners and link previews open links on their own, and must not confirm an address
nobody looked at. The token is single use, expires after 24 hours, and the page says which of
these went wrong without saying whose address it was."""

from __future__ import annotations

import html
from functools import partial

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bot.crm.mail import Confirmation, confirm_address, look_up, mask
from bot.crm.models import utcnow
from bot.gateway.store import Crm

MAX_FORM_BYTES = 1024
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the address bar
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
MESSAGES = {
    Confirmation.CONFIRMED: ("Thank you!", "Your email address is confirmed. You can close this page."),
    Confirmation.EXPIRED: (
        "This link has expired",
        "Links to confirm an address work for 24 hours. Tell us your email address again in the chat, "
        "and we'll send you a new one.",
    ),
    Confirmation.USED: (
        "This link has already been used",
        "This address was confirmed already, or a newer link was sent. Nothing else to do here.",
    ),
    Confirmation.UNKNOWN: (
        "This link isn't valid",
        "Please copy the whole link from the mail, or tell us your email address again in the chat.",
    ),
}


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · CareLoop</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.6rem 1.2rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=HEADERS)


def outcome_page(state: Confirmation) -> HTMLResponse:
    title, text = MESSAGES[state]
    status = {Confirmation.CONFIRMED: 200, Confirmation.UNKNOWN: 404}.get(state, 410)
    return page(title, f"<p>{html.escape(text)}</p>", status)


class EmailVerificationPages:
    """GET shows the confirm button for a valid link; POST confirms it."""

    def __init__(self, crm: Crm) -> None:
        self.crm = crm

    async def show(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        state, address = await self.crm.run(partial(_pending_address, token=token))
        if state is not Confirmation.CONFIRMED or address is None:
            return outcome_page(state)
        form = (
            f"<p>Confirm <strong>{html.escape(mask(address))}</strong> as the email address of your "
            "CareLoop account?</p>"
            '<form method="post" action="/verify-email">'
            f'<input type="hidden" name="token" value="{html.escape(token)}">'
            '<button type="submit">Confirm my email address</button></form>'
        )
        return page("Confirm your email address", form)

    async def confirm(self, request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            return outcome_page(Confirmation.UNKNOWN)
        form = await request.form(max_files=0, max_fields=4)
        token = form.get("token")
        state = await self.crm.run(partial(confirm_address, token=token if isinstance(token, str) else ""))
        return outcome_page(state)


def _pending_address(session: Session, *, token: str) -> tuple[Confirmation, str | None]:
    state, verification = look_up(session=session, token=token, now=utcnow())
    return state, verification.address if verification is not None else None
