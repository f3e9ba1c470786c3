"""Inspector sessions and sign-in throttling against real `orderhooks web` processes sharing one real Redis
(database 5): a session ends everywhere at logout; wrong tokens are throttled per address and overall."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis as redislib

from receiver.ui import SESSION_COOKIE
from tests.conftest import TOKEN
from tests.support.stack import DB, base_env, db_url, start_web, stop

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def receivers(redis_url):
    """Two receivers on one Redis, as behind a load balancer."""
    env = base_env(redis_url) | {"REDIS_URL": db_url(redis_url, DB["sessions"])}
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    a, url_a = start_web(env)
    b, url_b = start_web(env)
    yield url_a, url_b, client
    stop(a, b)
    client.flushdb()
    client.close()


@pytest.fixture
def urls(receivers):
    url_a, url_b, client = receivers
    client.flushdb()  # counters and sessions of the previous test
    return url_a, url_b, client


def sign_in(url: str, *, address: str | None = None, token: str = TOKEN) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return httpx.post(url + "/ui/login", data={"token": token, "next": "/ui"}, headers=headers, timeout=10)


def inbox(url: str, cookie: str) -> httpx.Response:
    return httpx.get(url + "/ui", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, timeout=10)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# --- sessions ------------------------------------------------------------------------------------

def test_a_cookie_captured_before_logout_is_signed_out_after(urls):
    url_a, url_b, client = urls
    first = sign_in(url_a)
    assert first.status_code == 303
    cookie = first.cookies[SESSION_COOKIE]
    other = sign_in(url_a).cookies[SESSION_COOKIE]
    page = inbox(url_a, cookie)
    assert page.status_code == 200 and inbox(url_b, cookie).status_code == 200

    out = httpx.post(url_a + "/ui/logout", data={"csrf": csrf_of(page.text)},
                     headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, timeout=10)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"

    for url in (url_a, url_b):  # the captured cookie, replayed on either receiver
        replayed = inbox(url, cookie)
        assert replayed.status_code == 303 and replayed.headers["location"].startswith("/ui/login"), url
        assert httpx.post(url + "/ui/replay", data={"id": "x", "csrf": csrf_of(page.text)},
                          headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, timeout=10).status_code == 403
    assert inbox(url_b, other).status_code == 200, "another session is not ended"
    sessions = client.keys("orderhooks:ui:session:*")
    assert len(sessions) == 1 and 0 < client.ttl(sessions[0]) <= 12 * 3600, "one open session, ending by itself"
    assert all(client.ttl(k) > 0 for k in client.keys("orderhooks:ui:*")), "every sign-in key has a TTL"


# --- sign-in throttling --------------------------------------------------------------------------

def _many(url: str, n: int, addresses: list[str | None], token: str = "wrong") -> list[httpx.Response]:
    """`n` sign-ins at once, one thread and connection each, released together."""
    ready = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        address = addresses[i % len(addresses)]
        with httpx.Client(base_url=url, timeout=30) as c:
            ready.wait()
            return c.post("/ui/login", data={"token": token, "next": "/ui"},
                          headers={"X-Forwarded-For": address} if address else {})

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_parallel_wrong_sign_ins_from_one_address_get_five_answers(urls):
    url_a, url_b, client = urls
    answers = _many(url_a, 100, [None])  # the test's own address, 127.0.0.1
    wrong = [r for r in answers if r.status_code == 401]
    throttled = [r for r in answers if r.status_code == 429]
    assert len(wrong) == 5 and len(throttled) == 95, sorted(r.status_code for r in answers)
    for r in throttled:
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "not right" not in r.text and "set-cookie" not in r.headers
    # The right token from that address is throttled too, and the answer tells it from nothing.
    right = sign_in(url_b)
    assert right.status_code == 429 and "set-cookie" not in right.headers
    assert right.text.replace(right.headers["retry-after"], "N") == throttled[0].text.replace(
        throttled[0].headers["retry-after"], "N")
    # Another address (a proxy on 127.0.0.1 is trusted for X-Forwarded-For) is not affected.
    assert sign_in(url_a, address="203.0.113.9").status_code == 303
    assert sign_in(url_a, address="203.0.113.10", token="nope").status_code == 401
    assert all(0 < client.pttl(k) <= 60_000 for k in client.keys("orderhooks:ui:signin:failures*"))


def test_an_overall_cap_on_wrong_sign_ins_spares_known_addresses(urls):
    url_a, url_b, client = urls
    assert sign_in(url_a, address="198.51.100.1").status_code == 303  # the real user, earlier
    addresses = [f"192.0.2.{i}" for i in range(1, 9)]  # 8 addresses x 5 guesses: over the overall cap of 30
    answers = _many(url_a, 40, addresses)
    codes = [r.status_code for r in answers]
    assert codes.count(401) == 30 and codes.count(429) == 10, sorted(codes)
    assert all(1 <= int(r.headers["retry-after"]) <= 10 for r in answers if r.status_code == 429)
    fresh = sign_in(url_b, address="192.0.2.200")
    assert fresh.status_code == 429 and int(fresh.headers["retry-after"]) <= 10
    assert sign_in(url_b, address="198.51.100.1").status_code == 303, "a known address still signs in"


def test_the_address_window_slides_and_right_tokens_are_not_counted(redis):
    from receiver import signin
    from storage.keys import Keys

    keys = Keys()
    for t in range(5):
        assert not signin.begin(redis, keys, "192.0.2.1", now=1000 + t).refused
    refused = signin.begin(redis, keys, "192.0.2.1", now=1010)
    assert refused.refused and refused.retry_after == 50 and not refused.overall
    assert not signin.begin(redis, keys, "192.0.2.2", now=1010).refused, "another address"
    assert not signin.begin(redis, keys, "192.0.2.1", now=1060.001).refused, "the oldest left the window"
    assert signin.begin(redis, keys, "192.0.2.1", now=1060.5).retry_after == 1
    for _ in range(10):  # right tokens give their place back
        signin.succeeded(redis, keys, signin.begin(redis, keys, "192.0.2.3", now=2000))
    assert not signin.begin(redis, keys, "192.0.2.3", now=2000).refused


def test_a_sign_in_evaluated_after_later_ones_waits_no_longer_than_the_window(redis):
    """Each sign-in reads its clock before its script runs: in a burst, one may be counted after sign-ins that
    read the clock later. Its wait is still at most the window (Retry-After 60, never 61)."""
    from receiver import signin
    from storage.keys import Keys

    keys = Keys()
    for _ in range(5):
        assert not signin.begin(redis, keys, "192.0.2.9", now=3000.9).refused
    late = signin.begin(redis, keys, "192.0.2.9", now=3000.0)  # its clock read before theirs
    assert late.refused and late.retry_after == 60
    for n in range(signin.OVERALL_LIMIT - 5):  # the overall cap, from addresses not seen before
        signin.begin(redis, keys, f"198.51.100.{n}", now=3000.9)
    overall = signin.begin(redis, keys, "203.0.113.1", now=3000.0)
    assert overall.refused and overall.overall and overall.retry_after == 10
