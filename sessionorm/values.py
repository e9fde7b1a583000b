"""Ids and timestamps in the form the orchestrator stores them."""

from __future__ import annotations

import datetime as dt
import uuid

UTC = dt.UTC


def new_id() -> str:
    """A lowercase v4 UUID string."""
    return str(uuid.uuid4())


def new_thread_id() -> str:
    """A thread id as the orchestrator app makes them, `T-` and a v4 UUID (it lists no other)."""
    return "T-" + new_id()


def format_timestamp(value: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, like JavaScript's toISOString()."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def now_timestamp() -> str:
    """The current time, formatted for storage."""
    return format_timestamp(dt.datetime.now(UTC))


def parse_timestamp(text: str | None) -> dt.datetime | str | None:
    """A stored timestamp as an aware datetime; text that is not ISO-8601 comes back verbatim."""
    if text is None or isinstance(text, dt.datetime):
        return text
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return text  # legacy rows may hold anything; never lose it
    return value if value.tzinfo else value.replace(tzinfo=UTC)
