"""The inspector in a real browser: sign in, filter, open an event, replay it, bulk replay, live refresh."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.conftest import TOKEN
from tests.support.payloads import order_body
from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e


def post(ui_stack, topic: str, body: bytes) -> dict:
    r = ui_stack.post(topic, body)
    assert r.status_code in (200, 202), r.text
    return r.json()


def failed_ids(ui_stack) -> set[str]:
    """Every failed event of the stack, as the read API lists them (other tests leave theirs too)."""
    return {e["id"] for e in ui_stack.api("/api/events", status="failed", limit="250").json()["events"]}


def sign_in(page, next_path: str = "/ui") -> None:
    page.goto(next_path)
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui(\?.*)?$|.*/ui/.*"))


def rows(page) -> list[str]:
    return page.locator("#rows tr[data-id]").evaluate_all("rs => rs.map(r => r.dataset.id)")


def test_sign_in_filter_open_an_event_and_replay_it(page, ui_stack, shot):
    from playwright.sync_api import expect

    order_id = str(uuid.uuid4().int % 10**8)
    note = f"jam:{uuid.uuid4().hex[:6]}"
    created = post(ui_stack, "orders/create", order_body("orders/create", order_id, "2024-05-01T10:00:00+02:00"))
    failing = post(ui_stack, "orders/fulfilled", order_body("orders/fulfilled", order_id, "2024-05-02T10:00:00+02:00",
                                                                 note=note))
    quarantined = post(ui_stack, "orders/paid", b"{not json")
    assert quarantined["status"] == "queued"
    wait_for(lambda: ui_stack.event(quarantined["id"])["status"] == "quarantined", 30, what="the worker to quarantine")
    wait_for(lambda: ui_stack.event(failing["id"])["status"] == "failed", 30, what="the handler to fail for good")

    # Sign in: the form, a wrong token, then the right one. No token in any URL; the cookie is HttpOnly, Strict.
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    shot("01-sign-in")
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("not right")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(ui_stack.url + "/ui")
    cookie = next(c for c in page.context.cookies() if c["name"] == "orderhooks_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == "", "scripts cannot read the session"
    assert not [u for u in page.requested if TOKEN in u]
    expect(page.locator("#rows")).to_contain_text(failing["id"])
    shot("02-events")

    # Filter by status, then by order id.
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"status=failed"))
    assert failing["id"] in rows(page)
    assert set(rows(page)) == failed_ids(ui_stack), "the failed events, and only those"
    page.goto("/ui")
    page.fill("input[name=order]", order_id)
    page.click("form.filters button[type=submit]")
    expect(page.locator("#rows tr[data-id]")).to_have_count(2)
    assert set(rows(page)) == {created["id"], failing["id"]}
    shot("03-filtered")

    # Open the failed event: headers (masked), the handler's error and traceback, the projection before/after.
    page.click(f"#rows tr[data-id='{failing['id']}'] td.id a")
    expect(page.locator("h1")).to_contain_text("orders/fulfilled")
    expect(page.locator("#event-status")).to_contain_text("failed")
    expect(page.locator("#handlers")).to_contain_text("label printer jammed")
    page.click("#handlers summary:has-text('Traceback')")
    expect(page.locator("#handlers pre.traceback")).to_contain_text("RuntimeError: label printer jammed")
    expect(page.locator("table.kv")).to_contain_text("****")
    expect(page.locator("#projection table.diff")).to_contain_text("note")
    shot("04-event-failed")

    # Fix the cause, replay from the page; the page updates itself to the handler's success.
    ui_stack.redis.set(f"ui:fixed:{note}", "1")
    page.evaluate("window.__sameDocument = true")
    page.click("form.replay button")
    expect(page.locator(".notice")).to_contain_text("failed handlers run again")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#handlers")).to_contain_text("ok", timeout=30_000)
    expect(page.locator("#event-status")).to_contain_text("processed")
    assert page.evaluate("window.__sameDocument") is True, "updated without a reload"
    assert ui_stack.event(failing["id"])["status"] == "processed"
    shot("05-event-replayed")

    # The order's page: the projection and its history.
    page.click(f"#summary a:has-text('{order_id}')")
    expect(page.locator("h1")).to_contain_text(f"Order {order_id}")
    expect(page.locator("#history tr[data-id]")).to_have_count(2)
    expect(page.locator("#order")).to_contain_text(note)
    shot("06-order")


def test_the_list_refreshes_itself(page, ui_stack):
    from playwright.sync_api import expect

    sign_in(page)
    page.evaluate("window.__sameDocument = true")
    posted = post(ui_stack, "orders/create", order_body("orders/create", "4242", "2024-05-01T10:00:00Z"))
    expect(page.locator(f"#rows tr[data-id='{posted['id']}']")).to_be_visible(timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True, "no reload"
    page.uncheck("#live")
    second = post(ui_stack, "orders/create", order_body("orders/create", "4243", "2024-05-01T10:00:00Z"))
    page.wait_for_timeout(3000)
    assert second["id"] not in rows(page), "paused while Live is off"


def test_replay_all_failed_asks_first(page, ui_stack, shot):
    from playwright.sync_api import expect

    note = f"jam:{uuid.uuid4().hex[:6]}"
    ids = [post(ui_stack, "orders/update", order_body("orders/update", str(7000 + i), "2024-05-01T10:00:00Z",
                                                                 note=note))["id"] for i in range(2)]
    for event_id in ids:
        wait_for(lambda e=event_id: ui_stack.event(e)["status"] == "failed", 30, what="handlers to fail")
    sign_in(page)
    page.click("header nav a:has-text('Replay all failed')")
    failed = failed_ids(ui_stack)
    assert set(ids) <= failed
    expect(page.locator("#failed-count")).to_have_text(str(len(failed)))
    shot("07-confirm-replay")
    ui_stack.redis.set(f"ui:fixed:{note}", "1")
    page.click("form.confirm button")
    expect(page.locator("h1")).to_contain_text(f"Replay requested for {len(failed)} events")
    for event_id in ids:
        wait_for(lambda e=event_id: ui_stack.event(e)["status"] == "processed", 30, what="replayed handlers")


def test_sign_out(page, ui_stack):
    from playwright.sync_api import expect

    sign_in(page)
    page.click("header button:has-text('Sign out')")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_narrow_screen_the_nav_wraps_tables_scroll_and_the_diff_names_fields(page, ui_stack, shot):
    """At 390 px wide (a phone): the nav wraps instead of running off the screen, wide tables scroll inside
    themselves, and the event page shows which line item and field changed."""
    order_id = str(uuid.uuid4().int % 10**8)
    ui_stack.post("orders/create", order_body("orders/create", order_id, "2024-05-01T10:00:00+02:00"))
    data = json.loads(order_body("orders/update", order_id, "2024-05-02T10:00:00+02:00"))
    data["order"]["lineItems"][0]["quantity"] = "4"
    updated = ui_stack.post("orders/update", json.dumps(data).encode()).json()
    wait_for(lambda: ui_stack.event(updated["id"])["status"] == "processed", 30, what="the update")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "/ui?status=failed")
    nav = page.locator("header.top nav")
    box = nav.bounding_box()
    assert box["x"] + box["width"] <= 390, "the nav fits the screen"
    assert page.locator("header.top nav a.here").inner_text() == "Failed", "the nav says where we are"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page itself does not scroll sideways"
    shot("narrow-events")
    page.goto(f"/ui/events/{updated['id']}?shop=acme.genmystore.com")
    row = page.locator("table.diff tr.changed", has_text="lineItems[id=669751112].quantity")
    assert row.locator("td.before").inner_text().strip() == "1" and row.locator("td.after").inner_text().strip() == "4"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot("narrow-event")
    page.set_viewport_size({"width": 1360, "height": 900})
    shot("wide-event")
