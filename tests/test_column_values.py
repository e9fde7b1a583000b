"""One validation of values per column type, the same on SQLite and PostgreSQL: what one engine
would store changed (or differently from the other) is a `ValidationError` before any SQL."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from test_cli_contract import sessionorm

from sessionorm import SessionStore, ValidationError
from sessionorm.target import Target

BAD = [
    ({"context_included": "yes"}, "context_included is a boolean column"),
    ({"context_included": 2}, "context_included is a boolean column"),
    ({"notes": math.nan}, "notes must be a finite number"),
    ({"notes": math.inf}, "notes must be a finite number"),
    ({"notes": 2**70}, "notes does not fit a 64-bit integer"),
    ({"notes": "a\ud800b"}, "notes is not valid Unicode text"),
]


@pytest.mark.parametrize(("columns", "says"), BAD, ids=[str(c) for c, _ in BAD])
def test_a_value_an_engine_would_change_is_refused_the_same_everywhere(backend, columns, says):
    with backend.store(migrate=True) as store:
        with pytest.raises(ValidationError, match=says):
            store.create_session(name="s", amp_prompt="p", repo_root="/r", **columns)
        assert store.list_sessions() == []


def test_the_values_a_column_takes_still_go_in_and_read_back_alike(backend):
    with backend.store(migrate=True) as store:
        made = store.create_session(
            name="s", amp_prompt="p", repo_root="/r", context_included=True, notes="n 😀", auto_commit=0
        )
        again = store.get_session(made.id)
        assert (again.context_included, again.notes) == (True, "n 😀")


def test_counts_paths_and_timeouts_out_of_range_are_refused(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "s.sqlite"
    with SessionStore(db) as store:
        for limit in (2**63, -1):
            with pytest.raises(ValidationError, match="limit must be a non-negative integer below 2\\*\\*63"):
                store.list_sessions(limit=limit)
        assert store.list_sessions(limit=2**63 - 1) == []
        thread = store.create_thread(store.create_session(name="s", amp_prompt="p", repo_root="/r"), "t").id
        with pytest.raises(ValidationError, match="not valid Unicode text"):
            store.add_thread_message(thread, "user", "\udfff")
    with pytest.raises(ValidationError, match="contains a NUL character"):
        SessionStore(str(tmp_path / "a\x00b.sqlite"))
    with pytest.raises(
        ValidationError,
        match="busy_timeout must be a finite number of seconds >= 0, not 3000000.0 \\(at most 2,147,483",
    ):
        Target.of(db, busy_timeout=3e6)
    for value in ("3e6", "1e300"):
        done = sessionorm("status", "--db-path", db, "--busy-timeout", value)
        assert done.returncode == 2 and "is not a finite number of seconds" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["s.sqlite"]
