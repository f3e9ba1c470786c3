"""`python -m bench.serve bare|asgi|naive --port P`: a baseline app under `orderhooks web`'s uvicorn settings."""

from __future__ import annotations

import argparse

import uvicorn

from receiver.server import DeadlineHttpToolsProtocol


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", choices=["bare", "asgi", "naive"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same arguments as orderhooks.cli:web, so only the application differs: uvloop and httptools (the
    # fastest uvicorn has, as `orderhooks web` picks them), and its HTTP protocol with read deadlines.
    uvicorn.run(
        f"bench.apps:{args.app}_app", factory=True, host="127.0.0.1", port=args.port,
        workers=1, log_level="warning", access_log=False, timeout_graceful_shutdown=30,
        loop="uvloop", http=DeadlineHttpToolsProtocol,
    )


if __name__ == "__main__":
    main()
