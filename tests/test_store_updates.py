"""Updates through the store (issue 23): sessions and threads changed, messages deleted and
popped, sessions listed with filters; each validated before any SQL, typed errors, one
transaction each, and a refused call changes nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from pg_support import pg_database

from sessionorm import NotFoundError, SessionStore, ValidationError, copy


def dump(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("sessions", "threads", "thread_messages")
        }
    finally:
        con.close()


@pytest.fixture
def filled(tmp_path: Path):
    path = tmp_path / "u.sqlite"
    store = SessionStore(path)
    early = store.create_session(
        name="early", amp_prompt="p", repo_root="/x", createdAt="2026-01-01T00:00:00.000Z"
    )
    late = store.create_session(
        name="late", amp_prompt="p", repo_root="/y", status="running", createdAt="2026-06-01T00:00:00.000Z"
    )
    thread = store.create_thread(early.id, "t")
    store.add_thread_messages(thread, [("user", "one"), ("assistant", "two"), ("user", "three")])
    yield path, store, early, late, thread
    store.close()


def test_list_sessions_filters_and_pages(filled):
    _, store, early, late, _ = filled
    names = lambda **kw: [s.name for s in store.list_sessions(**kw)]  # noqa: E731
    assert names() == ["late", "early"]
    assert names(status="running") == ["late"]
    assert names(repo_root="/x") == ["early"]
    assert names(since="2026-03-01T00:00:00Z") == ["late"]
    assert names(since=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)) == ["late"]
    assert (
        names(limit=1) == ["late"] and names(offset=1) == ["early"] and names(limit=1, offset=1) == ["early"]
    )
    assert names(offset=2) == []
    for bad, words in [
        ({"since": "yesterday"}, "since must be"),
        ({"offset": -1}, "offset must be"),
        ({"repo_root": 3}, "repo_root must be a string"),
    ]:
        with pytest.raises(ValidationError, match=words):
            store.list_sessions(**bad)


def test_update_session_sets_columns_and_a_refusal_changes_nothing(filled):
    path, store, early, _, _ = filled
    updated = store.update_session(early, name="renamed", status="done", follow_up_prompts=["next"])
    assert (updated.name, updated.status, updated.follow_up_prompts) == ("renamed", "done", ["next"])
    assert store.get_session(early.id).name == "renamed"
    before = dump(path)
    for fields, error, words in [
        ({"id": "other"}, ValidationError, "id cannot change"),
        ({"name": ""}, ValidationError, "name must not be empty"),
        ({"name": None}, ValidationError, "must not be None"),
        ({"nope": 1}, ValidationError, "no column 'nope'"),
        ({"context_included": "yes"}, ValidationError, "boolean column"),
        ({}, ValidationError, "at least one column"),
    ]:
        with pytest.raises(error, match=words):
            store.update_session(early, **fields)
    with pytest.raises(NotFoundError):
        store.update_session("missing", name="x")
    assert dump(path) == before


def test_update_thread_renames_changes_status_and_amp_mode(filled):
    path, store, _, _, thread = filled
    before_update = store.get_thread(thread).updated_at
    changed = store.update_thread(thread, name="renamed", status="archived", amp_mode="local-cli")
    assert (changed.name, changed.status, changed.amp_mode) == ("renamed", "archived", "local-cli")
    assert changed.updated_at >= before_update
    assert store.update_thread(thread, amp_mode=None).amp_mode is None
    before = dump(path)
    for fields, words in [
        ({"name": ""}, "name must not be empty"),
        ({"amp_mode": "cloud"}, "amp_mode must be"),
        ({}, "needs name"),
    ]:
        with pytest.raises(ValidationError, match=words):
            store.update_thread(thread, **fields)
    with pytest.raises(NotFoundError):
        store.update_thread("T-missing", name="x")
    assert dump(path) == before


def test_deleting_a_message_leaves_a_gap_and_the_next_takes_the_highest_plus_one(filled):
    _, store, _, _, thread = filled
    first = store.get_thread_messages(thread)[0]
    store.delete_thread_message(first)
    assert [(m.idx, m.content) for m in store.get_thread_messages(thread)] == [(1, "two"), (2, "three")]
    store.add_thread_message(thread, "user", "four")
    assert [m.idx for m in store.get_thread_messages(thread)] == [1, 2, 3]
    with pytest.raises(NotFoundError, match="no message"):
        store.delete_thread_message(first.id)


def test_pop_returns_and_removes_the_latest_message(filled):
    path, store, _, _, thread = filled
    popped = store.pop_thread_message(thread)
    assert (popped.idx, popped.role, popped.content) == (2, "user", "three")
    assert [m.content for m in store.get_thread_messages(thread)] == ["one", "two"]
    assert store.pop_thread_message(thread).content == "two"
    assert store.pop_thread_message(thread).content == "one"
    before = dump(path)
    with pytest.raises(NotFoundError, match="has no messages"):
        store.pop_thread_message(thread)
    with pytest.raises(NotFoundError, match="no thread"):
        store.pop_thread_message("T-missing")
    assert dump(path) == before


def test_updates_on_postgres(filled):
    path, store, early, _, thread = filled
    store.close()
    with pg_database("postgresql") as server:
        copy(path, server.target)
        with SessionStore(server.target) as pg:
            assert pg.update_session(early.id, notes="on postgres").notes == "on postgres"
            assert pg.update_thread(thread, name="pg").name == "pg"
            assert pg.pop_thread_message(thread).content == "three"
            assert [s.name for s in pg.list_sessions(repo_root="/x", since="2025-01-01T00:00:00Z")] == [
                "early"
            ]
            with pytest.raises(ValidationError, match="NUL"):
                pg.update_session(early.id, notes="a\x00b")
