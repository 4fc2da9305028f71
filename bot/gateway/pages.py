"""The demo shop page: a small shop that embeds the chat widget with one script tag, as any site would.

With demo data on (and never in production) the page has a "log in as a demo customer" switch: its
server side, like a real shop's, computes the customer's `user_hash` with WIDGET_IDENTITY_SECRET,
so the secret never reaches the browser, only the one customer's hash."""

from __future__ import annotations

import html
import json
import secrets
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bot.crm.identity import user_hash
from bot.crm.models import Customer
from bot.gateway.store import Crm
from bot.settings import PROJECT_ROOT

DEMO_PAGE = PROJECT_ROOT / "bot" / "webchat" / "demo" / "shop.html"
DEMO_CUSTOMERS = 5  # the switch offers the first customers with a shop id (the demo's personas)


@lru_cache(maxsize=1)
def _template() -> str:
    return DEMO_PAGE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class ShopCustomer:
    external_id: str
    name: str


class DemoShop:
    """GET / and /demo: the shop page; `?customer=<external id>` logs in as a demo customer."""

    def __init__(self, crm: Crm, *, identity_secret: str, logins: bool) -> None:
        self.crm, self.identity_secret, self.logins = crm, identity_secret, logins

    async def page(self, request: Request) -> Response:
        """The shop page, logged in as the chosen demo customer if the switch is on."""
        customers = await self._customers() if self.logins else []
        chosen = request.query_params.get("customer")
        current = next((c for c in customers if c.external_id == chosen), None)
        return render_shop(
            self._widget_identity(current), switch_html(customers, current) if self.logins else ""
        )

    async def _customers(self) -> list[ShopCustomer]:
        try:
            return await self.crm.run(_demo_customers)
        except SQLAlchemyError:
            return []  # the shop page still shows, with the widget for anonymous visitors

    def _widget_identity(self, customer: ShopCustomer | None) -> dict[str, str]:
        """What the shop's server puts in the page for its logged-in customer."""
        if customer is None:
            return {}
        return {
            "external_id": customer.external_id,
            "user_hash": user_hash(self.identity_secret, customer.external_id),
        }


def _demo_customers(session: Session) -> list[ShopCustomer]:
    rows = session.execute(
        select(Customer.external_id, Customer.first_name, Customer.last_name)
        .where(Customer.external_id.is_not(None), Customer.erased_at.is_(None))
        .order_by(Customer.id)
        .limit(DEMO_CUSTOMERS)
    )
    return [
        ShopCustomer(str(eid), " ".join(p for p in (first, last) if p) or str(eid))
        for eid, first, last in rows
    ]


def switch_html(customers: list[ShopCustomer], current: ShopCustomer | None) -> str:
    """The "log in as a demo customer" form (a GET form: the page's server computes the hash)."""
    options = ['<option value="">Anonymous visitor</option>']
    for customer in customers:
        selected = " selected" if customer is current else ""
        options.append(
            f'<option value="{html.escape(customer.external_id)}"{selected}>'
            f"{html.escape(customer.name)} ({html.escape(customer.external_id)})</option>"
        )
    shown = f"Logged in as {html.escape(current.name)}" if current else "Not logged in"
    return (
        '<form class="demo-login" method="get" action="/demo">'
        '<label for="demo-customer">Log in as a demo customer</label> '
        f'<select id="demo-customer" name="customer">{"".join(options)}</select> '
        '<button type="submit">Switch</button> '
        f'<span class="demo-who" id="demo-who">{shown}</span></form>'
    )


def render_shop(identity: dict[str, str], switch: str) -> Response:
    """The page under a strict policy: one nonce'd inline script, the widget's own file."""
    nonce = secrets.token_urlsafe(16)
    # json.dumps then <, > and & as escapes: nothing in the values can end the script element.
    identity_js = json.dumps(identity).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = (
        _template()
        .replace("{{nonce}}", nonce)
        .replace("{{identity}}", identity_js)
        .replace("{{login}}", switch)
    )
    policy = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data: https:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",  # a logged-in page holds that customer's hash
        },
    )
