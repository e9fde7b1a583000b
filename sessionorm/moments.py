"""Moments a user types: an age (`90d`, `12h`, `2w`) or a date / ISO-8601 time.

`sessionorm sessions --since`, `export --since` and `prune --older-than` read them here, so the
three commands accept the same words.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import ValidationError
from .values import parse_timestamp

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
AGE = re.compile(r"(\d+)\s*([smhdw])", re.ASCII)


def parse_age(text: str) -> dt.timedelta:
    """`90d` → 90 days: a whole number and one unit (s, m, h, d, w); `ValidationError` otherwise."""
    found = AGE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not found:
        raise ValidationError(
            f"{text!r} is not an age: a number and a unit, e.g. 90d, 12h, 2w (s, m, h, d, w)"
        )
    try:
        return dt.timedelta(**{UNITS[found[2]]: int(found[1])})
    except OverflowError:
        raise ValidationError(f"{text!r} is too long ago") from None


def parse_moment(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An age before `now` (`30d`), or a date or ISO-8601 time (UTC unless it says otherwise)."""
    if isinstance(text, str) and AGE.fullmatch(text.strip()):
        now = now or dt.datetime.now(dt.UTC)
        try:
            return now - parse_age(text)
        except OverflowError:
            raise ValidationError(f"{text!r} is too long ago") from None
    parsed = parse_timestamp(text.strip()) if isinstance(text, str) and text.strip() else None
    if isinstance(parsed, dt.datetime):
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(text, str):
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            pass
        else:
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    raise ValidationError(f"{text!r} is neither an age (30d, 12h) nor a date or time (2026-01-31, ISO-8601)")
