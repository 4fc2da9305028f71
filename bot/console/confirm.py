"""The second step of every destructive console action: "are you sure?" with what will happen.

A form for such an action posts without `confirmed=yes` and gets this page back: the question, the
consequence (e.g. how many customers will receive it), the same fields again as a POST form with
`confirmed=yes`, and a way back. With JavaScript, static/confirm.js asks in a dialog first and posts
`confirmed=yes` at once. Fields travel in the POST body, never in a URL (a password or a campaign
text does not belong in logs or history).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from bot.console.auth import ConsoleUser

if TYPE_CHECKING:
    from bot.console.app import Console

SKIPPED = {"csrf_token", "confirmed"}


def confirmed(form: FormData) -> bool:
    return str(form.get("confirmed", "")) == "yes"


def ask(
    console: Console,
    request: Request,
    user: ConsoleUser,
    *,
    question: str,
    consequence: str,
    yes: str,
    back: str,
    form: FormData | None = None,
    fields: Iterable[tuple[str, str]] = (),
    password_field: str | None = None,
) -> Response:
    """The confirmation page for a POST to this request's URL, carrying `form`'s fields (or `fields`)."""
    carried = (
        [(k, str(v)) for k, v in form.multi_items() if k not in SKIPPED and isinstance(v, str)]
        if form
        else []
    )
    if password_field is not None:  # a password is never written back into a page: it is typed here
        carried = [(k, v) for k, v in carried if k != password_field]
    root = request.scope.get("root_path", "")
    return console.page(
        request,
        "confirm.html",
        user,
        question=question,
        consequence=consequence,
        yes=yes,
        action=f"{root}{request.url.path.removeprefix(root)}",
        fields=[*carried, *fields],
        back=f"{root}{back}",
        password_field=password_field,
    )
