"""SessionStore, method by method (the contract: Connections, Python API), on real SQLite files."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest
from cli_support import SHIPPED_MIGRATIONS as SHIPPED

from sessionorm import (
    DatabaseBusyError,
    DatabaseOpenError,
    NeedsMigrationError,
    NotFoundError,
    Session,
    SessionormError,
    SessionStore,
    Thread,
    ThreadMessage,
    ValidationError,
)

UNKNOWN = "00000000-0000-4000-8000-000000000000"
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
THREAD_ID = re.compile("T-" + UUID4.pattern)  # the orchestrator app's thread ids


def tick() -> None:
    """Let the millisecond clock of stored timestamps move on."""
    time.sleep(0.005)


def raw(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA foreign_keys = ON")
    return con


def count(path: Path, sql: str, *params) -> int:
    con = raw(path)
    try:
        return con.execute(sql, params).fetchone()[0]
    finally:
        con.close()


def orphans(path: Path) -> tuple[int, int]:
    """Threads without their session, messages without their thread."""
    return (
        count(path, "SELECT count(*) FROM threads WHERE sessionId NOT IN (SELECT id FROM sessions)"),
        count(path, "SELECT count(*) FROM thread_messages WHERE threadId NOT IN (SELECT id FROM threads)"),
    )


def migrations_rows(path: Path) -> list[tuple[int, str]]:
    con = raw(path)
    try:
        return con.execute("SELECT version, name FROM migrations ORDER BY version").fetchall()
    finally:
        con.close()


def tables(path: Path) -> set[str]:
    con = raw(path)
    try:
        return {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


def changes(store: SessionStore) -> int:
    """Rows the store's connection has inserted, updated or deleted since it opened."""
    return store.db.connection().total_changes


@pytest.fixture
def filled(store, session, thread_id):
    """The store with a session, a thread and two messages; returns (store, session id, thread id)."""
    store.add_thread_messages(thread_id, [("user", "Hello!"), ("assistant", "Hi.")])
    return store, session.id, thread_id


# -- connections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [
        ("foreign_keys", 1),
        ("journal_mode", "wal"),
        ("synchronous", 1),
    ],
)
def test_connection_sets_the_contract_pragmas(store, pragma, expected):
    assert store.db.connection().execute(f"PRAGMA {pragma}").fetchone()[0] == expected


def test_connection_waits_at_least_five_seconds_for_a_lock(store):
    assert store.db.connection().execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_busy_timeout_argument_is_in_seconds(db_path):
    with SessionStore(db_path, busy_timeout=7.5) as store:
        assert store.db.connection().execute("PRAGMA busy_timeout").fetchone()[0] == 7500


def test_a_rollback_journal_legacy_file_is_switched_to_wal_when_migrated(legacy_db):
    path = legacy_db(n=4, wal=False)
    with SessionStore(path, migrate=True) as store:
        assert store.db.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_held_write_lock_raises_database_busy_error_after_the_timeout(db_path, session):
    with SessionStore(db_path, busy_timeout=0.2) as store:
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            with pytest.raises(DatabaseBusyError):
                store.create_thread(session.id, "Blocked")
            assert 0.15 <= time.monotonic() - started < 5
        finally:
            other.execute("ROLLBACK")
            other.close()


# -- sessions ----------------------------------------------------------------------------------


def test_create_session_returns_the_stored_session(store):
    created = store.create_session(name="Fix bug", amp_prompt="Fix the bug", repo_root="/tmp/repo")
    assert isinstance(created, Session)
    assert (created.name, created.amp_prompt, created.repo_root) == ("Fix bug", "Fix the bug", "/tmp/repo")
    assert store.get_session(created.id).name == "Fix bug"


def test_create_session_gives_a_lowercase_v4_uuid(session):
    assert UUID4.fullmatch(session.id)


def test_create_session_defaults_base_branch_to_main(session):
    assert session.base_branch == "main"


def test_create_session_defaults_status_to_idle(session):
    assert session.status == "idle"


def test_create_session_derives_a_branch_name(session):
    assert session.branch_name and "fix-the-login-bug" in session.branch_name


def test_create_session_derives_a_worktree_path_inside_the_repo(session):
    assert session.worktree_path.startswith("/tmp/repo/")
    assert session.id in session.worktree_path


def test_create_session_has_no_thread_id_unless_given(session):
    assert session.thread_id is None


def test_create_session_stores_other_columns_given_by_snake_case_name(store):
    created = store.create_session(
        name="s",
        amp_prompt="p",
        repo_root="/r",
        thread_id="T-1",
        notes="some notes",
        script_command="pnpm test",
        base_branch="develop",
        status="done",
    )
    assert (
        created.thread_id,
        created.notes,
        created.script_command,
        created.base_branch,
        created.status,
    ) == ("T-1", "some notes", "pnpm test", "develop", "done")


def test_create_session_stores_a_datetime_column_as_iso_utc_text(store, db_path):
    when = dt.datetime(2025, 8, 24, 12, 34, 56, 789000, tzinfo=dt.UTC)
    created = store.create_session(name="s", amp_prompt="p", repo_root="/r", last_run=when)
    assert created.last_run == when
    stored = count(db_path, "SELECT lastRun FROM sessions WHERE id = ?", created.id)
    assert stored == "2025-08-24T12:34:56.789Z"


def test_create_session_refuses_an_unknown_column(store, session, db_path, dump):
    before, written = dump(db_path), changes(store)
    with pytest.raises(ValidationError, match="colour"):
        store.create_session(name="s", amp_prompt="p", repo_root="/r", colour="blue")
    assert (dump(db_path), changes(store)) == (before, written)


def test_session_created_at_is_an_aware_utc_datetime(session):
    assert session.created_at.tzinfo is not None
    assert session.created_at.utcoffset() == dt.timedelta(0)


def test_get_session_reads_snake_case_attributes(store, session):
    got = store.get_session(session.id)
    assert (
        got.id,
        got.name,
        got.amp_prompt,
        got.repo_root,
        got.base_branch,
        got.branch_name,
        got.worktree_path,
        got.status,
        got.thread_id,
        got.created_at,
    ) == (
        session.id,
        "Fix the login bug",
        "Fix it",
        "/tmp/repo",
        "main",
        session.branch_name,
        session.worktree_path,
        "idle",
        None,
        session.created_at,
    )


def test_session_repr_shows_class_id_and_name(session):
    text = repr(session)
    assert text.startswith("<Session ") and session.id in text and "Fix the login bug" in text


def test_delete_session_removes_it(store, session):
    store.delete_session(session.id)
    with pytest.raises(NotFoundError):
        store.get_session(session.id)


def test_deleting_a_session_removes_its_threads_and_messages(filled, db_path):
    store, session_id, thread_id = filled
    store.create_thread(session_id, "Second")
    store.delete_session(session_id)
    assert count(db_path, "SELECT count(*) FROM threads WHERE sessionId = ?", session_id) == 0
    assert count(db_path, "SELECT count(*) FROM thread_messages WHERE threadId = ?", thread_id) == 0
    assert orphans(db_path) == (0, 0)


def test_deleting_a_session_leaves_other_sessions_threads_alone(filled, db_path):
    store, session_id, _ = filled
    other = store.create_session(name="Other", amp_prompt="p", repo_root="/r")
    kept = store.create_thread(other.id, "Kept").id
    store.add_thread_message(kept, "user", "still here")
    store.delete_session(session_id)
    assert [t.id for t in store.get_session_threads(other.id)] == [kept]
    assert len(store.get_thread_messages(kept)) == 1


def test_deleting_a_session_deletes_the_apps_rows_of_it_and_says_how_many(legacy_db):
    """As the orchestrator app does: its iterations and tool_calls go with the session."""
    path = legacy_db(n=2, threaded=0, iterations=2)
    with SessionStore(path, migrate=True) as store:
        session_id, other = [r[0] for r in store.db.execute_sql("SELECT id FROM sessions ORDER BY id")]
        store.add_thread_message(store.create_thread(session_id, "t").id, "user", "hi")
        deleted = store.delete_session(session_id)
    assert deleted == {"tool_calls": 2, "iterations": 2, "thread_messages": 1, "threads": 1, "sessions": 1}
    for table in ("iterations", "tool_calls"):
        assert count(path, f"SELECT count(*) FROM {table} WHERE sessionId = ?", session_id) == 0
        assert count(path, f"SELECT count(*) FROM {table} WHERE sessionId = ?", other) == 2
    assert orphans(path) == (0, 0)


def test_deleting_a_session_still_referenced_by_rows_the_app_keeps_is_refused_and_deletes_nothing(
    legacy_db, dump
):
    """Rows of a table the app does not delete with a session (swebench_case_results) refuse it."""
    path = legacy_db(n=2, threaded=0, iterations=1)
    with SessionStore(path, migrate=True) as store:
        session_id = store.db.execute_sql("SELECT id FROM sessions LIMIT 1").fetchone()[0]
        store.add_thread_message(store.create_thread(session_id, "t").id, "user", "hi")
        store.db.execute_sql(
            "INSERT INTO swebench_runs (id, name, casesDir, createdAt)"
            " VALUES ('run-1', 'r', '/cases', '2025-08-01T00:00:00.000Z')"
        )
        store.db.execute_sql(
            "INSERT INTO swebench_case_results (runId, caseId, sessionId, status)"
            " VALUES ('run-1', 'case-1', ?, 'passed')",
            (session_id,),
        )
        before = dump(path)
        with pytest.raises(SessionormError, match="swebench_case_results"):
            store.delete_session(session_id)
        assert dump(path) == before


# -- threads -----------------------------------------------------------------------------------


def test_create_thread_returns_a_t_prefixed_lowercase_v4_uuid(thread_id):
    assert THREAD_ID.fullmatch(thread_id)


def test_get_thread_returns_the_thread_of_the_session(store, session, thread_id):
    thread = store.get_thread(thread_id)
    assert isinstance(thread, Thread)
    assert (thread.id, thread.session_id, thread.name) == (thread_id, session.id, "Feature Discussion")


def test_a_new_thread_is_active(store, thread_id):
    assert store.get_thread(thread_id).status == "active"


def test_a_new_thread_was_updated_when_it_was_created(store, thread_id):
    thread = store.get_thread(thread_id)
    assert thread.updated_at == thread.created_at


def test_thread_timestamps_are_aware_utc_datetimes(store, thread_id):
    thread = store.get_thread(thread_id)
    for value in (thread.created_at, thread.updated_at):
        assert isinstance(value, dt.datetime) and value.utcoffset() == dt.timedelta(0)


def test_get_thread_counts_its_messages(filled):
    store, _, thread_id = filled
    assert store.get_thread(thread_id).message_count == 2


def test_get_thread_of_an_empty_thread_counts_zero(store, thread_id):
    assert store.get_thread(thread_id).message_count == 0


def test_thread_repr_shows_class_id_name_and_message_count(filled):
    store, _, thread_id = filled
    text = repr(store.get_thread(thread_id))
    assert text.startswith("<Thread ") and thread_id in text and "Feature Discussion" in text
    assert "message_count=2" in text


def test_get_session_threads_counts_the_messages_of_each_thread(store, session, thread_id):
    other = store.create_thread(session.id, "Other").id
    store.add_thread_messages(other, [("user", "a"), ("assistant", "b"), ("user", "c")])
    counts = {t.id: t.message_count for t in store.get_session_threads(session.id)}
    assert counts == {thread_id: 0, other: 3}


def test_get_session_threads_lists_the_newest_updated_first(store, session):
    first = store.create_thread(session.id, "first").id
    tick()
    second = store.create_thread(session.id, "second").id
    tick()
    third = store.create_thread(session.id, "third").id
    tick()
    store.add_thread_message(first, "user", "bump")
    assert [t.id for t in store.get_session_threads(session.id)] == [first, third, second]


def test_get_session_threads_lists_only_that_sessions_threads(store, session, thread_id):
    other = store.create_session(name="Other", amp_prompt="p", repo_root="/r")
    store.create_thread(other.id, "Not mine")
    assert [t.id for t in store.get_session_threads(session.id)] == [thread_id]


def test_get_session_threads_of_a_session_without_threads_is_empty(store, session):
    assert store.get_session_threads(session.id) == []


def test_get_session_threads_runs_one_query(filled, sql_log):
    store, session_id, _ = filled
    store.create_thread(session_id, "Second")
    statements = sql_log(store)
    assert len(store.get_session_threads(session_id)) == 2
    assert len(statements) == 1, statements


def test_delete_thread_removes_it(store, thread_id):
    store.delete_thread(thread_id)
    with pytest.raises(NotFoundError):
        store.get_thread(thread_id)


def test_deleting_a_thread_removes_its_messages(filled, db_path):
    store, _, thread_id = filled
    store.delete_thread(thread_id)
    assert count(db_path, "SELECT count(*) FROM thread_messages WHERE threadId = ?", thread_id) == 0
    assert orphans(db_path) == (0, 0)


def test_deleting_a_thread_leaves_its_session_and_sibling_threads(filled):
    store, session_id, thread_id = filled
    sibling = store.create_thread(session_id, "Sibling").id
    store.add_thread_message(sibling, "user", "stays")
    store.delete_thread(thread_id)
    assert store.get_session(session_id).id == session_id
    assert [t.id for t in store.get_session_threads(session_id)] == [sibling]
    assert [m.content for m in store.get_thread_messages(sibling)] == ["stays"]


def test_update_thread_timestamp_moves_updated_at_forward(store, thread_id):
    before = store.get_thread(thread_id)
    tick()
    store.update_thread_timestamp(thread_id)
    after = store.get_thread(thread_id)
    assert after.updated_at > before.updated_at
    assert after.created_at == before.created_at


# -- messages ----------------------------------------------------------------------------------


def test_add_thread_message_numbers_messages_from_zero(store, thread_id):
    for content in ("a", "b", "c"):
        store.add_thread_message(thread_id, "user", content)
    assert [(m.idx, m.content) for m in store.get_thread_messages(thread_id)] == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
    ]


def test_add_thread_message_returns_the_new_message_id(store, thread_id):
    message_id = store.add_thread_message(thread_id, "assistant", "Hello!").id
    assert UUID4.fullmatch(message_id)
    assert [m.id for m in store.get_thread_messages(thread_id)] == [message_id]


def test_add_thread_message_bumps_the_thread_updated_at(store, thread_id):
    before = store.get_thread(thread_id).updated_at
    tick()
    store.add_thread_message(thread_id, "user", "Hello!")
    assert store.get_thread(thread_id).updated_at > before


def test_message_attributes_are_snake_case(store, thread_id):
    message_id = store.add_thread_message(thread_id, "system", "Be brief.").id
    (message,) = store.get_thread_messages(thread_id)
    assert isinstance(message, ThreadMessage)
    assert (message.id, message.thread_id, message.role, message.content, message.idx) == (
        message_id,
        thread_id,
        "system",
        "Be brief.",
        0,
    )


def test_message_created_at_is_an_aware_utc_datetime(store, thread_id):
    store.add_thread_message(thread_id, "user", "hi")
    (message,) = store.get_thread_messages(thread_id)
    assert isinstance(message.created_at, dt.datetime)
    assert message.created_at.utcoffset() == dt.timedelta(0)


def test_message_repr_shows_class_id_idx_and_role(store, thread_id):
    message_id = store.add_thread_message(thread_id, "user", "hi").id
    text = repr(store.get_thread_messages(thread_id)[0])
    assert text.startswith("<ThreadMessage ") and message_id in text
    assert "idx=0" in text and "'user'" in text


def test_add_thread_messages_returns_the_ids_in_order(store, thread_id):
    ids = [
        m.id for m in store.add_thread_messages(thread_id, [("user", "a"), ("assistant", "b"), ("user", "c")])
    ]
    assert [(m.id, m.idx, m.role, m.content) for m in store.get_thread_messages(thread_id)] == [
        (ids[0], 0, "user", "a"),
        (ids[1], 1, "assistant", "b"),
        (ids[2], 2, "user", "c"),
    ]


def test_add_thread_messages_continues_after_existing_messages(store, thread_id):
    store.add_thread_message(thread_id, "user", "first")
    store.add_thread_messages(thread_id, [("assistant", "second"), ("user", "third")])
    assert [m.idx for m in store.get_thread_messages(thread_id)] == [0, 1, 2]


def test_add_thread_messages_bumps_the_thread_updated_at(store, thread_id):
    before = store.get_thread(thread_id).updated_at
    tick()
    store.add_thread_messages(thread_id, [("user", "a")])
    assert store.get_thread(thread_id).updated_at > before


def test_add_thread_messages_accepts_any_iterable_of_pairs(store, thread_id):
    store.add_thread_messages(thread_id, (pair for pair in [("user", "a"), ["assistant", "b"]]))
    assert [m.content for m in store.get_thread_messages(thread_id)] == ["a", "b"]


def test_a_batch_with_a_bad_role_at_the_end_writes_nothing(filled, db_path, dump):
    store, _, thread_id = filled
    before = dump(db_path)
    with pytest.raises(ValidationError):
        store.add_thread_messages(thread_id, [("user", "a"), ("assistant", "b"), ("robot", "c")])
    assert dump(db_path) == before


def test_a_batch_that_fails_in_sql_halfway_writes_nothing(filled, db_path, dump):
    store, _, thread_id = filled
    con = raw(db_path)
    con.execute(
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON thread_messages"
        " WHEN NEW.content = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
    )
    con.close()
    before = dump(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="boom refused"):
        store.add_thread_messages(thread_id, [("user", "fine"), ("user", "boom")])
    assert dump(db_path) == before


def test_the_store_stays_usable_after_a_failed_batch(filled, db_path):
    store, _, thread_id = filled
    con = raw(db_path)
    con.execute(
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON thread_messages"
        " WHEN NEW.content = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
    )
    con.close()
    with pytest.raises(sqlite3.IntegrityError):
        store.add_thread_messages(thread_id, [("user", "fine"), ("user", "boom")])
    store.add_thread_message(thread_id, "user", "after")
    assert [m.idx for m in store.get_thread_messages(thread_id)] == [0, 1, 2]


@pytest.fixture
def ten(store, thread_id) -> str:
    """A thread with messages "m0" … "m9" at idx 0 … 9."""
    store.add_thread_messages(thread_id, [("user", f"m{i}") for i in range(10)])
    return thread_id


def idxs(messages) -> list[int]:
    return [m.idx for m in messages]


def test_get_thread_messages_orders_by_idx(store, ten):
    assert idxs(store.get_thread_messages(ten)) == list(range(10))


def test_get_thread_messages_after_idx_returns_only_later_messages(store, ten):
    assert idxs(store.get_thread_messages(ten, after_idx=6)) == [7, 8, 9]


def test_get_thread_messages_limit_returns_the_first_n(store, ten):
    assert idxs(store.get_thread_messages(ten, limit=3)) == [0, 1, 2]


def test_get_thread_messages_after_idx_and_limit_page_through_all_messages(store, ten):
    pages, after = [], None
    while page := store.get_thread_messages(ten, after_idx=after, limit=4):
        pages.append(idxs(page))
        after = page[-1].idx
    assert pages == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_get_thread_messages_last_returns_the_latest_n_in_idx_order(store, ten):
    assert idxs(store.get_thread_messages(ten, last=3)) == [7, 8, 9]


def test_get_thread_messages_last_more_than_exist_returns_all(store, ten):
    assert idxs(store.get_thread_messages(ten, last=50)) == list(range(10))


def test_get_thread_messages_of_an_empty_thread_is_empty(store, thread_id):
    assert store.get_thread_messages(thread_id) == []


def test_get_thread_messages_of_one_thread_excludes_other_threads(store, session, ten):
    other = store.create_thread(session.id, "Other").id
    store.add_thread_message(other, "user", "elsewhere")
    assert "elsewhere" not in [m.content for m in store.get_thread_messages(ten)]


# -- unknown ids: NotFoundError, nothing written -----------------------------------------------

ID_METHODS = {
    "get_session": lambda s: s.get_session(UNKNOWN),
    "delete_session": lambda s: s.delete_session(UNKNOWN),
    "get_session_threads": lambda s: s.get_session_threads(UNKNOWN),
    "create_thread": lambda s: s.create_thread(UNKNOWN, "x").id,
    "get_thread": lambda s: s.get_thread(UNKNOWN),
    "delete_thread": lambda s: s.delete_thread(UNKNOWN),
    "update_thread_timestamp": lambda s: s.update_thread_timestamp(UNKNOWN),
    "add_thread_message": lambda s: s.add_thread_message(UNKNOWN, "user", "hi").id,
    "add_thread_messages": lambda s: s.add_thread_messages(UNKNOWN, [("user", "hi")]),
    "get_thread_messages": lambda s: s.get_thread_messages(UNKNOWN),
    "get_thread_messages(after_idx, limit)": lambda s: s.get_thread_messages(UNKNOWN, after_idx=0, limit=5),
    "get_thread_messages(last)": lambda s: s.get_thread_messages(UNKNOWN, last=5),
}


@pytest.mark.parametrize("call", ID_METHODS.values(), ids=ID_METHODS.keys())
def test_an_unknown_id_raises_not_found_error(filled, call):
    store, _, _ = filled
    with pytest.raises(NotFoundError, match=UNKNOWN):
        call(store)


@pytest.mark.parametrize("call", ID_METHODS.values(), ids=ID_METHODS.keys())
def test_an_unknown_id_writes_nothing(filled, db_path, dump, call):
    store, _, _ = filled
    before, written = dump(db_path), changes(store)
    with pytest.raises(NotFoundError):
        call(store)
    assert (dump(db_path), changes(store)) == (before, written)


def test_a_thread_id_is_not_a_session_id(filled):
    store, _, thread_id = filled
    with pytest.raises(NotFoundError):
        store.get_session(thread_id)


def test_not_found_error_is_a_lookup_error(filled):
    store, _, _ = filled
    with pytest.raises(LookupError):
        store.get_thread(UNKNOWN)


# -- bad arguments: ValidationError before any SQL, nothing written ----------------------------

BAD_CALLS = {
    "unknown role": lambda s, t, _: s.add_thread_message(t, "robot", "hi").id,
    "role None": lambda s, t, _: s.add_thread_message(t, None, "hi").id,
    "role in capitals": lambda s, t, _: s.add_thread_message(t, "User", "hi").id,
    "content int": lambda s, t, _: s.add_thread_message(t, "user", 123).id,
    "content None": lambda s, t, _: s.add_thread_message(t, "user", None).id,
    "content bytes": lambda s, t, _: s.add_thread_message(t, "user", b"hi").id,
    "batch bad role last": lambda s, t, _: s.add_thread_messages(t, [("user", "a"), ("robot", "b")]),
    "batch content int": lambda s, t, _: s.add_thread_messages(t, [("user", "a"), ("user", 7)]),
    "batch not pairs": lambda s, t, _: s.add_thread_messages(t, ["user"]),
    "empty batch": lambda s, t, _: s.add_thread_messages(t, []),
    "thread name int": lambda s, t, sid: s.create_thread(sid, 42).id,
    "thread name None": lambda s, t, sid: s.create_thread(sid, None).id,
    "session name int": lambda s, t, _: s.create_session(name=42, amp_prompt="p", repo_root="/r"),
    "session name None": lambda s, t, _: s.create_session(name=None, amp_prompt="p", repo_root="/r"),
    "thread id int": lambda s, t, _: s.get_thread(42),
    "negative limit": lambda s, t, _: s.get_thread_messages(t, limit=-1),
    "negative last": lambda s, t, _: s.get_thread_messages(t, last=-1),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_a_bad_argument_raises_validation_error_before_any_sql(filled, sql_log, call):
    store, session_id, thread_id = filled
    statements = sql_log(store)
    with pytest.raises(ValidationError):
        call(store, thread_id, session_id)
    assert statements == []


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_a_bad_argument_leaves_the_database_unchanged(filled, db_path, dump, call):
    store, session_id, thread_id = filled
    before = dump(db_path)
    with pytest.raises(ValidationError):
        call(store, thread_id, session_id)
    assert dump(db_path) == before


def test_validation_error_is_a_value_error(filled):
    store, _, thread_id = filled
    with pytest.raises(ValueError):
        store.add_thread_message(thread_id, "robot", "hi")


# -- the data migration as a store method ------------------------------------------------------


def test_migrate_session_thread_ids_migrates_new_threaded_sessions_and_skips_migrated_ones(legacy_db):
    path = legacy_db(n=6, threaded=3)
    with SessionStore(path, migrate=True) as store:
        store.create_session(name="new 1", amp_prompt="p", repo_root="/r", thread_id="T-new-1")
        store.create_session(name="new 2", amp_prompt="p", repo_root="/r", thread_id="T-new-2")
        store.create_session(name="no thread", amp_prompt="p", repo_root="/r")
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (2, 3)


def test_migrate_session_thread_ids_a_second_time_migrates_nothing(legacy_db):
    path = legacy_db(n=6, threaded=3)
    with SessionStore(path, migrate=True) as store:
        store.create_session(name="new", amp_prompt="p", repo_root="/r", thread_id="T-new")
        store.migrate_session_thread_ids()
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (0, 4)
    assert count(path, "SELECT count(*) FROM threads") == 4


def test_migrating_a_session_gives_it_a_named_thread_with_one_system_message(store):
    created = store.create_session(name="Old work", amp_prompt="p", repo_root="/r", thread_id="T-abc")
    store.migrate_session_thread_ids()
    (thread,) = store.get_session_threads(created.id)
    assert (thread.name, thread.status, thread.created_at, thread.message_count) == (
        "Migrated Thread for Old work",
        "active",
        created.created_at,
        1,
    )
    (message,) = store.get_thread_messages(thread.id)
    assert (message.role, message.idx, message.content, message.created_at) == (
        "system",
        0,
        "Thread migrated from legacy threadId: T-abc",
        created.created_at,
    )


def test_sessions_with_null_or_empty_thread_id_get_no_thread(legacy_db):
    path = legacy_db(n=6, threaded=2)  # sessions 2..5: NULL, '', NULL, ''
    with SessionStore(path, migrate=True) as store:
        store.create_session(name="empty", amp_prompt="p", repo_root="/r", thread_id="")
        assert store.migrate_session_thread_ids().migrated == 0
    assert count(path, "SELECT count(*) FROM threads") == 2


def test_sessions_sharing_a_legacy_thread_id_each_get_their_own_thread(legacy_db):
    path = legacy_db(n=6, threaded=4, duplicates=2)
    with SessionStore(path, migrate=True):
        pass
    assert count(path, "SELECT count(DISTINCT threadId) FROM sessions WHERE threadId != ''") == 2
    assert count(path, "SELECT count(*) FROM threads") == 4
    assert count(path, "SELECT count(DISTINCT sessionId) FROM threads") == 4


# -- opening -----------------------------------------------------------------------------------


def assert_migrated_schema(path: Path) -> None:
    assert {"sessions", "threads", "thread_messages", "migrations"} <= tables(path)
    assert migrations_rows(path) == SHIPPED


def test_opening_a_new_path_creates_the_schema_through_the_migrations(db_path):
    SessionStore(db_path).close()
    assert_migrated_schema(db_path)


def test_opening_a_path_in_a_missing_folder_creates_the_folder(tmp_path):
    path = tmp_path / "a" / "b" / "sessions.db"
    SessionStore(path).close()
    assert_migrated_schema(path)


def test_the_migration_row_records_when_it_was_applied(db_path):
    SessionStore(db_path).close()
    applied_at = count(db_path, "SELECT applied_at FROM migrations WHERE version = 1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", applied_at)


def test_opening_a_zero_byte_file_treats_it_as_new(db_path):
    db_path.touch()
    SessionStore(db_path).close()
    assert_migrated_schema(db_path)


def test_opening_a_file_whose_tables_hold_no_rows_treats_it_as_new(db_path):
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE notes (body TEXT)")
    con.close()
    SessionStore(db_path).close()
    assert_migrated_schema(db_path)


@pytest.mark.parametrize("flavor", ["pre", "final"])
def test_opening_an_empty_legacy_file_migrates_it_without_asking(legacy_db, flavor):
    path = legacy_db(n=0, flavor=flavor)
    SessionStore(path).close()
    assert_migrated_schema(path)


def test_opening_an_empty_final_layout_file_keeps_its_extra_columns(legacy_db):
    path = legacy_db(n=0, flavor="final")
    SessionStore(path).close()
    con = raw(path)
    columns = [row[1] for row in con.execute("PRAGMA table_info(sessions)")]
    con.close()
    assert {"mode", "autoCommit", "ampMode"} <= set(columns)


def test_opening_a_legacy_file_with_data_raises_needs_migration_error(legacy_db):
    path = legacy_db(n=3)
    with pytest.raises(NeedsMigrationError, match="sessionorm migrate"):
        SessionStore(path)


def test_a_legacy_file_without_threaded_sessions_still_needs_migration(legacy_db):
    path = legacy_db(n=3, threaded=0)
    with pytest.raises(NeedsMigrationError):
        SessionStore(path)


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_refusing_to_open_a_legacy_file_leaves_it_byte_for_byte_unchanged(legacy_db, file_digest, wal):
    path = legacy_db(n=3, wal=wal)
    before = file_digest(path)
    with pytest.raises(NeedsMigrationError):
        SessionStore(path)
    assert file_digest(path) == before


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_refusing_to_open_a_legacy_file_leaves_no_files_behind(legacy_db, tmp_path, wal):
    path = legacy_db(n=3, wal=wal)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(NeedsMigrationError):
        SessionStore(path)
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("flavor", ["pre", "final"])
def test_opening_a_legacy_file_with_migrate_true_migrates_it(legacy_db, flavor):
    path = legacy_db(n=8, threaded=3, flavor=flavor)
    SessionStore(path, migrate=True).close()
    assert_migrated_schema(path)
    assert count(path, "SELECT count(*) FROM threads") == 3
    assert count(path, "SELECT count(*) FROM thread_messages WHERE role = 'system'") == 3


def test_a_migrated_file_reopens_without_migrate_true(legacy_db):
    path = legacy_db(n=4, threaded=2)
    SessionStore(path, migrate=True).close()
    with SessionStore(path) as store:
        assert store.migrate_session_thread_ids().migrated == 0
    assert count(path, "SELECT count(*) FROM threads") == 2


def test_a_file_the_orchestrator_already_migrated_is_not_migrated_again(legacy_db):
    path = legacy_db(n=4, threaded=2)
    con = raw(path)
    con.executescript("""
        CREATE TABLE threads (
          id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, name TEXT NOT NULL,
          createdAt TEXT NOT NULL, updatedAt TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
          FOREIGN KEY(sessionId) REFERENCES sessions(id) ON DELETE CASCADE);
        CREATE TABLE thread_messages (
          id TEXT PRIMARY KEY, threadId TEXT NOT NULL,
          role TEXT NOT NULL CHECK(role IN ('user','assistant','system')),
          content TEXT NOT NULL, createdAt TEXT NOT NULL, idx INTEGER NOT NULL,
          FOREIGN KEY(threadId) REFERENCES threads(id) ON DELETE CASCADE, UNIQUE(threadId, idx));
        CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
        INSERT INTO migrations VALUES (1, 'session-thread-relationship', '2025-08-24T12:34:56.789Z');
        INSERT INTO threads SELECT 'thread-' || id, id, 'Migrated Thread for ' || name, createdAt,
          createdAt, 'active' FROM sessions WHERE threadId != '';
        INSERT INTO thread_messages SELECT 'message-' || t.id, t.id, 'system',
          'Thread migrated from legacy threadId: ' || s.threadId, t.createdAt, 0
          FROM threads t JOIN sessions s ON s.id = t.sessionId;
    """)
    con.close()
    with pytest.raises(NeedsMigrationError, match="0002_orchestrator_index_names"):
        SessionStore(path)  # only the index names are pending
    with SessionStore(path, migrate=True) as store:
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (0, 2)
    assert count(path, "SELECT count(*) FROM threads") == 2
    assert migrations_rows(path) == SHIPPED


def test_opening_a_file_that_is_not_a_database_raises_database_open_error(db_path, file_digest):
    db_path.write_text("not a database, just some text that is long enough\n" * 10)
    before = file_digest(db_path)
    with pytest.raises(DatabaseOpenError):
        SessionStore(db_path)
    assert file_digest(db_path) == before


# -- both legacy layouts load ------------------------------------------------------------------

LEGACY_FIELDS = {
    "name": "name",
    "amp_prompt": "ampPrompt",
    "follow_up_prompts": "followUpPrompts",
    "repo_root": "repoRoot",
    "base_branch": "baseBranch",
    "branch_name": "branchName",
    "worktree_path": "worktreePath",
    "status": "status",
    "script_command": "scriptCommand",
    "thread_id": "threadId",
}


@pytest.mark.parametrize("flavor", ["pre", "final"])
def test_legacy_sessions_of_either_layout_read_back_unchanged(legacy_db, flavor):
    path = legacy_db(n=6, flavor=flavor)
    con = raw(path)
    con.row_factory = sqlite3.Row
    rows = con.execute("SELECT * FROM sessions").fetchall()
    con.close()
    with SessionStore(path, migrate=True) as store:
        for row in rows:
            got = store.get_session(row["id"])
            expected = {attribute: row[column] for attribute, column in LEGACY_FIELDS.items()}
            if row["followUpPrompts"] is not None:  # JSON text, read as the list it holds
                expected["follow_up_prompts"] = json.loads(row["followUpPrompts"])
            assert {attribute: getattr(got, attribute) for attribute in LEGACY_FIELDS} == expected


@pytest.mark.parametrize("flavor", ["pre", "final"])
def test_legacy_timestamps_read_back_as_aware_datetimes(legacy_db, flavor):
    path = legacy_db(n=2, flavor=flavor)
    with SessionStore(path, migrate=True) as store:
        first = store.get_session(
            store.db.execute_sql("SELECT id FROM sessions WHERE name = 'Session 001'").fetchone()[0]
        )
    # make_legacy_db: session i was created 7*i minutes after 2025-08-01, plus random milliseconds
    assert first.created_at.replace(microsecond=0) == dt.datetime(2025, 8, 1, 0, 7, tzinfo=dt.UTC)
    assert first.last_run.replace(microsecond=0) == dt.datetime(2025, 8, 1, 0, 10, tzinfo=dt.UTC)


def test_final_layout_extra_columns_read_as_snake_case_attributes(legacy_db):
    path = legacy_db(n=2, flavor="final")  # session 0: interactive, autoCommit 0; session 1: async, NULL
    with SessionStore(path, migrate=True) as store:
        ids = [r[0] for r in store.db.execute_sql("SELECT id FROM sessions ORDER BY name").fetchall()]
        first, second = (store.get_session(i) for i in ids)
    assert (first.mode, first.auto_commit, first.amp_mode) == ("interactive", 0, "production")
    assert (second.mode, second.auto_commit, second.amp_mode) == ("async", None, "production")


def test_create_session_on_the_final_layout_accepts_its_extra_columns(legacy_db):
    path = legacy_db(n=0, flavor="final")
    with SessionStore(path) as store:
        created = store.create_session(
            name="s", amp_prompt=None, repo_root="/r", mode="interactive", auto_commit=1
        )
    assert (created.amp_prompt, created.mode, created.auto_commit, created.amp_mode) == (
        None,
        "interactive",
        1,
        "production",
    )


# -- lifecycle ---------------------------------------------------------------------------------


def test_close_closes_the_connection(db_path):
    store = SessionStore(db_path)
    store.close()
    assert store.db.is_closed()


def test_close_leaves_no_wal_files_behind(db_path, session, store):
    store.close()
    assert not Path(f"{db_path}-wal").exists() and not Path(f"{db_path}-shm").exists()


def test_the_store_is_a_context_manager_that_closes_on_exit(db_path):
    with SessionStore(db_path) as store:
        assert not store.db.is_closed()
    assert store.db.is_closed()


def test_the_context_manager_closes_on_an_error(db_path):
    with pytest.raises(RuntimeError), SessionStore(db_path) as store:
        raise RuntimeError("boom")
    assert store.db.is_closed()


def test_the_store_repr_names_its_database(store, db_path):
    assert str(db_path) in repr(store)


# -- default path ------------------------------------------------------------------------------


def test_the_default_path_is_ampsm_db_path_when_set(tmp_path, monkeypatch):
    target = tmp_path / "env" / "from-env.sqlite"
    monkeypatch.setenv("AMPSM_DB_PATH", str(target))
    with SessionStore() as store:
        store.create_session(name="s", amp_prompt="p", repo_root="/r")
    assert count(target, "SELECT count(*) FROM sessions") == 1


def test_the_default_path_is_the_orchestrators_file_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("AMPSM_DB_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    SessionStore().close()
    assert_migrated_schema(tmp_path / ".config" / "ampsm" / "sessions.sqlite")


def test_a_closed_store_refuses_to_reconnect(db_path) -> None:
    from sessionorm import SessionormError

    store = SessionStore(db_path)
    session = store.create_session(name="n", amp_prompt="p", repo_root="/r")
    store.close()
    with pytest.raises(SessionormError, match="closed"):
        store.get_session(session.id)
    with pytest.raises(SessionormError, match="closed"):
        store.create_thread(session.id, "t")
    assert store.db.is_closed()


def test_a_missing_value_for_a_not_null_legacy_column_is_a_validation_error(store, db_path, dump) -> None:
    """baseBranch is NOT NULL without a default; ampPrompt is nullable since migration 3."""
    before = dump(db_path)
    with pytest.raises(ValidationError, match="base_branch"):
        store.create_session(name="n", amp_prompt="p", repo_root="/r", base_branch=None)
    assert dump(db_path) == before
    created = store.create_session(name="n", amp_prompt=None, repo_root="/r")
    assert count(db_path, "SELECT count(*) FROM sessions WHERE id = ? AND ampPrompt IS NULL", created.id) == 1


def test_rows_read_in_bulk_are_full_model_instances(store, thread_id) -> None:
    import datetime as dt

    store.add_thread_messages(thread_id, [("user", "a"), ("assistant", "b")])
    first, second = store.get_thread_messages(thread_id)
    assert first.created_at.tzinfo == dt.UTC and first.created_at is first.created_at
    assert second.thread_id == thread_id and second.idx == 1
    second.content = "edited"
    assert second._dirty == {"content"} and second.__rel__ == {}
    thread = store.get_session_threads(store.get_thread(thread_id).session_id)[0]
    assert thread.updated_at.tzinfo == dt.UTC and thread.message_count == 2
    with pytest.raises(AttributeError):
        first.no_such_attribute  # noqa: B018
