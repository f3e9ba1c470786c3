"""Example payloads, shipped as package data.

The Genstore seed payloads verbatim (``orders_*.json`` from the order
webhook docs, ``api_order_002.json`` from the Orders API guide,
``malformed_bash_block.txt``: the docs' block whose inner quotes are not
escaped, so it is not JSON), plus our own designed examples for the topics
the docs do not illustrate (``orders_partiallyFulfilled.json``,
``refunds_create.json``, ``refunds_create_snake.json``).
"""

from __future__ import annotations

from importlib.resources import files

from ..topics import TOPICS, UnknownTopic

__all__ = ["NAMES", "example_for_topic", "load"]

NAMES: tuple[str, ...] = (
    "orders_create.json",
    "orders_paid.json",
    "orders_update.json",
    "orders_fulfilled.json",
    "orders_partiallyFulfilled.json",
    "orders_cancelled.json",
    "api_order_002.json",
    "refunds_create.json",
    "refunds_create_snake.json",
    "malformed_bash_block.txt",
)

_EXAMPLES = {topic: topic.replace("/", "_") + ".json" for topic in TOPICS}


def load(name: str) -> bytes:
    """The raw bytes of one sample, e.g. ``load("orders_paid.json")``."""
    if name not in NAMES:
        raise FileNotFoundError(f"no sample named {name!r}")
    return files(__name__).joinpath(name).read_bytes()


def example_for_topic(topic: str) -> bytes:
    """A realistic delivery body for ``topic`` (one of ``TOPICS``)."""
    if topic not in _EXAMPLES:
        raise UnknownTopic(topic)
    return load(_EXAMPLES[topic])
