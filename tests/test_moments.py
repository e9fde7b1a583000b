"""The moments users type to `sessions --since`, `export --since` and `prune --older-than`."""

from __future__ import annotations

import datetime as dt

import pytest

from sessionorm.errors import ValidationError
from sessionorm.moments import parse_age, parse_moment

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("90d", dt.timedelta(days=90)),
        ("12h", dt.timedelta(hours=12)),
        (" 2w ", dt.timedelta(weeks=2)),
        ("30m", dt.timedelta(minutes=30)),
        ("45s", dt.timedelta(seconds=45)),
        ("0d", dt.timedelta(0)),
    ],
)
def test_ages(text: str, age: dt.timedelta) -> None:
    assert parse_age(text) == age
    assert parse_moment(text, NOW) == NOW - age


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-01-31", dt.datetime(2026, 1, 31, tzinfo=dt.UTC)),
        ("2026-01-31T10:00:00Z", dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC)),
        ("2026-01-31T10:00:00+02:00", dt.datetime(2026, 1, 31, 8, tzinfo=dt.UTC)),
        ("2026-01-31 10:00:00", dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC)),
    ],
)
def test_dates_and_times(text: str, moment: dt.datetime) -> None:
    assert parse_moment(text, NOW) == moment


@pytest.mark.parametrize(
    "text", ["", " ", "90", "d", "-3d", "3 days", "yesterday", "2026-13-01", "1.5d", "٣d"]
)
def test_what_is_neither_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValidationError, match="neither an age") as raised:
        parse_moment(text, NOW)
    assert repr(text) in str(raised.value)


def test_an_age_before_year_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="too long ago"):
        parse_moment("999999999d", NOW)
    with pytest.raises(ValidationError, match="not an age"):
        parse_age("2026-01-31")
