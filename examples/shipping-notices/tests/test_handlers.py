"""The handlers, fed events with orderhooks' test helpers: no Redis, no worker."""

import json
import tomllib
from importlib import import_module
from pathlib import Path

from schemas import Projection, merge, normalize
from schemas.samples import example_for_topic
from workers.testing import make_event, run_handlers

PREFIX = "orderhooks_shipping.handlers."


def payload(topic, **changes):
    data = json.loads(example_for_topic(topic))
    data["order"].update(changes)
    return data


def projection_after(topic, data) -> Projection:
    return merge(None, topic, "earlier", normalize(topic, json.dumps(data).encode())).projection


def test_packing_slip_is_requested_once_however_often_the_handler_runs(outbox):
    event = make_event("orders/paid")
    handled = {PREFIX + "request_packing_slip": None, PREFIX + "tag_paid_order": None}
    assert run_handlers(event) == handled
    assert run_handlers(event) == handled  # a retry or a replay
    assert list(outbox.sent) == ["packing-slip:acme.genmystore.com:1001"]
    slip = outbox.sent["packing-slip:acme.genmystore.com:1001"]
    assert slip["items"] == [{"sku": "IPOD-342-N", "title": "IPod Nano", "quantity": 1}]


def test_a_stale_event_sends_nothing(outbox):
    newer = payload("orders/update", updatedAt="2030-01-01T00:00:00Z")
    event = make_event("orders/paid", previous=projection_after("orders/update", newer))
    assert event.stale
    run_handlers(event)
    assert outbox.sent == {}


def test_one_tracking_notice_per_fulfillment(outbox):
    first = payload("orders/partiallyFulfilled")
    run_handlers(make_event("orders/partiallyFulfilled", first))
    assert len(outbox.sent) == 1
    (notice,) = outbox.sent.values()
    assert notice["tracking_number"] and notice["carrier"]

    both = payload("orders/fulfilled", updatedAt="2030-01-01T00:00:00Z")
    both["order"]["fulfillments"] = first["order"]["fulfillments"] + [{
        "fulfillId": "2", "status": "success", "trackingCompany": "USPS", "trackingNumber": "9400100000000000000000",
    }]
    run_handlers(make_event("orders/fulfilled", both))
    assert len(outbox.sent) == 2, "the first parcel is not announced twice"
    assert "tracking:acme.genmystore.com:1001:2" in outbox.sent


def test_refund_before_its_order_still_confirms(outbox):
    event = make_event("refunds/create")
    assert event.order is None
    assert run_handlers(event) == {PREFIX + "confirm_refund": None}
    (note,) = outbox.sent.values()
    assert note["amount"] == "200.84" and note["currency"] == "USD" and note["to"] is None


def test_the_entry_point_names_the_handlers_module():
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = meta["project"]["entry-points"]["orderhooks.handlers"]["shipping"]
    assert import_module(target).__name__ == "orderhooks_shipping.handlers"


class OrdersApi:
    """Stands for `event.api` (the shop's Orders API client): records what the handler asks of it."""

    def __init__(self):
        self.updates = []

    def update_order(self, order_id, **changes):
        self.updates.append((order_id, changes))


def test_a_paid_order_is_tagged_through_the_orders_api_once():
    api = OrdersApi()
    event = make_event("orders/paid", payload("orders/paid", tags="imported, vip"), api=api)
    run_handlers(event)
    assert api.updates == [("1001", {"tags": ["imported", "vip", "paid"]})]
    tagged = make_event("orders/paid", payload("orders/paid", tags="imported, vip, paid"), api=api)
    run_handlers(tagged)  # a retry after the tag was set: nothing more
    assert len(api.updates) == 1


def test_without_an_api_token_nothing_is_called():
    event = make_event("orders/paid")  # the shop has no token registered: event.api is None
    assert run_handlers(event)[PREFIX + "tag_paid_order"] is None
