"""The demo shop page: a small shop that embeds the chat widget with one script tag, as any site would."""

from __future__ import annotations

import secrets
from functools import lru_cache

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bot.settings import PROJECT_ROOT

DEMO_PAGE = PROJECT_ROOT / "bot" / "webchat" / "demo" / "shop.html"


@lru_cache(maxsize=1)
def _template() -> str:
    return DEMO_PAGE.read_text(encoding="utf-8")


async def demo_shop(request: Request) -> Response:
    """GET / and /demo: a small coffee shop page with the widget, embedded as any site would."""
    nonce = secrets.token_urlsafe(16)
    page = _template().replace("{{nonce}}", nonce)
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
        },
    )
