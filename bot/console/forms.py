"""Reading a console form: its size checked before it is parsed, its fields read as plain text."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

TOO_LARGE = "The form is too large."


async def read_form(
    request: Request, *, max_bytes: int, max_fields: int = 20, too_large: str = TOO_LARGE
) -> FormData:
    """The request's form, refused before it is parsed when it does not say how long it is (411)
    or is longer than `max_bytes` (413); console forms carry no files."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise HTTPException(411, detail="The form must say how long it is.")
    if int(declared) > max_bytes:
        raise HTTPException(413, detail=too_large)
    return await request.form(max_files=0, max_fields=max_fields)


def field(form: FormData, name: str) -> str:
    """A field's text; an absent field or an uploaded file reads as empty."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def number(text: str) -> int | None:
    """A positive whole number typed in a form, or None (no signs, no 20-digit overflows)."""
    return int(text) if text.isdigit() and len(text) < 12 else None
