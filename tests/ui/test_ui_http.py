"""The inspector over HTTP (no browser): sign-in, sessions, CSRF, pages, replay. Real Redis, in-process app."""

from __future__ import annotations

import json
import re
import time
import warnings

import pytest

with warnings.catch_warnings():  # starlette suggests another httpx package; the test client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from receiver import ui
from receiver.app import create_app
from schemas.samples import example_for_topic
from tests.conftest import TOKEN
from tests.support.payloads import order_body as with_order
from tests.support.store import ref, store
from workers.handlers import on
from workers.jobs import process_events, run_handler

SHOP = "acme.genmystore.com"


def deliver(ctx, event_id, topic, body=None, shop=SHOP, process=True):
    store(ctx, event_id, topic, body, shop=shop, process=process, ttl=3600,
          headers={"x-genstore-topic": topic, "x-genstore-hmac-sha256": "****"})


def spend_retries(ctx, event_id, shop=SHOP):
    """Run the scheduled retries now until every failing handler has spent them."""
    for name in list(ctx.registry.all()):
        for _ in range(len(ctx.settings.retry_delays)):
            run_handler(ref(event_id, shop), name.name)


@pytest.fixture
def client(ctx, settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def sign_in(client) -> str:
    r = client.post("/ui/login", data={"token": TOKEN, "next": "/ui"})
    assert r.status_code == 303
    return csrf_of(client.get("/ui").text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# --- refusals first ---------------------------------------------------------------------------

def test_pages_redirect_to_the_sign_in_form_without_a_session(client):
    for path in ("/ui", "/ui/events/x", "/ui/orders/acme.genmystore.com/1001", "/ui/replay-failed"):
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/ui/login?next=")
    form = client.get("/ui/login?next=/ui/events/x")
    assert form.status_code == 200 and 'name="token"' in form.text and TOKEN not in form.text


def test_wrong_token_is_refused_and_sets_no_cookie(client):
    r = client.post("/ui/login", data={"token": "nope", "next": "/ui"})
    assert r.status_code == 401
    assert "not right" in r.text
    assert "set-cookie" not in r.headers
    assert client.get("/ui").status_code == 303


def test_session_cookie_is_httponly_strict_and_scoped(client):
    r = client.post("/ui/login", data={"token": TOKEN, "next": "/ui/events/abc"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/events/abc"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(ui.SESSION_COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/ui" in cookie
    assert TOKEN not in cookie and TOKEN not in r.headers["location"]


def test_next_cannot_leave_the_inspector(client):
    for target in ("https://evil.example/", "//evil.example/ui", "/api/events"):
        r = client.post("/ui/login", data={"token": TOKEN, "next": target})
        assert r.headers["location"] == "/ui", target


def test_forged_expired_and_other_token_sessions_are_refused():
    good = ui.make_session(TOKEN)
    assert ui.read_session(TOKEN, good) is not None
    payload, sig = good.split(".")
    assert ui.read_session(TOKEN, payload + "." + sig[:-2] + "AA") is None
    assert ui.read_session("another-token", good) is None
    assert ui.read_session(TOKEN, ui.make_session(TOKEN, now=time.time() - ui.SESSION_SECONDS - 1)) is None
    assert ui.read_session(TOKEN, "garbage") is None
    assert ui.read_session(None, good) is None


def test_posts_need_the_csrf_token_and_same_origin(ctx, client):
    deliver(ctx, "q-1", "orders/create", b"not json")
    csrf = sign_in(client)
    assert client.post("/ui/replay", data={"id": "q-1"}).status_code == 403
    assert client.post("/ui/replay", data={"id": "q-1", "csrf": "forged"}).status_code == 403
    assert client.post("/ui/replay", data={"id": "q-1", "csrf": csrf},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/ui/logout", data={}).status_code == 403, "a live session needs the token to end"
    assert client.post("/ui/replay", data={"id": "q-1", "csrf": csrf},
                       headers={"Origin": "https://testserver"}).status_code == 303, "TLS ended by a proxy"


def test_inspector_is_off_without_a_token(ctx, settings):
    from dataclasses import replace

    with TestClient(create_app(replace(settings, api_token=None)), follow_redirects=False) as c:
        assert "inspector is off" in c.get("/ui/login").text
        assert c.post("/ui/login", data={"token": ""}).status_code == 503


def test_security_headers(client):
    sign_in(client)
    r = client.get("/ui")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


def test_bodies_are_escaped(ctx, client):
    deliver(ctx, "xss-1", "orders/create", b'<script>alert("x")</script>')
    sign_in(client)
    html = client.get("/ui/events/xss-1").text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


# --- pages ---------------------------------------------------------------------------------------

def test_list_filters_and_pages(ctx, client):
    for i in range(55):
        deliver(ctx, f"c-{i:02d}", "orders/create", with_order("orders/create", str(100 + i), "2024-01-01T00:00:00Z"),
                process=False)
    deliver(ctx, "p-1", "orders/paid", shop="other.genmystore.com", process=False)
    sign_in(client)
    first = client.get("/ui").text
    assert first.count('<tr data-id="') == 50
    assert first.index('data-id="p-1"') < first.index('data-id="c-54"'), "newest first"
    assert 'href="/ui?page=2"' in first
    second = client.get("/ui?page=2").text
    assert second.count('<tr data-id="') == 6 and 'data-id="c-00"' in second
    only_paid = client.get("/ui?topic=orders/paid").text
    assert only_paid.count('<tr data-id="') == 1
    assert client.get("/ui?shop=other.genmystore.com").text.count('<tr data-id="') == 1
    assert client.get("/ui?status=queued").text.count('<tr data-id="') == 50
    assert client.get("/ui?order=107&shop=acme.genmystore.com").text.count('<tr data-id="') == 0, \
        "an event's order is known once the worker applied it"
    process_events([ref("c-07")])
    assert client.get("/ui?order=107&shop=acme.genmystore.com").text.count('<tr data-id="') == 1
    assert "unknown status" in client.get("/ui?status=bogus").text


def test_event_page_shows_everything(ctx, client):
    @on("orders/paid")
    def broken(event):
        raise RuntimeError("label printer offline")

    deliver(ctx, "e-create", "orders/create", with_order("orders/create", "900", "2024-01-01T00:00:00Z", note="v1"))
    deliver(ctx, "e-paid", "orders/paid", with_order("orders/paid", "900", "2024-01-02T00:00:00Z", note="v2"))
    spend_retries(ctx, "e-paid")
    sign_in(client)
    html = client.get("/ui/events/e-paid").text
    assert "x-genstore-hmac-sha256" in html and "****" in html
    assert "label printer offline" in html and "Traceback" in html and "RuntimeError" in html
    assert "status-failed" in html and 'action="/ui/replay"' in html
    assert "&#34;v1&#34;" in html and "&#34;v2&#34;" in html, "the note before and after"
    assert "event 2 of 2" in html
    assert 'href="/ui/orders/acme.genmystore.com/900"' in html
    assert 'href="/ui/events/e-create?shop=acme.genmystore.com"' in html
    assert client.get("/ui/events/nope").status_code == 404


def test_stale_event_changes_nothing(ctx, client):
    deliver(ctx, "s-new", "orders/update", with_order("orders/update", "901", "2024-02-02T00:00:00Z"))
    deliver(ctx, "s-old", "orders/create", with_order("orders/create", "901", "2024-02-01T00:00:00Z"))
    sign_in(client)
    html = client.get("/ui/events/s-old").text
    assert "status-stale" in html and "No change to the order" in html


def test_order_page(ctx, client):
    deliver(ctx, "o-1", "orders/create", with_order("orders/create", "902", "2024-03-01T00:00:00Z"))
    refund = json.loads(example_for_topic("refunds/create"))
    refund["refund"]["orderId"] = "903"
    deliver(ctx, "o-r", "refunds/create", json.dumps(refund).encode())
    sign_in(client)
    html = client.get("/ui/orders/acme.genmystore.com/902").text
    assert "Order 902" in html and "409.94" in html and 'data-id="o-1"' in html
    only_refund = client.get("/ui/orders/acme.genmystore.com/903").text
    assert "No order snapshot has arrived yet" in only_refund and "909011" in only_refund
    assert client.get("/ui/orders/acme.genmystore.com/404404").status_code == 404


def test_replay_one_and_all_failed(ctx, client):
    fixed = {"now": False}

    @on("orders/paid")
    def fussy(event):
        if not fixed["now"]:
            raise RuntimeError("not yet")

    for i in range(3):
        deliver(ctx, f"f-{i}", "orders/paid", with_order("orders/paid", str(950 + i), "2024-01-01T00:00:00Z"))
        spend_retries(ctx, f"f-{i}")
    assert ctx.redis.zcard(ctx.keys.events_by_status("failed")) == 3
    csrf = sign_in(client)
    fixed["now"] = True
    r = client.post("/ui/replay", data={"id": "f-0", "shop": SHOP, "csrf": csrf})
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/events/f-0?shop=acme.genmystore.com&replayed=handlers"
    assert "failed handlers run again" in client.get(r.headers["location"]).text
    confirm = client.get("/ui/replay-failed").text
    assert 'id="failed-count">2<' in confirm and 'name="confirm" value="yes"' in confirm
    assert client.post("/ui/replay-failed", data={"csrf": csrf}).headers["location"] == "/ui/replay-failed"
    done = client.post("/ui/replay-failed", data={"csrf": csrf, "confirm": "yes"})
    assert done.status_code == 200 and "Replay requested for 2 events" in done.text
    assert ctx.redis.zcard(ctx.keys.events_by_status("failed")) == 0


def test_cookie_is_secure_behind_a_tls_proxy(client):
    r = client.post("/ui/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in r.headers["set-cookie"]


def test_signing_out_of_an_ended_session_just_clears_the_cookie(client):
    r = client.post("/ui/logout", data={})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"


def test_logout_ends_the_session(client):
    csrf = sign_in(client)
    r = client.post("/ui/logout", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert ui.SESSION_COOKIE + '=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert client.get("/ui").status_code == 303


def test_static_files_are_served(client):
    assert client.get("/ui/static/ui.js").status_code == 200
    assert "text/css" in client.get("/ui/static/ui.css").headers["content-type"]


def test_a_cookie_kept_after_logout_opens_nothing(client):
    csrf = sign_in(client)
    cookie = client.cookies[ui.SESSION_COOKIE]
    assert client.post("/ui/logout", data={"csrf": csrf}).status_code == 303
    client.cookies.clear()
    replayed = client.get("/ui", headers={"Cookie": f"{ui.SESSION_COOKIE}={cookie}"})
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/ui/login")


def test_sign_in_and_pages_answer_503_while_redis_is_away(ctx, settings):
    from dataclasses import replace

    from orderhooks.embedded import free_port

    away = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(away), follow_redirects=False) as c:
        assert c.get("/ui/login").status_code == 200
        r = c.post("/ui/login", data={"token": TOKEN})
        assert r.status_code == 503 and "set-cookie" not in r.headers
        cookie = ui.make_session(TOKEN)
        assert c.get("/ui", headers={"Cookie": f"{ui.SESSION_COOKIE}={cookie}"}).status_code == 503
        assert c.post("/ui/logout", data={}, headers={"Cookie": f"{ui.SESSION_COOKIE}={cookie}"}).status_code == 503


def test_rejected_page_lists_refusals_with_their_reason_and_nothing_secret(client):
    body = example_for_topic("orders/paid")
    r = client.post("/webhooks/genstore", content=body, headers={
        "X-Genstore-Topic": "orders/paid", "X-Genstore-Shop-Domain": SHOP, "X-Genstore-Event-Id": "evt-rejected-1",
        "X-Genstore-Hmac-Sha256": "q" * 43 + "="})
    assert r.status_code == 401
    assert client.get("/ui/rejected").status_code == 303  # signed in only
    sign_in(client)

    def shown():
        page = client.get("/ui/rejected")
        return page.text if "evt-rejected-1" in page.text else None

    deadline = time.monotonic() + 10
    while not (text := shown()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert text, "the refusal was not shown"
    assert "does not match any of the 1 configured secret" in text and "q" * 43 not in text
    assert 'href="/ui/rejected" class="here"' in text
