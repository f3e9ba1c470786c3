"""The OpenAPI 3.1 document of the read API, served at `GET /api/openapi.json`.

The order and refund schemas are derived from the pydantic models in
`schemas` (serialization mode, Genstore's camelCase aliases), so the document
describes exactly what `model_dump(mode="json", by_alias=True)` produces and
cannot drift from it. The rest is written out here, next to the routes it
describes (`receiver/api.py`, `receiver/app.py`).
"""

from __future__ import annotations

import copy
import functools
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from schemas import Order, Refund
from schemas.types import Money
from storage.status import STATUSES, HandlerOutcome

__all__ = ["document", "openapi_json"]

API = "/api/202412"
TOKEN_HEADER = "X-Genstore-Access-Token"
REF = "#/components/schemas/{model}"

# Money is a decimal string as Genstore sends it: "409.94", "0.00", "70", "-5.00".
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_MONEY_SERIALIZERS = typing.get_args(Money)[1:]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _money_fields(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> dict[str, set[str]]:
    """{model name: aliases of its Money fields}, for the model and every model it nests."""
    seen = seen if seen is not None else set()
    if model in seen:
        return {}
    seen.add(model)
    found: dict[str, set[str]] = {model.__name__: set()}
    for name, info in model.model_fields.items():
        if any(meta in _MONEY_SERIALIZERS for meta in info.metadata):
            alias = model.model_config["alias_generator"].serialization_alias(name)
            found[model.__name__].add(alias)
        for inner in _nested_models(info.annotation):
            for key, aliases in _money_fields(inner, seen).items():
                found.setdefault(key, set()).update(aliases)
    return found


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]


def _model_schemas() -> dict[str, dict[str, Any]]:
    """JSON schemas of the canonical models as the API serializes them."""
    _, top = models_json_schema(
        [(Order, "serialization"), (Refund, "serialization")], by_alias=True, ref_template=REF
    )
    defs: dict[str, dict[str, Any]] = top["$defs"]
    money = {**_money_fields(Order), **_money_fields(Refund)}
    for name, schema in defs.items():
        for alias, prop in schema.get("properties", {}).items():
            prop.pop("title", None)  # pydantic's "Totalprice" titles say nothing
            if alias in money.get(name, ()):
                prop.update(_nullable({"type": "string", "pattern": DECIMAL_PATTERN}))
                prop.pop("type", None)
                prop["description"] = "money, as a decimal string"
        schema["description"] = (schema.pop("description", "") + " Unknown fields are kept as they came.").strip()
    return defs


_TIME = {"type": "string", "format": "date-time"}
_INT = {"type": "integer"}
_STR = {"type": "string"}

_NULLABLE_STR = {"type": ["string", "null"]}
_HANDWRITTEN: dict[str, dict[str, Any]] = {
    "RejectedList": {
        "type": "object",
        "required": ["rejected", "dropped"],
        "properties": {
            "rejected": {"type": "array", "description": "refused deliveries, newest first", "items": {
                "type": "object",
                "required": ["at", "platform", "client", "status", "reason", "topic", "shop", "event_id",
                             "headers", "size", "sha256"],
                "properties": {
                    "at": {"type": "string", "format": "date-time"}, "platform": _STR, "client": _NULLABLE_STR,
                    "status": {"type": "integer", "enum": [400, 401, 413, 431]}, "reason": _STR,
                    "topic": _NULLABLE_STR, "shop": _NULLABLE_STR, "event_id": _NULLABLE_STR,
                    "headers": {"type": "array", "items": _STR, "description": "the names of the headers sent"},
                    "size": {"type": ["integer", "null"], "description": "the body's size in bytes"},
                    "sha256": _NULLABLE_STR,
                },
            }},
            "dropped": {"type": "integer", "minimum": 0, "description": "refusals counted but not recorded"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what went wrong; a bad parameter is named first"}},
    },
    "OrderView": {
        "description": "An order of the projection: the newest snapshot, plus its shop and refunds.",
        "allOf": [
            _ref("Order"),
            {
                "type": "object",
                "required": ["orderId", "updatedAt", "shop", "refunds", "totalRefunded", "refundedByCurrency"],
                "properties": {
                    "orderId": _STR,
                    "updatedAt": _TIME,
                    "shop": _STR,
                    "refunds": {"type": "array", "items": _ref("Refund")},
                    "totalRefunded": {"type": "string", "pattern": DECIMAL_PATTERN,
                                      "description": "exact sum of the successful refund transactions in the "
                                                     "order's currency"},
                    "refundedByCurrency": {"type": "object",
                                           "additionalProperties": {"type": "string", "pattern": DECIMAL_PATTERN},
                                           "description": "successful refunds in other currencies, by currency"},
                },
            },
        ],
    },
    "OrderList": {
        "type": "object",
        "required": ["orders"],
        "properties": {"orders": {"type": "array", "items": _ref("OrderView")}},
    },
    "OrderCount": {
        "type": "object",
        "required": ["count"],
        "properties": {"count": {"type": "integer", "minimum": 0}},
    },
    "OrderEnvelope": {
        "type": "object",
        "required": ["order"],
        "properties": {"order": _ref("OrderView")},
    },
    "EventSummary": {
        "type": "object",
        "required": ["id", "platform", "topic", "shop", "orderId", "status", "receivedAt", "attempts", "error"],
        "properties": {
            "id": {"type": "string", "description": "the de-duplication key, unique within platform and shop"},
            "platform": {"type": "string", "enum": ["genstore"]},
            "topic": _STR,
            "shop": _STR,
            "orderId": {**_nullable(_STR), "description": "the order the event is about; null until a worker has "
                        "normalized and applied it (the receiver stores the body unread)"},
            "status": {"type": "string", "enum": list(STATUSES),
                       "description": "queued when stored; a worker then applies it (processed, stale), or "
                                      "quarantines a body that does not normalize, with the reason in error"},
            "receivedAt": _TIME,
            "attempts": {"type": "integer", "minimum": 0},
            "error": _nullable(_STR),
        },
    },
    "HandlerOutcome": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": list(HandlerOutcome)},
            "attempts": _INT,
            "at": _TIME,
            "nextAttemptAt": _TIME,
            "error": _nullable(_STR),
            "traceback": _nullable(_STR),
        },
    },
    "NormalizedEvent": {
        "type": "object",
        "required": ["topic", "orderId", "order", "refund"],
        "properties": {
            "topic": _STR,
            "orderId": _STR,
            "order": _nullable(_ref("Order")),
            "refund": _nullable(_ref("Refund")),
        },
    },
    "EventDetail": {
        "allOf": [
            _ref("EventSummary"),
            {
                "type": "object",
                "required": ["source", "stale", "outcome", "processedAt", "headers", "raw", "normalized",
                             "handlers"],
                "properties": {
                    "source": _STR,
                    "stale": {"type": "boolean"},
                    "outcome": _nullable(
                        {"type": "string", "enum": ["applied", "stale", "refund_added", "refund_duplicate"]}
                    ),
                    "processedAt": _nullable(_TIME),
                    "headers": {"type": "object", "additionalProperties": _STR,
                                "description": "the delivery's headers, signatures masked"},
                    "raw": _nullable({"type": "string", "description": "the body's text; null when it is not UTF-8"}),
                    "rawBase64": {"type": "string", "description": "the body's bytes, only when it is not UTF-8"},
                    "normalized": _nullable(_ref("NormalizedEvent")),
                    "handlers": {"type": "object", "additionalProperties": _ref("HandlerOutcome"),
                                 "description": "each handler's outcome, by module.function"},
                },
            },
        ],
    },
    "EventList": {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": _ref("EventSummary")}},
    },
    "EventEnvelope": {
        "type": "object",
        "required": ["event"],
        "properties": {"event": _ref("EventDetail")},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "redis"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "redis": {"type": "string", "description": "ok, or the kind of error reaching Redis"},
        },
    },
}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(schema)}}


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds to wait"}}

_RESPONSES: dict[str, dict[str, Any]] = {
    "BadParameter": {"description": "a bad parameter; the error starts with its name", "content": _json("Error")},
    "Unauthorized": {"description": f"no {TOKEN_HEADER}, or a wrong one", "content": _json("Error")},
    "NotFound": {"description": "no such thing", "content": _json("Error")},
    "Ambiguous": {"description": "the id is used by several shops: choose one with shop= (and platform=)",
                  "content": {"application/json": {"schema": {
                      "type": "object", "required": ["error", "shops"],
                      "properties": {"error": _STR, "shops": {"type": "array", "items": {
                          "type": "object", "required": ["platform", "shop"],
                          "properties": {"platform": _STR, "shop": _STR}}}}}}}},
    "Unavailable": {"description": "Redis is unreachable; retry later", "content": _json("Error"),
                    "headers": _RETRY_AFTER},
}


def _error_responses(*codes: str) -> dict[str, Any]:
    names = {"400": "BadParameter", "401": "Unauthorized", "404": "NotFound", "409": "Ambiguous",
             "503": "Unavailable"}
    return {code: {"$ref": f"#/components/responses/{names[code]}"} for code in codes}


def _query(name: str, schema: dict[str, Any], description: str, example: Any = None) -> dict[str, Any]:
    # The API reads `?limit=` as if `limit` were left out, as it does for every query parameter.
    param = {"name": name, "in": "query", "required": False, "schema": schema, "allowEmptyValue": True,
             "description": description + " (an empty value means absent)"}
    if example is not None:
        param["example"] = example
    return param


_SHOP = _query("shop", {"type": "string"}, "the shop domain; may be left out while only one shop is known",
               "acme.genmystore.com")
_ORDER_FILTERS = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 250, "default": 50}, "orders per page"),
    _query("sinceId", {"type": "string"}, "only orders after this orderId (numeric ids compare as numbers)"),
    _query("financialStatus", {"type": "string"}, "e.g. paid, pending, refunded", "paid"),
    _query("fulfillmentStatus", {"type": "string"}, "e.g. fulfilled, partial", "partial"),
    _query("status", {"type": "string", "enum": ["open", "closed", "cancelled", "any"], "default": "any"},
           "open: neither closed nor cancelled"),
    _query("updatedAtMin", _TIME, "only orders updated at or after this time (with offset)"),
    _query("updatedAtMax", _TIME, "only orders updated at or before this time (with offset)"),
    _SHOP,
]


def _get(operation_id: str, summary: str, ok: dict[str, Any], *errors: str,
         parameters: list | None = None, public: bool = False, more: dict | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": {"200": ok, **_error_responses(*errors), **(more or {})},
    }
    if parameters:
        operation["parameters"] = parameters
    if public:
        operation["security"] = []
    return {"get": operation}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": _json(schema)}


def _paths() -> dict[str, Any]:
    protected = ("400", "401", "503")
    return {
        f"{API}/orders": _get(
            "listOrders", "Orders of a shop, ordered by orderId", _ok("OrderList"), *protected,
            parameters=_ORDER_FILTERS,
        ),
        f"{API}/orders/count": _get(
            "countOrders", "How many orders match the filters", _ok("OrderCount"), *protected,
            parameters=[p for p in _ORDER_FILTERS if p["name"] != "limit"]
            + [_query("limit", {"type": "integer", "minimum": 1, "maximum": 250}, "accepted and ignored")],
        ),
        f"{API}/orders/{{orderId}}": _get(
            "getOrder", "One order", _ok("OrderEnvelope"), *protected, "404",
            parameters=[
                {"name": "orderId", "in": "path", "required": True,
                 "schema": {"type": "string", "minLength": 1}, "example": "1001",
                 "description": "percent-encoded: any stored id reads back, '/' and newlines included"},
                _SHOP,
            ],
        ),
        "/api/events": _get(
            "listEvents", "Stored deliveries, newest first", _ok("EventList"), *protected,
            parameters=[
                _query("topic", {"type": "string"}, "e.g. orders/paid", "orders/paid"),
                _query("status", {"type": "string", "enum": list(STATUSES)}, "the event's status"),
                _query("orderId", {"type": "string"}, "only events about this order (known once a worker has "
                       "applied them)", "1001"),
                _query("shop", {"type": "string"}, "only events of this shop", "acme.genmystore.com"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 250, "default": 50}, "events"),
            ],
        ),
        "/api/events/{id}": _get(
            "getEvent", "One stored delivery with its raw body, normalized form and handler outcomes",
            _ok("EventEnvelope"), *protected, "404", "409",
            parameters=[{"name": "id", "in": "path", "required": True,
                         "schema": {"type": "string", "minLength": 1}, "description": "the de-duplication key"},
                        _query("shop", {"type": "string"}, "the event's shop, when several shops use the id"),
                        _query("platform", {"type": "string"}, "the event's platform (genstore)")],
        ),
        "/api/rejected": _get(
            "listRejected", "Deliveries refused before being stored (401, 400, 413, 431), newest first",
            _ok("RejectedList"), *protected,
            parameters=[
                _query("platform", {"type": "string", "enum": ["genstore", "bigcommerce"]}, "one platform only"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "records"),
            ],
        ),
        "/healthz": _get("healthz", "The process is up", _ok("Health"), public=True),
        "/readyz": _get(
            "readyz", "Redis is reachable", _ok("Readiness"), public=True,
            more={"503": {"description": "Redis is unreachable", "content": _json("Readiness"),
                          "headers": _RETRY_AFTER}},
        ),
        "/metrics": _get(
            "metrics", "Prometheus metrics",
            {"description": "Prometheus text exposition format", "content": {"text/plain": {"schema": _STR}}},
            public=True,
        ),
        "/api/openapi.json": _get(
            "openapi", "This document", {"description": "OpenAPI 3.1", "content": {"application/json": {
                "schema": {"type": "object"}}}}, public=True,
        ),
    }


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orderhooks read API",
            "version": "202412",
            "description": (
                "The local projection of Genstore orders and the log of received deliveries, shaped like "
                "Genstore's own Orders API. Every route under /api needs the X-Genstore-Access-Token header, "
                "except this document."
            ),
        },
        "security": [{"accessToken": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"accessToken": {"type": "apiKey", "in": "header", "name": TOKEN_HEADER}},
            "schemas": {**_model_schemas(), **_HANDWRITTEN},
            "responses": _RESPONSES,
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())


async def openapi_json(request: Request) -> Response:
    return JSONResponse(_document())
