"""The loyalty dashboard for marketers and admins: churn, value, saves, satisfaction → loyalty and
service as charts by month, each chart also a table and a CSV download (figures: bot/crm/loyalty.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.console.downloads import csv_download
from bot.crm.clock import utcnow
from bot.crm.labels import label
from bot.crm.loyalty import PERIOD_MONTHS, Dashboard, Filters, InvalidFilter, dashboard, parse_filters
from bot.crm.models import Channel, Role, Segment

if TYPE_CHECKING:
    from bot.console.app import Console

PERMISSION = "loyalty"


def routes(console: Console, clock: Callable[[], datetime] = utcnow) -> list[BaseRoute]:
    """The dashboard and one CSV per chart."""
    pages = LoyaltyPages(console, clock)
    return [
        Route("/loyalty", pages.page, methods=["GET"]),
        Route("/loyalty/{chart}.csv", pages.export, methods=["GET"]),
    ]


def _filters(request: Request) -> Filters:
    q = request.query_params
    return parse_filters(q.get("months"), q.get("segment"), q.get("channel"))


class LoyaltyPages:
    def __init__(self, console: Console, clock: Callable[[], datetime]) -> None:
        self.console, self.clock = console, clock

    async def page(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        choices = _choices()
        try:
            filters = _filters(request)
        except InvalidFilter as error:
            response = self.console.page(
                request, "loyalty/page.html", user, board=None, error=str(error), data={}, **choices
            )
            response.status_code = 400
            return response
        board = await self._dashboard(filters, with_agents=user.role is Role.ADMIN)
        return self.console.page(
            request,
            "loyalty/page.html",
            user,
            board=board,
            error=None,
            data=_chart_data(board),
            query=_query(filters),
            **choices,
        )

    async def export(self, request: Request) -> Response:
        user = await self.console.require(request, PERMISSION)
        try:
            filters = _filters(request)
        except InvalidFilter as error:
            return Response(f"Bad filter: {error}.\n", status_code=400, media_type="text/plain")
        board = await self._dashboard(filters, with_agents=user.role is Role.ADMIN)
        chart = board.chart(request.path_params["chart"])
        if chart is None:
            raise HTTPException(404, detail="There is no such chart.")
        name = f"careloop-loyalty-{chart.key}-{filters.months}m-{board.window.end.date().isoformat()}.csv"
        return csv_download(chart.rows(), name)

    async def _dashboard(self, filters: Filters, *, with_agents: bool) -> Dashboard:
        return await self.console.crm.run(
            partial(dashboard, filters=filters, now=self.clock(), with_agents=with_agents)
        )


def _choices() -> dict[str, Any]:
    return {
        "periods": PERIOD_MONTHS,
        "segments": [(s.value, label(s)) for s in Segment],
        "channels": [(c.value, label(c)) for c in Channel],
    }


def _query(filters: Filters) -> str:
    parts = [f"months={filters.months}"]
    if filters.segment is not None:
        parts.append(f"segment={filters.segment.value}")
    if filters.channel is not None:
        parts.append(f"channel={filters.channel.value}")
    return "&".join(parts)


def _chart_data(board: Dashboard) -> dict[str, Any]:
    """What the page's script draws: per chart its kind, unit, labels and series (JSON, no markup)."""
    return {
        chart.key: {
            "kind": chart.kind,
            "unit": chart.unit,
            "labels": list(chart.labels),
            "series": [
                {"name": s.name, "values": list(s.values), "target": s.target, "secondary": s.secondary}
                for s in chart.series
            ],
        }
        for _, charts in board.sections
        for chart in charts
    }
