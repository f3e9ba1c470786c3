"""orderhooks as a release with a normalization bug would run it (`python -m tests.e2e.buggy_worker worker`).

Bodies containing `bug-trigger` are refused by its normalizer, so its worker quarantines them; the fixed
release (the normal code) accepts them on replay. This lets a replay test go from quarantined to processed.
"""

from schemas import NormalizationError
from tests.support.normalizer import replace_normalizer


def _buggy(topic, body, *args, **kwargs):
    if b"bug-trigger" in body:
        raise NormalizationError("simulated normalization bug in this release")
    return _fixed(topic, body, *args, **kwargs)


_fixed = replace_normalizer(_buggy)

from orderhooks.cli import main  # noqa: E402 -- after the swap, so that every later import gets the buggy one

if __name__ == "__main__":
    main()
