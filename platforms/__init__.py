"""The platforms orderhooks receives orders from, and the one place each says everything about itself.

A platform is one module of this package exposing `PLATFORM`, a `Platform`: its webhook route and whether it is
configured, how a delivery is verified and triaged (`accept`), how a stored event becomes the canonical event
(`normalize`, pure), an optional `hydrate` step the worker runs before applying (reading the order from the
platform's API), how the read API tells its closed and cancelled orders, and what its handlers' events carry
beyond the shared fields. Storage, merge, handlers, the read API, the inspector and the command line know
platforms only through `get` and `all_platforms`; adding one is a new module here and its name in `NAMES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderhooks.config import Settings
    from schemas import NormalizedEvent, Projection
    from storage.intake import Delivery
    from storage.status import Status
    from storage.store import Store

__all__ = ["NAMES", "HydrateFailure", "Platform", "all_platforms", "get"]

NAMES: tuple[str, ...] = ("genstore", "bigcommerce")


@dataclass(frozen=True)
class HydrateFailure:
    """Why an event's order could not be read: retried with the apply stage's delays, unless `final`."""

    error: str
    final: bool = False


@dataclass(frozen=True)
class Platform:
    name: str
    path: str  # its webhook route
    configured: Callable[[Settings], bool]
    # The route's own endpoint, when the platform has one (Genstore's); else the shared one calls `accept`:
    # (lower-case headers, body, settings, headers to record) -> a triaged Delivery; raises
    # `receiver.verify.VerificationError` when the delivery is not authentic.
    accept: Callable[[Mapping[str, str], bytes, Settings, dict[str, str]], Delivery] | None = None
    endpoint: str | None = None  # "module:function" of its own endpoint
    # (topic, raw body, hydrated JSON text or None) -> the canonical event; NormalizationError / UnknownTopic.
    normalize: Callable[[str, bytes, bytes | None], NormalizedEvent] | None = None
    # (the worker's storage, records still queued) -> {ref: hydrated JSON text | HydrateFailure | None (nothing
    # to apply: the event is processed as it is)}. Run by the worker, which hands over its `storage.store.Store`.
    hydrate: Callable[[Store, Sequence[Any]], dict[str, Any]] | None = None
    # The read API's view of a projection (`schemas.order_view` unless the platform reports its own totals).
    view: Callable[[Projection, str], dict | None] | None = None
    # An order's (closed, cancelled) for the read API's `status` filter.
    order_state: Callable[[dict], tuple[bool, bool]] = field(
        default=lambda order: (bool(order.get("closedAt")), bool(order.get("cancelledAt"))))
    # Extra attributes of the handlers' event, from the stored topic and raw body.
    event_details: Callable[[str, bytes], dict[str, Any]] = field(default=lambda topic, raw: {})
    reconciled: bool = False  # whether `orderhooks reconcile` covers its shops
    # A stored delivery triaged again, for a replay: (raw body) -> (status, order id, error).
    retriage: Callable[[bytes], tuple[Status, str | None, str | None]] | None = None


def get(name: str) -> Platform:
    """The platform of this name; KeyError when there is none."""
    if name not in NAMES:
        raise KeyError(name)
    return importlib.import_module(f"platforms.{name}").PLATFORM


def all_platforms() -> list[Platform]:
    return [get(name) for name in NAMES]
