"""The two baseline receivers, served by uvicorn exactly as `orderhooks web` serves its app.

- `bare_app`: reads the body and answers 200: the ceiling of uvicorn + Starlette.
- `naive_app`: verifies the signature and calls `rq.Queue.enqueue` per request,
  the usual first version of a webhook receiver.
- `normalize_app`: reads the body and normalizes it (`retriage`), nothing else: no
  signature, no Redis: what a receiver that normalized before answering could
  reach at most (orderhooks' receiver leaves normalizing to the worker).
"""

from __future__ import annotations

import os

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderhooks.config import secret_bytes
from receiver.verify import VerificationError, verify
from schemas import retriage

PATH = "/webhooks/genstore"


def bare_app() -> Starlette:
    async def receive(request: Request) -> Response:
        await request.body()
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])


def normalize_app() -> Starlette:
    async def receive(request: Request) -> Response:
        body = await request.body()
        status, _, _, _ = retriage(request.headers.get("x-genstore-topic", ""),
                                 request.headers.get("x-genstore-shop-domain", ""), body)
        return JSONResponse({"status": status}, status_code=202)

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])


def naive_app() -> Starlette:
    secrets = [secret_bytes(s) for s in os.environ["ORDERHOOKS_SECRETS"].split(",")]
    job = os.environ.get("BENCH_NAIVE_JOB", "bench.jobs.noop")
    queue = Queue("naive", connection=Redis.from_url(os.environ["REDIS_URL"]), serializer=JSONSerializer)

    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            verify(request.headers, body, secrets)
        except VerificationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        event_id = request.headers.get("x-genstore-event-id", "")
        queue.enqueue(job, event_id, body.decode())
        return JSONResponse({"id": event_id, "status": "queued"}, status_code=202)

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])
