"""The shop's inbound API, mounted by the gateway at /api/v1: upserts and reads by the shop's ids.

A request passes, in order: the key (401 when missing, unknown or revoked), its scope (403 for a
read key writing), its rate (429 with Retry-After), the body's size (413), JSON (400), the fields
(422, each field named with its reason), then the CRM (404, 409, 422 for records it refers to).
Every refusal is an RFC 9457 problem (bot/api/problems.py). Database work runs on the API's own
CRM lane, never on the event loop and never in the queue of customers' messages.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.api.openapi import describe
from bot.api.problems import FieldError, Problem, problem_response, validation_problem
from bot.api.schemas import MAX_BATCH, RESOURCES, BatchIn, BatchItemIn
from bot.api.throttle import TokenBuckets
from bot.crm.ingest import UPSERTS, Outcome, Refused, Upserted, record_of, upsert_many
from bot.crm.integrations import KeyHolder, holder_of
from bot.gateway.store import Crm

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # one record: a customer or an order of 500 lines fits many times over
MAX_BATCH_BODY = 8 * 1024 * 1024  # 1,000 records
PLURALS = {
    "customer": "customers",
    "product": "products",
    "order": "orders",
    "subscription": "subscriptions",
    "refund": "refunds",
}
REFUSED_KINDS = {"invalid": "invalid", "conflict": "conflict", "not-found": "not-found"}


class InboundApi:
    def __init__(
        self,
        crm: Crm,
        *,
        buckets: TokenBuckets | None = None,
        max_body: int = MAX_BODY,
        max_batch_body: int = MAX_BATCH_BODY,
    ) -> None:
        self.crm = crm
        self.buckets = buckets or TokenBuckets()
        self.max_body, self.max_batch_body = max_body, max_batch_body

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Route("/openapi.json", self.openapi, methods=["GET"])]
        for resource, plural in PLURALS.items():
            routes.append(
                Route(
                    f"/{plural}", partial(self.upsert, resource), methods=["POST"], name=f"upsert_{resource}"
                )
            )
            routes.append(
                Route(
                    f"/{plural}/{{external_id:path}}",
                    partial(self.read, resource),
                    methods=["GET"],
                    name=f"read_{resource}",
                )
            )
        routes.append(Route("/batch", self.batch, methods=["POST"], name="batch"))
        return routes

    def app(self) -> Starlette:
        """The API as an ASGI app, refusing everything as problem details."""
        return Starlette(
            routes=self.routes(),
            exception_handlers={Problem: _problem, HTTPException: _http_problem, 500: _server_problem},
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(
            describe(
                self.routes(), server=str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
            )
        )

    async def upsert(self, resource: str, request: Request) -> Response:
        holder = await self._admit(request, write=True)
        payload = await self._json(request, self.max_body)
        try:
            data = RESOURCES[resource].model_validate(payload)
        except ValidationError as error:
            raise validation_problem(error) from None
        try:
            done = await self._write(partial(_upsert_one, resource, data, holder.actor))
        except Refused as refused:
            raise _refusal(refused) from None
        log.info(
            "api upsert %s id=%s key=%d outcome=%s",
            resource,
            done.record["id"],
            holder.id,
            done.outcome.value,
        )
        return JSONResponse(
            done.record,
            status_code=201 if done.outcome is Outcome.CREATED else 200,
            headers={"CareLoop-Outcome": done.outcome.value},
        )

    async def read(self, resource: str, request: Request) -> Response:
        await self._admit(request, write=False)
        external_id = request.path_params["external_id"]
        record = await self.crm.run(partial(record_of, resource=resource, external_id=external_id))
        if record is None:
            raise Problem("not-found", f"No {resource} has the external_id {external_id!r}.")
        return JSONResponse(record)

    async def batch(self, request: Request) -> Response:
        holder = await self._admit(request, write=True)
        payload = await self._json(request, self.max_batch_body)
        records = payload.get("records") if isinstance(payload, dict) else None
        if isinstance(records, list) and len(records) > MAX_BATCH:
            raise Problem(
                "too-large",
                f"A batch has at most {MAX_BATCH:,} records; this one has {len(records):,}. Split it.",
                [FieldError("records", f"has more than {MAX_BATCH:,} records")],
            )
        try:
            BatchIn.model_validate(payload)
        except ValidationError as error:
            raise validation_problem(error) from None
        items = [_batch_item(index, raw) for index, raw in enumerate(records or [])]
        results = await self._write(partial(_upsert_many, items, holder.actor))
        counts = {outcome.value: 0 for outcome in Outcome} | {"failed": 0}
        for result in results:
            counts[result.get("outcome", "failed")] += 1
        log.info("api batch key=%d %s", holder.id, " ".join(f"{k}={v}" for k, v in counts.items()))
        return JSONResponse({"object": "batch", "counts": counts, "results": results})

    async def _write(self, work: Any) -> Any:
        """Run a write; a unique index hit by a concurrent writer is retried once, then a 409."""
        for attempt in (1, 2):
            try:
                return await self.crm.run(work)
            except IntegrityError:
                if attempt == 2:
                    raise Problem(
                        "conflict", "Another request wrote the same record at the same time. Retry."
                    ) from None
        raise AssertionError("unreachable")

    async def _admit(self, request: Request, *, write: bool) -> KeyHolder:
        """The caller's key, allowed to do this now; otherwise a 401, 403 or 429 problem."""
        secret = _bearer(request.headers.get("authorization", ""))
        holder = await self.crm.run(partial(holder_of, secret=secret)) if secret else None
        if holder is None:
            raise Problem(
                "unauthenticated",
                "Send an API key made on the console's Integrations page: Authorization: Bearer <key>."
                if not secret
                else "This API key is unknown or was revoked.",
                headers={"WWW-Authenticate": 'Bearer realm="careloop"'},
            )
        if write and not holder.may_write():
            raise Problem(
                "read-only-key", f"The key {holder.name!r} may read but not write. Use a write key."
            )
        wait = self.buckets.take(holder.id)
        if wait > 0:
            seconds = max(1, int(wait + 0.999))
            raise Problem(
                "rate-limited",
                f"This key sent more than {self.buckets.burst} requests in a burst. Retry after {seconds} s.",
                headers={"Retry-After": str(seconds)},
            )
        return holder

    async def _json(self, request: Request, limit: int) -> Any:
        """The request's JSON body, read no further than `limit` bytes."""
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise Problem(
                "unsupported-media-type", "Send the body as JSON with Content-Type: application/json."
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise Problem("malformed", f"The body is not JSON: {error}.") from None


def _bearer(header: str) -> str:
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def _too_large(limit: int) -> Problem:
    return Problem("too-large", f"The body is larger than {limit:,} bytes.")


def _refusal(refused: Refused) -> Problem:
    return Problem(
        REFUSED_KINDS[refused.kind],
        f"{refused.field} {refused.reason}.",
        [FieldError(refused.field, refused.reason)],
    )


def _upsert_one(resource: str, data: Any, actor: str, *, session: Session) -> Upserted:
    return UPSERTS[resource](session=session, data=data, actor=actor)


def _batch_item(index: int, raw: Any) -> tuple[int, str, Any]:
    """One record of a batch, validated alone: (index, resource, model or the Problem)."""
    try:
        item = BatchItemIn.model_validate(raw)
    except ValidationError as error:
        return index, str(raw.get("type", "")) if isinstance(raw, dict) else "", validation_problem(error)
    try:
        return index, item.type, RESOURCES[item.type].model_validate(item.data)
    except ValidationError as error:
        return index, item.type, validation_problem(error, prefix="data")


def _upsert_many(items: list[tuple[int, str, Any]], actor: str, *, session: Session) -> list[dict[str, Any]]:
    """Each record written or refused alone (bot/crm/ingest.upsert_many); a failure of the whole
    request (a crash, a lost connection) writes none of them."""
    done = upsert_many(session=session, items=[(resource, data) for _, resource, data in items], actor=actor)
    return [
        _batch_result(index, resource, data, one)
        for (index, resource, data), one in zip(items, done, strict=True)
    ]


def _batch_result(index: int, resource: str, data: Any, done: Any) -> dict[str, Any]:
    head: dict[str, Any] = {"index": index, "type": resource}
    if isinstance(done, Problem):
        return {**head, "status": done.status, "problem": done.body()}
    head["external_id"] = data.external_id
    if isinstance(done, Upserted):
        status = 201 if done.outcome is Outcome.CREATED else 200
        return {**head, "status": status, "outcome": done.outcome.value, "record": done.record}
    if isinstance(done, Refused):
        problem = _refusal(done)
    else:
        problem = Problem("conflict", "Another request wrote the same record at the same time. Retry it.")
    return {**head, "status": problem.status, "problem": problem.body()}


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return problem_response(
            Problem("method-not-allowed", f"{request.method} is not allowed here.", headers=exc.headers or {})
        )
    return problem_response(Problem("not-found", "There is no such endpoint; see /api/v1/openapi.json."))


async def _server_problem(request: Request, exc: Exception) -> Response:
    log.error("api request failed: %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        Problem("server-error", "Nothing was written by this request; try again in a moment.")
    )
