"""A sandbox BigCommerce V2 Orders API for trying the whole path locally, without a store (`orderhooks dev`).

It answers `GET /stores/sandbox/v2/orders/{id}` (and `/products`, `/shipping_addresses`) for any numeric id
with the package's sample V2 order under that id, modified now, and states a quota like BigCommerce does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from importlib.resources import files

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

STORE_HASH = "sandbox"
SHOP = f"store-{STORE_HASH}.mybigcommerce.com"
BASE = f"/stores/{STORE_HASH}/v2"
RATE = {"X-Rate-Limit-Requests-Left": "149", "X-Rate-Limit-Time-Reset-Ms": "30000",
        "X-Rate-Limit-Requests-Quota": "150", "X-Rate-Limit-Time-Window-Ms": "30000"}


def _order(order_id: int) -> dict:
    data = json.loads(files("schemas.samples").joinpath("bigcommerce_order.json").read_text())
    data["order"].update(id=order_id, date_modified=format_datetime(datetime.now(UTC).replace(microsecond=0)))
    for item in data["products"] + data["shipping_addresses"]:
        item["order_id"] = order_id
    return data


def _endpoint(part: str):
    async def endpoint(request: Request) -> JSONResponse:
        raw = request.path_params["order_id"]
        if not raw.isdigit():
            return JSONResponse([{"status": 404, "message": "The requested resource was not found."}],
                                status_code=404, headers=RATE)
        data = _order(int(raw))
        if part != "order" and int(request.query_params.get("page", "1")) > 1:
            return JSONResponse([], status_code=200, headers=RATE)
        return JSONResponse(data[part], headers=RATE)
    return endpoint


def app() -> Starlette:
    return Starlette(routes=[
        Route(BASE + "/orders/{order_id}", _endpoint("order")),
        Route(BASE + "/orders/{order_id}/products", _endpoint("products")),
        Route(BASE + "/orders/{order_id}/shipping_addresses", _endpoint("shipping_addresses")),
    ])
