"""The schema a new database gets, read back with PRAGMAs and raw sqlite3 (the contract, Schema)."""

from __future__ import annotations

import re
import sqlite3

import pytest
from cli_support import APP_TABLES, CONTRACT_INDEXES, NEW_TABLES, SEARCH_TABLES_SQLITE

from sessionorm import SessionStore

# (name, type, notnull, default, pk) as PRAGMA table_info reports them.
COLUMNS = {
    "threads": [
        ("id", "TEXT", 0, None, 1),
        ("sessionId", "TEXT", 1, None, 0),
        ("name", "TEXT", 1, None, 0),
        ("createdAt", "TEXT", 1, None, 0),
        ("updatedAt", "TEXT", 1, None, 0),
        ("status", "TEXT", 1, "'active'", 0),
        ("ampMode", "TEXT", 0, None, 0),  # the app's column (migration 3), CHECKed
    ],
    "thread_messages": [
        ("id", "TEXT", 0, None, 1),
        ("threadId", "TEXT", 1, None, 0),
        ("role", "TEXT", 1, None, 0),
        ("content", "TEXT", 1, None, 0),
        ("createdAt", "TEXT", 1, None, 0),
        ("idx", "INTEGER", 1, None, 0),
    ],
    "migrations": [
        ("version", "INTEGER", 0, None, 1),
        ("name", "TEXT", 1, None, 0),
        ("applied_at", "TEXT", 1, None, 0),
    ],
    # A fresh database gets the orchestrator's `pre` layout of the legacy table, brought to
    # the app's newest schema by migration 3: ampPrompt nullable, mode/autoCommit/ampMode added.
    "sessions": [
        ("id", "TEXT", 0, None, 1),
        ("name", "TEXT", 1, None, 0),
        ("ampPrompt", "TEXT", 0, None, 0),
        ("followUpPrompts", "TEXT", 0, None, 0),
        ("repoRoot", "TEXT", 1, None, 0),
        ("baseBranch", "TEXT", 1, None, 0),
        ("branchName", "TEXT", 1, None, 0),
        ("worktreePath", "TEXT", 1, None, 0),
        ("status", "TEXT", 1, None, 0),
        ("scriptCommand", "TEXT", 0, None, 0),
        ("modelOverride", "TEXT", 0, None, 0),
        ("threadId", "TEXT", 0, None, 0),
        ("createdAt", "TEXT", 1, None, 0),
        ("lastRun", "TEXT", 0, None, 0),
        ("notes", "TEXT", 0, None, 0),
        ("contextIncluded", "BOOLEAN", 0, None, 0),
        ("mode", "TEXT", 0, "'async'", 0),
        ("autoCommit", "BOOLEAN", 0, "1", 0),
        ("ampMode", "TEXT", 0, "'production'", 0),
    ],
}
# Every table of a brand-new file: the contract's, sessionorm's own, and the app's (migration 3).
ALL_TABLES = sorted(["sessions", *NEW_TABLES, *SEARCH_TABLES_SQLITE, *APP_TABLES])


@pytest.fixture
def con(store: SessionStore, db_path) -> sqlite3.Connection:
    """A raw connection to the store's freshly created database, foreign keys on."""
    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("PRAGMA foreign_keys = ON")
    yield raw
    raw.close()


def indexes(con: sqlite3.Connection, table: str) -> dict[str, tuple[list[str], int, str]]:
    """index name -> (columns, unique, origin) for every index of `table`."""
    found = {}
    for _, name, unique, origin, _ in con.execute(f"PRAGMA index_list({table})"):
        columns = [row[2] for row in con.execute(f'PRAGMA index_info("{name}")')]
        found[name] = (columns, unique, origin)
    return found


@pytest.mark.parametrize("table", list(COLUMNS))
def test_table_columns_have_the_contract_names_types_not_null_and_defaults(con, table):
    columns = [row[1:] for row in con.execute(f"PRAGMA table_info({table})")]
    assert columns == COLUMNS[table]


def test_a_new_database_has_exactly_these_tables(con):
    names = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert sorted(r[0] for r in names) == ALL_TABLES


def test_thread_amp_mode_check_constraint_rejects_an_unknown_mode(con, session):
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        con.execute(
            'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", "ampMode")'
            " VALUES ('T-x', ?, 'n', '2025-08-24T12:34:56.789Z', '2025-08-24T12:34:56.789Z',"
            " 'staging')",
            (session.id,),
        )


@pytest.mark.parametrize(
    ("table", "column", "parent"),
    [
        ("threads", "sessionId", "sessions"),
        ("thread_messages", "threadId", "threads"),
    ],
)
def test_children_reference_their_parent_with_on_delete_cascade(con, table, column, parent):
    keys = [(row[2], row[3], row[4], row[6]) for row in con.execute(f"PRAGMA foreign_key_list({table})")]
    assert keys == [(parent, column, "id", "CASCADE")]


def test_role_check_constraint_rejects_an_unknown_role(con, thread_id):
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        con.execute(
            "INSERT INTO thread_messages (id, threadId, role, content, createdAt, idx)"
            " VALUES ('m1', ?, 'robot', 'hi', '2025-08-24T12:34:56.789Z', 0)",
            (thread_id,),
        )


@pytest.mark.parametrize("role", ["user", "assistant", "system"])
def test_role_check_constraint_accepts_the_three_roles(con, thread_id, role):
    con.execute(
        "INSERT INTO thread_messages (id, threadId, role, content, createdAt, idx)"
        " VALUES ('m1', ?, ?, 'hi', '2025-08-24T12:34:56.789Z', 0)",
        (thread_id, role),
    )


def test_thread_id_and_idx_are_unique_together(con, thread_id):
    ((columns, unique, origin),) = [
        spec for spec in indexes(con, "thread_messages").values() if spec[2] == "u"
    ]
    assert (columns, unique) == (["threadId", "idx"], 1)


def test_a_second_message_with_the_same_idx_in_a_thread_is_rejected(con, thread_id):
    insert = (
        "INSERT INTO thread_messages (id, threadId, role, content, createdAt, idx)"
        " VALUES (?, ?, 'user', 'hi', '2025-08-24T12:34:56.789Z', 0)"
    )
    con.execute(insert, ("m1", thread_id))
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed"):
        con.execute(insert, ("m2", thread_id))


def test_the_same_idx_in_another_thread_is_allowed(store, session, con, thread_id):
    other = store.create_thread(session.id, "Other").id
    insert = (
        "INSERT INTO thread_messages (id, threadId, role, content, createdAt, idx)"
        " VALUES (?, ?, 'user', 'hi', '2025-08-24T12:34:56.789Z', 0)"
    )
    con.execute(insert, ("m1", thread_id))
    con.execute(insert, ("m2", other))


def test_a_thread_of_an_unknown_session_is_rejected_by_the_foreign_key(con):
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        con.execute(
            "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt)"
            " VALUES ('t1', 'nope', 'x', '2025-08-24T12:34:56.789Z', '2025-08-24T12:34:56.789Z')"
        )


def test_thread_status_defaults_to_active_in_sql(con, session):
    con.execute(
        "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt)"
        " VALUES ('t1', ?, 'x', '2025-08-24T12:34:56.789Z', '2025-08-24T12:34:56.789Z')",
        (session.id,),
    )
    assert con.execute("SELECT status FROM threads WHERE id = 't1'").fetchone() == ("active",)


@pytest.mark.parametrize(("table", "column"), CONTRACT_INDEXES)
def test_contract_columns_have_a_single_column_index(con, table, column):
    assert ([column], 0, "c") in indexes(con, table).values()


def test_session_threads_have_an_index_on_session_and_updated_at(con):
    assert (["sessionId", "updatedAt"], 0, "c") in indexes(con, "threads").values()


# -- query plans ------------------------------------------------------------------------------


@pytest.fixture
def busy_store(store: SessionStore) -> SessionStore:
    """A store with a few sessions, threads and messages, so plans reflect real use."""
    for s in range(3):
        session = store.create_session(name=f"Session {s}", amp_prompt="p", repo_root="/tmp/repo")
        for t in range(3):
            thread = store.create_thread(session.id, f"Thread {t}").id
            store.add_thread_messages(thread, [("user", f"q{i}") for i in range(5)])
    return store


def plan_of(store: SessionStore, statements: list[str]) -> list[str]:
    """The EXPLAIN QUERY PLAN lines of the one SELECT among `statements`."""
    selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements
    connection = store.db.connection()
    connection.set_trace_callback(None)
    return [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + selects[0])]


def full_scans(plan: list[str]) -> list[str]:
    """Plan lines that read a whole table or a whole index (`SCAN …`) instead of searching."""
    return [line for line in plan if line.startswith("SCAN")]


def a_thread_of(store: SessionStore) -> tuple[str, str]:
    session_id = store.db.execute_sql("SELECT id FROM sessions LIMIT 1").fetchone()[0]
    return session_id, store.get_session_threads(session_id)[0].id


def test_listing_session_threads_with_message_counts_never_scans_a_table(busy_store, sql_log):
    session_id, _ = a_thread_of(busy_store)
    statements = sql_log(busy_store)
    busy_store.get_session_threads(session_id)
    plan = plan_of(busy_store, statements)
    assert full_scans(plan) == [], plan


def test_listing_session_threads_needs_no_sort(busy_store, sql_log):
    session_id, _ = a_thread_of(busy_store)
    statements = sql_log(busy_store)
    busy_store.get_session_threads(session_id)
    plan = plan_of(busy_store, statements)
    assert not [line for line in plan if "TEMP B-TREE" in line], plan


def test_getting_a_thread_with_its_message_count_never_scans_a_table(busy_store, sql_log):
    _, thread = a_thread_of(busy_store)
    statements = sql_log(busy_store)
    busy_store.get_thread(thread)
    plan = plan_of(busy_store, statements)
    assert full_scans(plan) == [], plan


PAGING = [
    {},
    {"after_idx": 1},
    {"limit": 2},
    {"after_idx": 1, "limit": 2},
    {"last": 2},
    {"after_idx": 0, "last": 2},
]


@pytest.mark.parametrize("paging", PAGING, ids=lambda p: ",".join(p) or "all")
def test_reading_thread_messages_never_scans_a_table(busy_store, sql_log, paging):
    _, thread = a_thread_of(busy_store)
    statements = sql_log(busy_store)
    assert busy_store.get_thread_messages(thread, **paging)
    plan = plan_of(busy_store, statements)
    assert full_scans(plan) == [], plan


@pytest.mark.parametrize("paging", PAGING, ids=lambda p: ",".join(p) or "all")
def test_reading_thread_messages_needs_no_sort(busy_store, sql_log, paging):
    _, thread = a_thread_of(busy_store)
    statements = sql_log(busy_store)
    busy_store.get_thread_messages(thread, **paging)
    plan = plan_of(busy_store, statements)
    assert not [line for line in plan if "TEMP B-TREE" in line], plan


def test_appending_a_message_finds_the_next_idx_without_a_scan(busy_store, sql_log):
    _, thread = a_thread_of(busy_store)
    statements = sql_log(busy_store)
    busy_store.add_thread_message(thread, "user", "one more")
    plan = plan_of(busy_store, statements)
    assert full_scans(plan) == [], plan


# -- timestamps as stored ----------------------------------------------------------------------

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
ISO_MS_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def test_thread_and_message_timestamps_are_stored_as_iso_utc_with_milliseconds(store, thread_id, con):
    store.add_thread_message(thread_id, "user", "hi")
    stored = con.execute(
        "SELECT t.createdAt, t.updatedAt, m.createdAt FROM threads t"
        " JOIN thread_messages m ON m.threadId = t.id"
    ).fetchone()
    for value in stored:
        assert re.match(ISO_MS_Z, value), value


def test_ids_are_lowercase_v4_uuids_and_thread_ids_carry_the_apps_t_prefix(store, session, thread_id):
    message_id = store.add_thread_message(thread_id, "user", "hi").id
    for value in (session.id, message_id):
        assert re.fullmatch(UUID4, value), value
    assert re.fullmatch("T-" + UUID4, thread_id), thread_id
