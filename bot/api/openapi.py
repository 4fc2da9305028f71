"""The OpenAPI 3.1 description of the inbound API, served at /api/v1/openapi.json.

The request bodies are the pydantic models themselves (bot/api/schemas.py), so the description
cannot drift from what is validated; the paths are read from the app's own routes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from bot.api.schemas import RESOURCES, BatchIn, BatchItemIn

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` names each field and why it was refused.",
    "required": ["type", "title", "status", "detail", "errors"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "example": "/api/v1/problems/invalid"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "example": "lines[0].quantity"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
ERRORS = {
    "400": "The body is not JSON",
    "401": "No API key, or an unknown or revoked one",
    "403": "A read key tried to write",
    "404": "No record with this external_id",
    "409": "Conflicts with another record (a number or SKU in use)",
    "413": "The body, or the batch, is too large",
    "415": "The body is not JSON",
    "422": "Invalid fields, or a reference to a record not sent yet",
    "429": "Too many requests from this key; see Retry-After",
}


def _problem_responses(*codes: str) -> dict[str, Any]:
    return {
        code: {
            "description": ERRORS[code],
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


def _record(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def _operation(route: Route, method: str) -> dict[str, Any]:
    name = route.name or ""
    if name == "batch":
        return {
            "summary": "Upsert up to 1,000 records; each succeeds or fails alone",
            "security": [{"apiKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchIn"}}},
            },
            "responses": {
                "200": _record("One result per record, in order: status, outcome and record, or a problem"),
                **_problem_responses("400", "401", "403", "413", "415", "422", "429"),
            },
        }
    if name.startswith("upsert_"):
        model = RESOURCES[name.removeprefix("upsert_")].__name__
        return {
            "summary": f"Create or update a {name.removeprefix('upsert_')} by its external_id",
            "description": (
                "Idempotent: the same payload twice changes nothing; an event older than the record's"
                " newest is not applied (CareLoop-Outcome: stale)."
            ),
            "security": [{"apiKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
            },
            "responses": {
                "201": _record("Created"),
                "200": _record("Updated, unchanged or stale (see the CareLoop-Outcome header)"),
                **_problem_responses("400", "401", "403", "409", "413", "415", "422", "429"),
            },
        }
    if name.startswith("read_"):
        return {
            "summary": f"Read a {name.removeprefix('read_')} by its external_id",
            "security": [{"apiKey": []}],
            "parameters": [
                {"name": "external_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"200": _record("The record"), **_problem_responses("401", "404", "429")},
        }
    return {"summary": "This description", "responses": {"200": {"description": "OpenAPI 3.1"}}}


def describe(routes: Sequence[BaseRoute], server: str = "/api/v1") -> dict[str, Any]:
    """The description of `routes` (the API's own, relative to /api/v1)."""
    models = [(model, "validation") for model in (*RESOURCES.values(), BatchIn, BatchItemIn)]
    _, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas = {**definitions.get("$defs", {}), "Problem": PROBLEM}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(route, method)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CareLoop inbound API",
            "version": "1",
            "description": (
                "The shop's customers, products, orders, subscriptions and refunds, upserted by the"
                " shop's own ids."
            ),
        },
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A key made on the console's Integrations page",
                }
            },
        },
    }
