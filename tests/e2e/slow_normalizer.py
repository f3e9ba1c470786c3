"""orderhooks whose normalizer takes 30 s (`python -m tests.e2e.slow_normalizer web`): a receiver that
normalized before answering would answer no delivery in time."""

import time

from tests.support.normalizer import replace_normalizer


def _slow(*args, **kwargs):
    time.sleep(30)
    raise AssertionError("the receiver called the normalizer")


replace_normalizer(_slow)

from orderhooks.cli import main  # noqa: E402 -- after the swap, so that every later import gets the slow one

if __name__ == "__main__":
    main()
