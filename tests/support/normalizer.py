"""The normalizer replaced wherever it is bound, to prove who calls it (and to play a release with a bug in it)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import schemas


def replace_normalizer(replacement: Callable, assign: Callable = setattr) -> Callable:
    """Bind `replacement` instead of `schemas.normalize` in every module loaded so far that holds it, and in
    `schemas` itself (what later `from schemas import normalize` gets); return the original. `assign` may be
    pytest's `monkeypatch.setattr`, which undoes it after the test."""
    original = schemas.normalize
    for module in list(sys.modules.values()):
        if getattr(module, "normalize", None) is original:
            assign(module, "normalize", replacement)
    return original


def refusing(calls: list) -> Callable:
    """A normalizer that records its call in `calls` and raises: nothing on the path under test may call it."""

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the normalizer was called")

    return refuse
