"""The statuses an event goes through, and the outcomes recorded per handler, each named once.

Both are `StrEnum`s: a member is the very string stored in Redis and shown in JSON (`Status.QUEUED ==
"queued"`), so values read back from Redis compare equal to the members.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """An event's status, kept in its hash (`status`) and in one index per status."""

    QUEUED = "queued"  # stored, not applied yet
    PROCESSED = "processed"  # applied to the projection
    STALE = "stale"  # applied, but older than the stored order: it changed nothing
    FAILED = "failed"  # a stage's or a handler's retries are spent
    QUARANTINED = "quarantined"  # cannot be processed as it is (no shop, a body that does not normalize)
    IGNORED = "ignored"  # a topic orderhooks does not process


STATUSES: tuple[Status, ...] = tuple(Status)


class HandlerOutcome(StrEnum):
    """One handler's outcome on one event, kept in the event's `handler:<name>` field (`status`)."""

    PENDING = "pending"  # the event is applied, the handler has not run yet
    OK = "ok"
    RETRYING = "retrying"  # it failed and will be called again
    FAILED = "failed"  # it failed and its retries are spent
