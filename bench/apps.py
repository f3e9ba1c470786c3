"""The baseline receivers, served by uvicorn exactly as `orderhooks web` serves its app.

- `bare_app`: a Starlette endpoint that reads the body and answers 200: the ceiling of uvicorn +
  Starlette, the figure the receiver is measured against.
- `asgi_app`: a plain ASGI callable that reads the body and answers 200, no framework at all: the
  ceiling of uvicorn alone (orderhooks' webhook routes are plain ASGI endpoints too, so this says
  how much of the bare figure is Starlette's).
- `naive_app`: verifies the signature and calls `rq.Queue.enqueue` per request,
  the usual first version of a webhook receiver.
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

PATH = "/webhooks/genstore"


def bare_app() -> Starlette:
    async def receive(request: Request) -> Response:
        await request.body()
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])


def asgi_app():
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-length", b"15"), (b"content-type", b"application/json")]}
    answer = {"type": "http.response.body", "body": b'{"status":"ok"}'}

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # nothing to start or stop
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            more = message.get("more_body", False)
        await send(start)
        await send(answer)

    return app


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
