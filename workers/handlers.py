"""The handler registry: `@on("orders/paid")`, `@on("orders/*")`, `@on("*")`.

Handlers are plain functions that receive one event object
(`workers.event.HandlerEvent`). They run at least once per processed event,
after the projection is updated, so they should be idempotent.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "orderhooks.handlers"

HandlerFunc = Callable[[Any], Any]


def handler_name(func: HandlerFunc) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def _matches(pattern: str, topic: str) -> bool:
    if pattern == "*" or pattern == topic:
        return True
    return pattern.endswith("/*") and topic.startswith(pattern[:-1])


@dataclass(frozen=True)
class Handler:
    name: str
    patterns: tuple[str, ...]
    func: HandlerFunc

    def matches(self, topic: str) -> bool:
        return any(_matches(p, topic) for p in self.patterns)


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def on(self, *patterns: str) -> Callable[[HandlerFunc], HandlerFunc]:
        """Register the decorated function for one or more topic patterns."""
        if not patterns:
            raise TypeError('on() needs a topic pattern, e.g. @on("orders/paid")')
        for p in patterns:
            if not isinstance(p, str) or not p or ("*" in p and p != "*" and not p.endswith("/*")):
                raise ValueError(f"bad topic pattern {p!r}: use a topic, 'orders/*' or '*'")

        def register(func: HandlerFunc) -> HandlerFunc:
            name = handler_name(func)
            previous = self._handlers.get(name)
            merged = tuple(dict.fromkeys((previous.patterns if previous else ()) + patterns))
            self._handlers[name] = Handler(name, merged, func)
            return func

        return register

    def matching(self, topic: str) -> list[Handler]:
        return [h for h in self._handlers.values() if h.matches(topic)]

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def all(self) -> list[Handler]:
        return list(self._handlers.values())

    def clear(self) -> None:
        self._handlers.clear()


registry = Registry()
on = registry.on


def import_modules(modules: Iterable[str]) -> list[str]:
    """Import handler modules by name, the current directory on the import path (see `load_handlers`)."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    loaded = []
    for module in modules:
        importlib.import_module(module)
        loaded.append(module)
    return loaded


def load_handlers(modules: Iterable[str] = ()) -> list[str]:
    """Import handler modules named in ORDERHOOKS_HANDLERS and the entry-point group.

    One rule for every command (`orderhooks worker`, `dev`, tests): the current directory is on the import
    path, as it is for `python -m` and `rq worker`, so `myapp.handlers` next to where you start is found.
    """
    loaded = import_modules(modules)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
        loaded.append(ep.value)
    return loaded
