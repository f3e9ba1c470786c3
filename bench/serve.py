"""`python -m bench.serve bare|normalize|naive --port P`: a baseline app under `orderhooks web`'s uvicorn settings."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", choices=["bare", "normalize", "naive"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same arguments as orderhooks.cli:web, so only the application differs.
    uvicorn.run(
        f"bench.apps:{args.app}_app", factory=True, host="127.0.0.1", port=args.port,
        workers=1, log_level="warning", access_log=False, timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
