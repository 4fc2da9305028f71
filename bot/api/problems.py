"""Every 4xx and 5xx of the inbound API in one shape: RFC 9457 problem details.

`{"type", "title", "status", "detail", "errors": [{"field", "reason"}]}` as `application/problem+json`.
`type` is a stable relative URI per kind of problem (a client branches on it, not on `title`);
`field` is a dotted path into the JSON sent (`lines[0].quantity`), empty for the request as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems/"

KINDS: dict[str, tuple[int, str]] = {  # slug: (status, title)
    "malformed": (400, "The body is not JSON"),
    "unauthenticated": (401, "No valid API key"),
    "read-only-key": (403, "This key may only read"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflicts with another record"),
    "unsupported-media-type": (415, "Send JSON"),
    "too-large": (413, "Too large"),
    "invalid": (422, "The request has invalid fields"),
    "rate-limited": (429, "Too many requests"),
    "server-error": (500, "Something went wrong on our side"),
}
BY_STATUS = {status: slug for slug, (status, _) in KINDS.items()}

# Pydantic's words for a pattern are the pattern; a shop's developer gets what the field takes.
PATTERN_REASONS = {
    "external_id": "is 1 to 64 ASCII characters without spaces",
    "customer_external_id": "is 1 to 64 ASCII characters without spaces",
    "product_external_id": "is 1 to 64 ASCII characters without spaces",
    "order_external_id": "is 1 to 64 ASCII characters without spaces",
    "sku": "is ASCII characters without spaces",
    "number": "is ASCII characters without spaces",
    "tracking_code": "is ASCII characters without spaces",
    "email": "is not an email address",
    "phone": "is not a phone number (digits, an optional leading +, spaces, ()./-)",
    "language": "is a language code like en or pt-BR",
    "source": "is a lower-case word like checkout or newsletter_form",
}


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


@dataclass
class Problem(Exception):
    """A refusal, raised anywhere below a route and answered by `problem_response`."""

    kind: str
    detail: str
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return KINDS[self.kind][0]

    def body(self) -> dict[str, Any]:
        return {
            "type": TYPE_BASE + self.kind,
            "title": KINDS[self.kind][1],
            "status": self.status,
            "detail": self.detail,
            "errors": [{"field": e.field, "reason": e.reason} for e in self.errors],
        }


def problem_response(problem: Problem) -> Response:
    return Response(
        json.dumps(problem.body(), ensure_ascii=False),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=dict(problem.headers),
    )


def path_of(loc: Iterable[int | str], prefix: str = "") -> str:
    """`("lines", 0, "quantity")` as `lines[0].quantity`."""
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as fields and reasons a person can act on."""
    found = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        found.append(FieldError(path_of(loc, prefix), _reason(item, loc)))
    return found


def validation_problem(error: ValidationError, prefix: str = "") -> Problem:
    errors = field_errors(error, prefix)
    count = "One field is" if len(errors) == 1 else f"{len(errors)} fields are"
    return Problem("invalid", f"{count} invalid: nothing was written.", errors)


def _reason(item: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind, message = item["type"], str(item["msg"])
    last = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if kind == "string_pattern_mismatch":
        return PATTERN_REASONS.get(last, "has characters this field does not take")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this resource"
    if kind == "string_unicode":
        return "is not valid Unicode text (a lone surrogate)"
    if kind == "timezone_aware":
        return "needs a time zone, e.g. 2026-05-01T10:00:00Z"
    return message.removeprefix("Value error, ")
