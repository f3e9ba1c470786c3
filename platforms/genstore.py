"""Genstore, as a platform: its pieces live where they grew (`receiver.intake`, `receiver.verify`, `schemas`,
the Orders API client `workers.genstore`); this module only names them for the registry."""

from __future__ import annotations

from platforms import Platform
from schemas import NormalizedEvent, normalize


def _normalize(topic: str, raw: bytes, hydrated: dict | None = None) -> NormalizedEvent:
    return normalize(topic, raw)  # a Genstore delivery carries the whole order: nothing to hydrate


PLATFORM = Platform(
    name="genstore",
    path="/webhooks/genstore",
    configured=lambda settings: settings.genstore_configured,
    endpoint="receiver.intake:genstore_webhook",
    normalize=_normalize,
    reconciled=True,
)
