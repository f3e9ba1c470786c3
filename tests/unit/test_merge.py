"""The projection merge rule (schemas.merge): examples, then properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from functools import cache, reduce
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    ORDER_TOPICS,
    MergeResult,
    NormalizedEvent,
    Projection,
    merge,
    normalize,
    order_view,
    topic_rank,
)
from schemas.samples import load

_BASE = json.loads(load("orders_create.json"))["order"]
T1 = "2024-01-01T10:00:00+00:00"
T2 = "2024-01-01T11:00:00+00:00"
T2_ELSEWHERE = "2024-01-01T13:00:00+02:00"  # the same instant as T2
SHOP = "acme.genmystore.com"

Delivery = tuple[str, str, NormalizedEvent]  # (topic, event id, event)


@cache
def snapshot(updated_at: str, topic: str = "orders/update", note: str = "") -> NormalizedEvent:
    order = {**_BASE, "updatedAt": updated_at, "note": note or f"{topic} at {updated_at}"}
    return normalize(topic, json.dumps({"order": order}))


@cache
def refund(refund_id: str, amount: str = "10.00", created_at: str = T1) -> NormalizedEvent:
    body = {
        "refund": {
            "refundId": refund_id,
            "orderId": "1001",
            "createdAt": created_at,
            "transactions": [{"amount": amount, "currency": "USD", "kind": "refund"}],
        }
    }
    return normalize("refunds/create", json.dumps(body))


def fold(deliveries: list[Delivery], start: Projection | None = None) -> Projection:
    def step(current: Projection | None, delivery: Delivery) -> Projection:
        return merge(current, *delivery).projection

    result = reduce(step, deliveries, start)
    assert result is not None
    return result


def apply(current: Projection | None, topic: str, event_id: str, event: NormalizedEvent) -> MergeResult:
    return merge(current, topic, event_id, event)


# --- examples -----------------------------------------------------------------


def test_first_snapshot_is_applied() -> None:
    result = apply(None, "orders/create", "e1", snapshot(T1, "orders/create"))
    assert result.outcome == "applied"
    assert result.projection.order == snapshot(T1, "orders/create").to_json()["order"]
    assert result.projection.version is not None and result.projection.version[1:] == (0, "e1")


def test_newer_snapshot_replaces_the_order_whole() -> None:
    first = apply(None, "orders/create", "e1", snapshot(T1, "orders/create")).projection
    newer = apply(first, "orders/update", "e2", snapshot(T2, "orders/update", note="changed"))
    assert newer.outcome == "applied"
    assert newer.projection.order is not None and newer.projection.order["note"] == "changed"


def test_older_snapshot_is_stale_and_changes_nothing() -> None:
    current = apply(None, "orders/update", "e2", snapshot(T2)).projection
    late = apply(current, "orders/create", "e1", snapshot(T1, "orders/create"))
    assert late.outcome == "stale"
    assert late.projection == current


def test_the_same_event_again_is_stale() -> None:
    current = apply(None, "orders/paid", "e1", snapshot(T1, "orders/paid")).projection
    assert apply(current, "orders/paid", "e1", snapshot(T1, "orders/paid")).outcome == "stale"


def test_a_tie_is_broken_by_lifecycle_rank() -> None:
    paid = snapshot(T2, "orders/paid")
    update = snapshot(T2_ELSEWHERE, "orders/update")  # same instant, lower rank
    one = fold([("orders/update", "z", update), ("orders/paid", "a", paid)])
    other = fold([("orders/paid", "a", paid), ("orders/update", "z", update)])
    assert one == other
    assert one.order == paid.to_json()["order"]
    assert apply(one, "orders/update", "z", update).outcome == "stale"


def test_cancelled_outranks_everything_at_the_same_time() -> None:
    deliveries: list[Delivery] = [
        (topic, f"e{i}", snapshot(T1, topic)) for i, topic in enumerate(reversed(ORDER_TOPICS))
    ]
    assert fold(deliveries).order == snapshot(T1, "orders/cancelled").to_json()["order"]


def test_then_by_event_id() -> None:
    a, b = snapshot(T1, note="from a"), snapshot(T1, note="from b")
    one = fold([("orders/update", "b", b), ("orders/update", "a", a)])
    assert one.order is not None and one.order["note"] == "from b"
    assert one == fold([("orders/update", "a", a), ("orders/update", "b", b)])


def test_a_refund_before_its_order_is_kept_and_shown_later() -> None:
    early = apply(None, "refunds/create", "r", refund("909011"))
    assert early.outcome == "refund_added"
    assert early.projection.order is None and early.projection.version is None
    assert order_view(early.projection, SHOP) is None
    later = apply(early.projection, "orders/create", "e1", snapshot(T1, "orders/create")).projection
    view = order_view(later, SHOP)
    assert view is not None
    assert [r["refundId"] for r in view["refunds"]] == ["909011"]
    assert view["totalRefunded"] == "10.00"


def test_a_duplicate_refund_changes_nothing() -> None:
    current = apply(None, "refunds/create", "r1", refund("909011")).projection
    again = apply(current, "refunds/create", "r2", refund("909011"))
    assert again.outcome == "refund_duplicate"
    assert again.projection.refunds == current.refunds
    assert apply(current, "refunds/create", "r1", refund("909011")).projection == current


@cache
def refund_body(refund_id: str, created_at: str | None, statuses: tuple[str | None, ...] | None,
                amount: str = "10.00", note: str = "") -> NormalizedEvent:
    """A refund whose transactions have these statuses (None: no status; statuses None: no transactions)."""
    body: dict[str, Any] = {"refundId": refund_id, "orderId": "1001"}
    if created_at is not None:
        body["createdAt"] = created_at
    if note:
        body["note"] = note
    if statuses is not None:
        body["transactions"] = [
            {"amount": amount, "kind": "refund", **({"status": status} if status is not None else {})}
            for status in statuses
        ]
    return normalize("refunds/create", json.dumps({"refund": body}))


PENDING = refund_body("909011", T1, ("pending",))
SETTLED = refund_body("909011", T1, ("success",))


def _both_orders(first: Delivery, second: Delivery) -> tuple[list[str], list[str], Projection]:
    """Outcomes of (first, second) and of (second, first); both folds must end in the same projection."""
    a = merge(None, *first)
    b = merge(a.projection, *second)
    c = merge(None, *second)
    d = merge(c.projection, *first)
    assert b.projection == d.projection
    return [a.outcome, b.outcome], [c.outcome, d.outcome], b.projection


def test_the_settled_refund_body_wins_whatever_the_arrival_order() -> None:
    pending: Delivery = ("refunds/create", "z-initiated", PENDING)  # the greater event id: settled still wins
    settled: Delivery = ("refunds/create", "a-processed", SETTLED)
    one, other, final = _both_orders(pending, settled)
    assert final.refunds["909011"] == SETTLED.to_json()["refund"]
    assert one == ["refund_added", "refund_added"]  # the settled body replaces the pending one
    assert other == ["refund_added", "stale"]  # the pending body arriving late is stale
    view = order_view(fold([("orders/paid", "e", snapshot(T1, "orders/paid"))], final), SHOP)
    assert view is not None and view["totalRefunded"] == "10.00"  # counted once, as settled


def test_a_later_created_at_beats_settled() -> None:
    later_pending: Delivery = ("refunds/create", "a", refund_body("909011", T2, ("pending",)))
    earlier_settled: Delivery = ("refunds/create", "b", SETTLED)
    one, other, final = _both_orders(later_pending, earlier_settled)
    assert final.refunds["909011"] == later_pending[2].to_json()["refund"]
    assert one[1] == "stale" and other[1] == "refund_added"


def test_created_at_compares_as_an_instant() -> None:
    utc: Delivery = ("refunds/create", "b", refund_body("909011", T2, ("success",), note="utc"))
    elsewhere: Delivery = ("refunds/create", "a", refund_body("909011", T2_ELSEWHERE, ("success",), note="+02"))
    _, _, final = _both_orders(utc, elsewhere)
    assert final.refunds["909011"]["note"] == "utc"  # same instant, both settled: the greater event id


def test_a_missing_created_at_sorts_lowest() -> None:
    undated: Delivery = ("refunds/create", "z", refund_body("909011", None, ("success",)))
    dated: Delivery = ("refunds/create", "a", refund_body("909011", "1970-01-01T00:00:00+00:00", ("pending",)))
    one, other, final = _both_orders(undated, dated)
    assert final.refunds["909011"] == dated[2].to_json()["refund"]
    assert one[1] == "refund_added" and other[1] == "stale"


def test_without_transactions_a_refund_is_settled() -> None:
    bare: Delivery = ("refunds/create", "a", refund_body("909011", T1, None))
    pending: Delivery = ("refunds/create", "b", PENDING)
    _, _, final = _both_orders(bare, pending)
    assert final.refunds["909011"] == bare[2].to_json()["refund"]


def test_then_the_greater_event_id() -> None:
    a: Delivery = ("refunds/create", "a", refund_body("909011", T1, ("success",), amount="1.00"))
    b: Delivery = ("refunds/create", "b", refund_body("909011", T1, ("success", None), amount="2.00"))
    one, other, final = _both_orders(a, b)
    assert final.refunds["909011"] == b[2].to_json()["refund"]
    assert one == ["refund_added", "refund_added"] and other == ["refund_added", "stale"]


def test_the_converged_refund_survives_storage() -> None:
    final = fold([("refunds/create", "b", PENDING), ("refunds/create", "a", SETTLED)])
    stored = Projection.from_json(json.loads(json.dumps(final.to_json(), sort_keys=True, separators=(",", ":"))))
    assert stored == final
    assert merge(stored, "refunds/create", "b", PENDING).outcome == "stale"
    assert merge(stored, "refunds/create", "a", SETTLED).outcome == "refund_duplicate"


def test_refunds_survive_replacement() -> None:
    current = fold(
        [
            ("orders/create", "e1", snapshot(T1, "orders/create")),
            ("refunds/create", "r1", refund("909011")),
            ("orders/fulfilled", "e2", snapshot(T2, "orders/fulfilled")),
        ]
    )
    assert set(current.refunds) == {"909011"}
    assert current.order == snapshot(T2, "orders/fulfilled").to_json()["order"]


def test_merge_never_mutates_its_input() -> None:
    current = fold([("orders/create", "e1", snapshot(T1, "orders/create"))])
    before = json.dumps(current.to_json(), sort_keys=True)
    apply(current, "refunds/create", "r1", refund("1"))
    apply(current, "orders/update", "e2", snapshot(T2))
    assert json.dumps(current.to_json(), sort_keys=True) == before


def test_order_view_adds_shop_refunds_and_total() -> None:
    current = fold(
        [
            ("refunds/create", "r2", refund("b", "5", "2024-01-02T00:00:00+00:00")),
            ("refunds/create", "r3", refund("a", "0.5", "2024-01-02T00:00:00+00:00")),
            ("refunds/create", "r1", refund("c", "200.84", "2024-01-02T03:00:00+05:00")),  # earliest
            ("orders/paid", "e1", snapshot(T1, "orders/paid")),
        ]
    )
    view = order_view(current, SHOP)
    assert view is not None
    assert view["shop"] == SHOP and view["orderId"] == "1001"
    assert [r["refundId"] for r in view["refunds"]] == ["c", "a", "b"]
    assert view["totalRefunded"] == "206.34"
    assert view["totalPrice"] == "409.94"
    assert json.loads(json.dumps(view)) == view


def test_order_view_total_formats() -> None:
    order = ("orders/paid", "e1", snapshot(T1, "orders/paid"))
    assert order_view(fold([order]), SHOP)["totalRefunded"] == "0.00"  # type: ignore[index]
    three = fold([order, ("refunds/create", "r", refund("x", "1.005"))])
    assert order_view(three, SHOP)["totalRefunded"] == "1.005"  # type: ignore[index]
    assert order_view(None, SHOP) is None


def test_projection_storage_round_trip() -> None:
    current = fold(
        [
            ("orders/paid", "e1", snapshot(T1, "orders/paid")),
            ("refunds/create", "r1", refund("909011")),
        ]
    )
    stored = json.loads(json.dumps(current.to_json()))
    assert Projection.from_json(stored) == current
    assert Projection.from_json(Projection().to_json()) == Projection()


# --- totalRefunded and refundedByCurrency -------------------------------------


def refund_of(refund_id: str, *transactions: dict[str, Any], created_at: str | None = T1) -> NormalizedEvent:
    body: dict[str, Any] = {"refundId": refund_id, "orderId": "1001", "transactions": list(transactions)}
    if created_at is not None:
        body["createdAt"] = created_at
    return normalize("refunds/create", json.dumps({"refund": body}))


def view_of(*refunds: NormalizedEvent) -> dict[str, Any]:
    deliveries: list[Delivery] = [("orders/paid", "e0", snapshot(T1, "orders/paid"))]  # currency USD
    deliveries += [("refunds/create", f"r{i}", r) for i, r in enumerate(refunds)]
    view = order_view(fold(deliveries), SHOP)
    assert view is not None
    assert json.loads(json.dumps(view)) == view
    return view


_30 = "9" * 30


@pytest.mark.parametrize(
    ("amounts", "total"),
    [
        ([f"{_30}.{_30}", f"{_30}.{_30}"], f"1{'9' * 29}9.{'9' * 29}8"),  # 28 digits of context would round
        ([_30, "0." + "0" * 29 + "1"], f"{_30}.{'0' * 29}1"),
        (["0." + "0" * 29 + "1"] * 3, "0." + "0" * 29 + "3"),
        (["1" + "0" * 29, "-1" + "0" * 29, "0.01"], "0.01"),
        (["0.1", "0.2"], "0.30"),
        (["70", "0.5"], "70.50"),
    ],
)
def test_total_refunded_is_exact_for_every_accepted_amount(amounts: list[str], total: str) -> None:
    refunds = [refund_of(f"x{i}", {"amount": a, "kind": "refund", "status": "success"}) for i, a in enumerate(amounts)]
    view = view_of(*refunds)
    assert view["totalRefunded"] == total
    with localcontext() as ctx:
        ctx.prec = 200
        assert Decimal(view["totalRefunded"]) == sum((Decimal(a) for a in amounts), Decimal(0))


def test_the_sums_do_not_use_the_global_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        view = view_of(refund_of("x", {"amount": "123456.78"}), refund_of("y", {"amount": "0.01"}))
    assert view["totalRefunded"] == "123456.79"


def test_only_successful_refund_transactions_count() -> None:
    view = view_of(
        refund_of("a", {"amount": "1.00", "kind": "refund", "status": "success"}),
        refund_of("b", {"amount": "2.00"}),  # no kind, no status: counted
        refund_of("c", {"amount": "4.00", "kind": "refund", "status": "pending"}),
        refund_of("d", {"amount": "8.00", "kind": "refund", "status": "failure"}),
        refund_of("e", {"amount": "16.00", "kind": "sale", "status": "success"}),
        refund_of("f", {"amount": "32.00", "kind": "refund", "status": "error"}),
        refund_of("g", {"amount": "64.00", "status": "success", "currency": "USD"},
                  {"amount": "128.00", "kind": "capture"}),
        refund_of("h", {"kind": "refund", "status": "success"}),  # no amount
    )
    assert view["totalRefunded"] == "67.00"
    assert view["refundedByCurrency"] == {}


def test_other_currencies_are_summed_apart() -> None:
    view = view_of(
        refund_of("a", {"amount": "200.84", "currency": "USD", "kind": "refund", "status": "success"},
                  {"amount": "700", "currency": "JPY", "kind": "refund", "status": "success"}),
        refund_of("b", {"amount": "5", "currency": "JPY"}, {"amount": "1.00", "currency": "CAD", "status": "pending"}),
        refund_of("c", {"amount": "0.16"}),  # no currency given: the order's
    )
    assert view["totalRefunded"] == "201.00"
    assert view["refundedByCurrency"] == {"JPY": "705"}


def test_an_order_without_refunds_has_empty_sums() -> None:
    view = view_of()
    assert view["totalRefunded"] == "0.00" and view["refundedByCurrency"] == {}


# --- properties ---------------------------------------------------------------

_TIMES = [T1, T2, T2_ELSEWHERE, "2023-12-31T23:00:00-05:00", "2024-01-01T10:00:00.000001+00:00"]


_CREATED = [None, T1, T2, T2_ELSEWHERE]
_STATUSES = [None, ("success",), ("pending",), (None,), ("failure",), ("success", "pending"), ("success", None)]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Delivery], list[Delivery]]:
    """Distinct deliveries for one order, and an arrival sequence of them in
    any order with any repetitions. A refund id may come in several
    deliveries with different bodies (pending or settled, with or without
    createdAt) or the same body."""
    event_ids = draw(st.lists(st.text("abcdef", min_size=1, max_size=3), min_size=1, max_size=7, unique=True))
    deliveries: list[Delivery] = []
    for event_id in event_ids:
        topic = draw(st.sampled_from(ORDER_TOPICS))
        updated_at = draw(st.sampled_from(_TIMES))
        deliveries.append((topic, event_id, snapshot(updated_at, topic, note=f"by {event_id}")))
    refund_ids = draw(st.lists(st.sampled_from(["r1", "r2", "r3"]), max_size=6))
    refund_event_ids = draw(st.lists(st.text("xyz", min_size=1, max_size=3), min_size=len(refund_ids),
                                     max_size=len(refund_ids), unique=True))
    for refund_id, event_id in zip(refund_ids, refund_event_ids, strict=True):
        body = refund_body(refund_id, draw(st.sampled_from(_CREATED)), draw(st.sampled_from(_STATUSES)),
                           draw(st.sampled_from(["1.00", "2.5", "10"])))
        deliveries.append(("refunds/create", f"R-{event_id}", body))
    repeats = draw(st.lists(st.sampled_from(deliveries), max_size=6))
    arrival = draw(st.permutations(deliveries + repeats))
    return deliveries, arrival


def _oracle_version(delivery: Delivery) -> tuple[datetime, int, str]:
    topic, event_id, event = delivery
    assert event.order is not None and event.order.updated_at is not None
    return (event.order.updated_at, topic_rank(topic), event_id)  # datetimes compare as instants


_NEVER = datetime(1, 1, 1, tzinfo=UTC)


def _oracle_refund_key(delivery: Delivery) -> tuple[bool, datetime, bool, str]:
    """The contract's rule, stated apart from schemas.merge: (createdAt, settled, event id), a
    missing createdAt lowest; settled when no transaction is pending."""
    _, event_id, event = delivery
    assert event.refund is not None
    created = event.refund.created_at
    settled = all(t.status != "pending" for t in event.refund.transactions or [])
    return (created is not None, created or _NEVER, settled, event_id)


@settings(deadline=None, max_examples=200)
@given(histories())
def test_any_order_and_repetition_converges(history: tuple[list[Delivery], list[Delivery]]) -> None:
    deliveries, arrival = history
    assert fold(arrival) == fold(deliveries)


@settings(deadline=None, max_examples=200)
@given(histories())
def test_the_newest_snapshot_wins(history: tuple[list[Delivery], list[Delivery]]) -> None:
    deliveries, arrival = history
    final = fold(arrival)
    snapshots = [(t, e, ev) for t, e, ev in deliveries if ev.order is not None]
    refunds = {ev.refund.refund_id for _, _, ev in deliveries if ev.refund is not None}
    if not snapshots:
        assert final.order is None and final.version is None
    else:
        topic, event_id, event = max(snapshots, key=_oracle_version)
        assert final.order == event.to_json()["order"]
        assert final.version is not None and final.version[1:] == (topic_rank(topic), event_id)
    assert set(final.refunds) == refunds


@settings(deadline=None, max_examples=300)
@given(histories())
def test_the_greatest_refund_body_wins(history: tuple[list[Delivery], list[Delivery]]) -> None:
    deliveries, arrival = history
    final = fold(arrival)
    by_id: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        if delivery[2].refund is not None:
            by_id.setdefault(delivery[2].refund.refund_id or "", []).append(delivery)
    for refund_id, candidates in by_id.items():
        winner = max(candidates, key=_oracle_refund_key)
        assert final.refunds[refund_id] == winner[2].to_json()["refund"], refund_id


@settings(deadline=None, max_examples=300)
@given(histories())
def test_a_refund_body_that_loses_on_arrival_is_stale(history: tuple[list[Delivery], list[Delivery]]) -> None:
    """Each refund delivery's outcome, from what had arrived before it: a different body that
    is not greater than the kept one is stale, the kept body again is a duplicate."""
    _, arrival = history
    current: Projection | None = None
    seen: dict[str, list[Delivery]] = {}
    for delivery in arrival:
        result = merge(current, *delivery)
        current = result.projection
        refund = delivery[2].refund
        if refund is None:
            continue
        before = seen.setdefault(refund.refund_id or "", [])
        kept = max(before, key=_oracle_refund_key) if before else None
        if kept is None:
            expected = "refund_added"
        elif kept[2].to_json() == delivery[2].to_json():
            expected = "refund_duplicate"
        elif _oracle_refund_key(delivery) > _oracle_refund_key(kept):
            expected = "refund_added"
        else:
            expected = "stale"
        assert result.outcome == expected, (delivery[1], [d[1] for d in before])
        before.append(delivery)


@settings(deadline=None, max_examples=100)
@given(histories())
def test_replaying_anything_after_the_end_changes_nothing(
    history: tuple[list[Delivery], list[Delivery]],
) -> None:
    deliveries, arrival = history
    final = fold(arrival)
    assert Projection.from_json(json.loads(json.dumps(final.to_json()))) == final
    for delivery in deliveries:
        result = merge(final, *delivery)
        assert result.outcome in ("stale", "refund_duplicate")
        assert result.projection == final


def test_total_refunded_is_a_plain_decimal_string_for_tiny_and_huge_amounts():
    from decimal import Decimal

    from schemas.merge import _format_amount

    assert _format_amount(Decimal("0.0000001")) == "0.0000001"
    assert _format_amount(Decimal("1E+3")) == "1000.00"
    assert _format_amount(Decimal("0")) == "0.00"
    assert _format_amount(Decimal("12.5")) == "12.50"
