"""Handlers loaded by the browser tests' worker (ORDERHOOKS_HANDLERS=tests.ui.handlers_ui).

`print_label` fails for orders whose note starts with `jam:` until the test
"fixes the printer" by setting `ui:fixed:<note>` in Redis; so an event can be
made `failed`, then replayed successfully from the inspector.
"""

import os

import redis

from workers.handlers import on

r = redis.Redis.from_url(os.environ["REDIS_URL"])


@on("orders/*")
def print_label(event):
    note = (event.order.note if event.order else None) or ""
    if note.startswith("jam:") and not r.exists(f"ui:fixed:{note}"):
        raise RuntimeError("label printer jammed")
