"""A table as a CSV download, safe to open in a spreadsheet (the Reports and Loyalty pages)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from starlette.responses import Response

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """Keep a spreadsheet from running a cell such as an offer titled `=HYPERLINK(...)` as a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def csv_download(rows: Iterable[Sequence[str]], filename: str) -> Response:
    """The rows as an attachment named `filename`, every cell made spreadsheet-safe."""
    out = io.StringIO()
    csv.writer(out).writerows(tuple(spreadsheet_safe(value) for value in row) for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
