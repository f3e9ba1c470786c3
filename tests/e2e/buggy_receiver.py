"""The receiver as a release with a normalization bug would run it.

Bodies containing `bug-trigger` are rejected by its normalizer, so they are
quarantined; the fixed release (the normal code, used by `orderhooks replay`)
accepts them. This lets the replay test go from quarantined to processed.
"""

import importlib

from orderhooks.cli import main
from schemas import NormalizationError

triage_module = importlib.import_module("schemas.triage")  # `schemas.triage` is the function of that name
_fixed = triage_module.normalize


def _buggy(topic, body):
    if b"bug-trigger" in body:
        raise NormalizationError("simulated normalization bug in this release")
    return _fixed(topic, body)


triage_module.normalize = _buggy

if __name__ == "__main__":
    main()
