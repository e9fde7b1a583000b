"""Migration 1 on legacy files: what it creates, what it leaves alone, and running it twice.

the contract, "The data migration (version 1)"; issue 3.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cli_support import (
    CONTRACT_INDEXES,
    MESSAGE,
    SHIPPED_MIGRATIONS,
    SHIPPED_SCRIPTS,
    THREAD_NAME,
    UUID4,
    index_columns,
    invoke,
    legacy_snapshot,
    migrate_like_typescript,
    migrated_rows,
    query,
    raw,
    run_module,
    sidecars,
    tables,
    threaded_sessions,
    with_app_schema,
)

from sessionorm import NeedsMigrationError, SessionStore, commands

FLAVOURS = ["pre", "final"]
MIGRATIONS = SHIPPED_SCRIPTS
HISTORY = SHIPPED_MIGRATIONS
THREAD_ID = re.compile(r"^T-" + UUID4.pattern[1:])  # the app's thread ids: T-<uuid4>
N, THREADED, DUPLICATES = 12, 7, 3  # sessions 4..6 share session 0's threadId


@pytest.fixture(params=FLAVOURS)
def flavor(request) -> str:
    return request.param


@pytest.fixture
def legacy(legacy_db, flavor):
    """A legacy file with FK children (iterations, tool_calls) and a shared threadId."""
    return legacy_db(N, flavor=flavor, threaded=THREADED, duplicates=DUPLICATES, iterations=2)


@pytest.fixture
def migrated(legacy):
    result = invoke("migrate", "--db-path", legacy)
    assert result.exit_code == 0, result.output + result.stderr
    return legacy


def test_migrate_creates_threads_messages_and_the_migrations_table(legacy):
    assert not {"threads", "thread_messages", "migrations"} & tables(legacy)
    invoke("migrate", "--db-path", legacy)
    assert {"threads", "thread_messages", "migrations"} <= tables(legacy)


def test_migrate_creates_every_contract_index_as_a_single_column_index(migrated):
    assert set(CONTRACT_INDEXES) <= index_columns(migrated)


def test_one_thread_per_session_with_a_threadid(migrated):
    expected = sorted(s[0] for s in threaded_sessions(migrated))
    got = sorted(r[0] for r in query(migrated, 'SELECT "sessionId" FROM threads'))
    assert got == expected and len(got) == THREADED


def test_sessions_sharing_a_threadid_each_get_their_own_thread(migrated):
    shared = query(
        migrated,
        'SELECT "threadId" FROM sessions GROUP BY "threadId" HAVING count(*) > 1 AND "threadId" != \'\'',
    )
    assert len(shared) == 1
    owners = query(
        migrated,
        'SELECT count(DISTINCT t.id), count(DISTINCT t."sessionId") FROM threads t'
        ' JOIN sessions s ON s.id = t."sessionId" WHERE s."threadId" = ?',
        shared[0],
    )
    assert owners == [(DUPLICATES + 1, DUPLICATES + 1)]


def test_null_and_empty_threadid_get_no_thread(migrated):
    without = query(
        migrated,
        'SELECT "threadId", count(*) FROM sessions s WHERE "threadId" IS NULL'
        ' OR "threadId" = \'\' GROUP BY "threadId" ORDER BY 1',
    )
    assert [value for value, _ in without] == [None, ""]  # both kinds are in the file
    orphans = query(
        migrated,
        'SELECT count(*) FROM threads t JOIN sessions s ON s.id = t."sessionId"'
        ' WHERE s."threadId" IS NULL OR s."threadId" = \'\'',
    )
    assert orphans == [(0,)]


def test_thread_and_message_are_worded_as_the_contract_says(migrated):
    expected = sorted(
        (sid, THREAD_NAME.format(name), created, "active", "system", 0, MESSAGE.format(tid), created)
        for sid, name, tid, created in threaded_sessions(migrated)
    )
    assert migrated_rows(migrated) == expected


def test_each_migrated_thread_has_exactly_one_message(migrated):
    counts = query(
        migrated,
        'SELECT count(m.id) FROM threads t LEFT JOIN thread_messages m ON m."threadId" = t.id GROUP BY t.id',
    )
    assert counts and all(c == (1,) for c in counts)


def test_message_content_keeps_an_odd_threadid_verbatim(legacy_db):
    path = legacy_db(3, threaded=1)
    odd = "  T-ünïcode 'quoted' \"double\" -- not a comment; \n"
    with raw(path) as con:
        con.execute('UPDATE sessions SET "threadId" = ? WHERE "threadId" != \'\'', (odd,))
    invoke("migrate", "--db-path", path)
    assert query(path, "SELECT content FROM thread_messages") == [(MESSAGE.format(odd),)]
    assert query(path, 'SELECT "threadId" FROM sessions WHERE "threadId" = ?', (odd,)) == [(odd,)]


def test_migrations_row_records_version_1_with_its_applied_time(migrated):
    rows = query(migrated, "SELECT version, name, applied_at FROM migrations ORDER BY version")
    assert [(v, n) for v, n, _ in rows] == HISTORY
    applied = dt.datetime.fromisoformat(rows[0][2].replace("Z", "+00:00"))
    assert abs(dt.datetime.now(dt.UTC) - applied) < dt.timedelta(minutes=5)


def test_every_legacy_row_is_unchanged_and_only_the_apps_columns_are_added(legacy, flavor):
    """Rows of every legacy table stay as they were; the schema changes only as migration 3 says.

    Migration 3 appends the app's missing columns (the `pre` layout lacks four) and makes
    `sessions.ampPrompt` nullable by editing its stored DDL; the legacy file has all the app's
    tables already, so none is created anew.
    """
    before = legacy_snapshot(legacy)
    assert before["iterations"] and before["tool_calls"]  # FK children are present
    invoke("migrate", "--db-path", legacy)
    assert legacy_snapshot(legacy) == with_app_schema(before, flavor)


def test_sessions_threadid_is_left_in_place(legacy):
    before = query(legacy, 'SELECT id, "threadId" FROM sessions ORDER BY id')
    invoke("migrate", "--db-path", legacy)
    assert query(legacy, 'SELECT id, "threadId" FROM sessions ORDER BY id') == before


def test_integrity_and_foreign_keys_are_clean_afterwards(migrated):
    assert query(migrated, "PRAGMA integrity_check") == [("ok",)]
    assert query(migrated, "PRAGMA foreign_key_check") == []


def test_new_ids_are_t_prefixed_v4_uuids_for_threads_and_bare_v4_uuids_for_messages(migrated):
    """Migration 5 renames migration 1's bare thread ids to the app's `T-<uuid4>`."""
    threads = [r[0] for r in query(migrated, "SELECT id FROM threads")]
    messages = [r[0] for r in query(migrated, "SELECT id FROM thread_messages")]
    assert len(threads) == len(messages) == THREADED
    assert all(THREAD_ID.match(i) for i in threads), threads
    assert all(UUID4.match(i) for i in messages), messages
    ids = threads + messages
    assert len(set(ids)) == len(ids)


def test_migrate_api_reports_what_it_did(legacy):
    report = commands.migrate(legacy)
    assert report.applied == MIGRATIONS
    assert (report.migrated, report.skipped) == (THREADED, 0)


def test_migrate_cli_says_what_happened_with_counts(legacy):
    result = invoke("migrate", "--db-path", legacy)
    assert result.exit_code == 0
    assert "applied 0001_session_thread_relationship" in result.stdout
    assert "applied 0002_orchestrator_index_names" in result.stdout
    assert "applied 0005_app_thread_ids" in result.stdout
    assert f"threads created: {THREADED}" in result.stdout
    assert re.search(r"^done: 7 migration\(s\) in \d+\.\d\d s$", result.stdout, re.M), result.stdout


def test_migrate_on_a_missing_path_creates_a_new_database_and_says_so(tmp_path):
    path = tmp_path / "sub" / "new.db"
    result = invoke("migrate", "--db-path", path)
    assert result.exit_code == 0, result.stderr
    assert "created new database" in result.stdout
    assert {"sessions", "threads", "thread_messages", "migrations"} <= tables(path)


# -- idempotence ---------------------------------------------------------------------------


def test_second_migrate_changes_nothing(migrated, dump):
    before = dump(migrated)
    result = invoke("migrate", "--db-path", migrated)
    assert result.exit_code == 0
    assert "up to date" in result.stdout
    assert dump(migrated) == before


def test_second_migrate_api_applies_nothing(migrated):
    report = commands.migrate(migrated)
    assert report.pending == [] and report.applied == []


@pytest.fixture
def typescript_db(legacy):
    """A legacy file migrated by the original TypeScript orchestrator."""
    return migrate_like_typescript(legacy)


def test_typescript_migrated_database_counts_migration_1_as_applied(typescript_db):
    result = invoke("status", "--db-path", typescript_db)
    assert result.exit_code == 1, result.output  # everything after migration 1 is pending
    lines = result.stdout.splitlines()
    assert lines[0].startswith("applied  0001_session_thread_relationship")
    assert lines[1:] == [f"pending  {name}" for name in MIGRATIONS[1:]]


def test_typescript_migrated_database_is_not_migrated_twice(typescript_db):
    """No thread is made again; migration 5 only renames the TypeScript tool's ids to `T-` ids."""
    threads = query(typescript_db, "SELECT * FROM threads ORDER BY id")
    messages = query(typescript_db, "SELECT * FROM thread_messages ORDER BY id")
    report = commands.migrate(typescript_db)
    assert report.applied == MIGRATIONS[1:]
    assert report.migrated is None  # no data step ran
    # the same threads (ampMode NULL, added by 0003), each renamed to T-<old id>
    assert query(typescript_db, "SELECT * FROM threads ORDER BY id") == sorted(
        ("T-" + tid, *rest, None) for tid, *rest in threads
    )
    assert query(typescript_db, "SELECT * FROM thread_messages ORDER BY id") == [
        (mid, "T-" + tid, *rest) for mid, tid, *rest in messages
    ]
    assert query(typescript_db, "SELECT version, name FROM migrations ORDER BY version") == HISTORY


def test_typescript_migrated_database_passes_verify(typescript_db):
    invoke("migrate", "--db-path", typescript_db)
    result = invoke("verify", "--db-path", typescript_db)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert commands.verify(typescript_db).ok


def test_store_data_step_skips_sessions_already_migrated(migrated):
    with SessionStore(migrated) as store:
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (0, THREADED)
    assert query(migrated, "SELECT count(*) FROM threads") == [(THREADED,)]


def test_store_data_step_makes_a_thread_only_for_a_session_not_in_the_record(migrated):
    """A recorded session whose thread was deleted gets no new one (verify reports the loss);
    a session given a threadId after the migration gets its `T-` thread, and is recorded."""
    with raw(migrated) as con:
        con.execute('DELETE FROM threads WHERE "sessionId" = (SELECT min("sessionId") FROM threads)')
        late = con.execute('SELECT min(id) FROM sessions WHERE "threadId" IS NULL').fetchone()[0]
        con.execute("UPDATE sessions SET \"threadId\" = 'T-given-later' WHERE id = ?", (late,))
    with SessionStore(migrated) as store:
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (1, THREADED)
    assert query(migrated, 'SELECT count(*), count(DISTINCT "sessionId") FROM threads') == [
        (THREADED, THREADED)
    ]
    made = query(migrated, 'SELECT id FROM threads WHERE "sessionId" = ?', (late,))
    assert len(made) == 1 and THREAD_ID.match(made[0][0]), made
    assert query(
        migrated,
        'SELECT "threadId", "legacyThreadId" FROM sessionorm_migrated_threads WHERE "sessionId" = ?',
        (late,),
    ) == [(made[0][0], "T-given-later")]


def test_store_data_step_skips_typescript_migrated_sessions(typescript_db):
    with pytest.raises(NeedsMigrationError, match="0002_orchestrator_index_names"):
        SessionStore(typescript_db)
    with SessionStore(typescript_db, migrate=True) as store:
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (0, THREADED)


def test_a_thread_the_user_made_does_not_count_as_migrated(migrated):
    """Only the system marker message identifies a migrated thread, not just any thread.

    The session is given its threadId after the migration (so it is in no record).
    """
    with raw(migrated) as con:
        sid = con.execute('SELECT min(id) FROM sessions WHERE "threadId" IS NULL').fetchone()[0]
        con.execute("UPDATE sessions SET \"threadId\" = 'T-given-later' WHERE id = ?", (sid,))
    with SessionStore(migrated) as store:
        store.create_thread(sid, "my own thread")
        result = store.migrate_session_thread_ids()
    assert result.migrated == 1
    names = sorted(r[0] for r in query(migrated, 'SELECT name FROM threads WHERE "sessionId" = ?', (sid,)))
    assert names[1] == "my own thread" and names[0].startswith("Migrated Thread for ")


# -- dry run -------------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["wal", "rollback-journal"])
def journal_legacy(request, legacy_db, flavor):
    """A legacy file left in WAL mode, or in rollback-journal mode."""
    path = legacy_db(
        N, flavor=flavor, threaded=THREADED, duplicates=DUPLICATES, iterations=2, wal=request.param
    )
    assert path.read_bytes()[18] == (2 if request.param else 1)  # header: 2 = WAL, 1 = legacy
    return path


def test_dry_run_prints_pending_migration_sql_and_counts(legacy):
    result = invoke("migrate", "--dry-run", "--db-path", legacy)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "pending: 0001_session_thread_relationship" in out
    assert "CREATE TABLE IF NOT EXISTS threads" in out
    assert "CREATE TABLE IF NOT EXISTS thread_messages" in out
    assert "INSERT INTO threads" in out
    assert f"would migrate {THREADED} sessions, skip 0" in out


def test_dry_run_api_returns_the_plan(legacy):
    report = commands.migrate(legacy, dry_run=True)
    assert report.dry_run and report.pending == MIGRATIONS
    assert (report.migrated, report.skipped) == (THREADED, 0)
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS threads") for s in report.statements)
    # 0001 and 0002 together: each index is built once, under its final name
    assert any('CREATE INDEX "idx_thread_messages_role"' in s for s in report.statements)
    assert not any("idx_threads_sessionId" in s for s in report.statements)


def test_dry_run_counts_sessions_that_already_have_their_thread_as_skipped(migrated):
    with raw(migrated) as con:  # history and record lost, threads kept: the data step must not repeat
        con.execute("DELETE FROM migrations")
        con.execute("DELETE FROM sessionorm_migrated_threads")
        con.execute('DELETE FROM threads WHERE "sessionId" = (SELECT min("sessionId") FROM threads)')
    result = invoke("migrate", "--dry-run", "--db-path", migrated)
    assert f"would migrate 1 sessions, skip {THREADED - 1}" in result.stdout


def test_dry_run_changes_not_one_byte_and_leaves_no_sidecar_files(journal_legacy, file_digest):
    before, files = file_digest(journal_legacy), sorted(journal_legacy.parent.iterdir())
    assert not any(sidecars(journal_legacy).values())
    result = invoke("migrate", "--dry-run", "--db-path", journal_legacy)
    assert result.exit_code == 0, result.stderr
    assert file_digest(journal_legacy) == before
    assert sorted(journal_legacy.parent.iterdir()) == files
    assert not any(sidecars(journal_legacy).values())


def test_dry_run_api_changes_not_one_byte(journal_legacy, file_digest):
    before, files = file_digest(journal_legacy), sorted(journal_legacy.parent.iterdir())
    commands.migrate(journal_legacy, dry_run=True)
    assert file_digest(journal_legacy) == before
    assert sorted(journal_legacy.parent.iterdir()) == files


def test_dry_run_in_a_real_process_changes_not_one_byte(journal_legacy, file_digest):
    before = file_digest(journal_legacy)
    done = run_module("migrate", "--dry-run", "--db-path", journal_legacy)
    assert done.returncode == 0, done.stderr
    assert f"would migrate {THREADED} sessions, skip 0" in done.stdout
    assert file_digest(journal_legacy) == before
    assert not any(sidecars(journal_legacy).values())


def test_dry_run_on_a_missing_path_creates_nothing(tmp_path):
    path = tmp_path / "sub" / "new.db"
    result = invoke("migrate", "--dry-run", "--db-path", path)
    assert result.exit_code == 0, result.stderr
    assert "does not exist" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_dry_run_of_an_up_to_date_database_says_so(migrated, file_digest):
    before = file_digest(migrated)
    result = invoke("migrate", "--dry-run", "--db-path", migrated)
    assert result.exit_code == 0 and "up to date" in result.stdout
    assert file_digest(migrated) == before


def end_state(path) -> dict:
    """Schema objects (indexes by name and shape) and rows, independent of random ids and times."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        indexes = {}
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for _, name, unique, origin, partial in con.execute(f'PRAGMA index_list("{table}")'):
                columns = [r[2] for r in con.execute(f'PRAGMA index_info("{name}")')]
                indexes[name] = (table, columns, unique, origin, partial)
        tables = sorted(r for r in con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        threads = sorted(con.execute('SELECT "sessionId", name, status FROM threads'))
        messages = sorted(
            con.execute(
                'SELECT t."sessionId", m.role, m.content, m.idx FROM thread_messages m'
                ' JOIN threads t ON t.id = m."threadId"'
            )
        )
        history = sorted(con.execute("SELECT version, name FROM migrations"))
        checksums = sorted(con.execute("SELECT version, sha256 FROM migration_checksums"))
        return {
            "indexes": indexes,
            "tables": tables,
            "threads": threads,
            "messages": messages,
            "history": history,
            "checksums": checksums,
        }
    finally:
        con.close()


def test_migrations_1_and_2_together_leave_what_they_leave_one_by_one(legacy_db):
    from sessionorm.backends.sqlite_files import open_sqlite
    from sessionorm.runner import MigrationRunner

    together = legacy_db(n=40, name="together.db")
    one_by_one = legacy_db(n=40, name="one_by_one.db")
    assert commands.migrate(together).applied == MIGRATIONS
    db = open_sqlite(one_by_one)
    try:
        assert MigrationRunner(db).up(target=MIGRATIONS[0]) == MIGRATIONS[:1]
    finally:
        db.close()
    assert commands.migrate(one_by_one).applied == MIGRATIONS[1:]
    assert end_state(together) == end_state(one_by_one)
    assert commands.verify(together).ok
