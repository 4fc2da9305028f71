"""The reports page for marketers: loyalty, save rate, satisfaction, complaints and handoffs over the
last 7, 30 or 90 days, and the same figures as CSV."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.console.downloads import csv_download
from bot.crm.clock import utcnow
from bot.crm.models import Segment
from bot.crm.reports import PERIODS, InvalidPeriod, Report, csv_rows, last_days, parse_days, report

if TYPE_CHECKING:
    from bot.console.app import Console

PERMISSION = "reports"


def routes(console: Console, clock: Callable[[], datetime] = utcnow) -> list[BaseRoute]:
    """The reports page and its CSV export, for marketers and admins."""
    pages = ReportPages(console, clock)
    return [
        Route("/reports", pages.page, methods=["GET"]),
        Route("/reports.csv", pages.export, methods=["GET"]),
    ]


class ReportPages:
    def __init__(self, console: Console, clock: Callable[[], datetime]) -> None:
        self.console, self.clock = console, clock

    async def page(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        raw = request.query_params.get("days")
        try:
            figures = await self._report(parse_days(raw), _segment(request.query_params.get("risk_segment")))
        except (InvalidPeriod, BadSegment) as error:
            asked = raw if isinstance(error, InvalidPeriod) else None
            response = self.console.page(
                request,
                "reports/page.html",
                user,
                report=None,
                error=str(error),
                asked=asked,
                periods=PERIODS,
            )
            response.status_code = 400
            return response
        return self.console.page(
            request, "reports/page.html", user, report=figures, error=None, periods=PERIODS
        )

    async def export(self, request: Request) -> Response:
        await self.console.require(request, PERMISSION)
        try:
            figures = await self._report(
                parse_days(request.query_params.get("days")),
                _segment(request.query_params.get("risk_segment")),
            )
        except InvalidPeriod as error:
            return Response(f"Bad period: {error}.\n", status_code=400, media_type="text/plain")
        except BadSegment as error:
            return Response(f"{error}.\n", status_code=400, media_type="text/plain")
        name = f"careloop-report-{figures.period.days}d-{figures.period.end.date().isoformat()}.csv"
        return csv_download([("section", "group", "figure", "value"), *csv_rows(figures)], name)

    async def _report(self, days: int, risk_segment: Segment | None) -> Report:
        period = last_days(days, now=self.clock())
        return await self.console.crm.run(partial(report, period=period, risk_segment=risk_segment))


def _segment(raw: str | None) -> Segment | None:
    """The at-risk list's segment filter: empty means every segment; anything else must be one."""
    if not raw:
        return None
    try:
        return Segment(raw)
    except ValueError:
        raise BadSegment(f"“{raw[:40]}” is not a segment: choose MVC, MCC, standard or BZ") from None


class BadSegment(ValueError):
    """The at-risk list was asked for a segment that does not exist."""
