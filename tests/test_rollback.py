"""`sessionorm rollback` / `rollback(db)`: back up first, then undo the latest migration in one
transaction (0005, 0004, 0003 -- which keeps the app's schema on purpose --, 0002, 0001).

Refuses to destroy threads or messages that the migration did not create unless --force.
the contract, CLI; issue 3.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import (
    BACKUP_SUFFIX,
    invoke,
    legacy_snapshot,
    migrate_to_version_1,
    migrated_rows,
    one_error_line,
    query,
    raw,
    run_module,
    tables,
    with_app_schema,
)

from sessionorm import MigrationError, SessionStore, commands
from sessionorm.backends.sqlite_files import open_sqlite

FLAVOURS = ["pre", "final"]
THREADED = 5


@pytest.fixture(params=FLAVOURS)
def flavor(request) -> str:
    return request.param


@pytest.fixture
def legacy(flavor, legacy_db) -> Path:
    return legacy_db(9, flavor=flavor, threaded=THREADED, duplicates=2, iterations=2)


@pytest.fixture
def before(legacy) -> dict:
    """The legacy file's content before it is migrated."""
    return legacy_snapshot(legacy)


@pytest.fixture
def migrated(legacy, before) -> Path:
    """Migration 1 applied, and 0002 not yet: rollback then reverts migration 1."""
    return migrate_to_version_1(legacy)


RECORD_TABLES = {"sessionorm_migrated_threads", "sessionorm_unmatched_sessions"}


def schema(path: Path) -> list[tuple]:
    return query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")


def test_rollback_of_a_fully_migrated_file_goes_back_one_migration_at_a_time(legacy, before, flavor):
    assert invoke("migrate", "--db-path", legacy).exit_code == 0
    renamed = query(legacy, 'SELECT id, "sessionId" FROM threads ORDER BY "sessionId"')
    assert renamed and all(tid.startswith("T-") for tid, _ in renamed)

    def rollback(name: str, versions_left: int) -> None:
        result = invoke("rollback", "--db-path", legacy)
        assert result.exit_code == 0, result.stderr
        assert f"reverted {name}" in result.stdout
        assert query(legacy, "SELECT version FROM migrations ORDER BY version") == [
            (v,) for v in range(1, versions_left + 1)
        ]

    # Migrated at once, the threads were made with `T-` ids: no rename to put back (a file
    # renamed by 0005 gets its old ids back: test_app_coexistence)
    rollback("0007_message_search", 6)  # the search index goes; the messages stay
    assert not {t for t in tables(legacy) if t.startswith("sessionorm_search")}
    rollback("0006_agent_memory", 5)  # no agent items: nothing to refuse
    assert not {"sessionorm_agent_sessions", "sessionorm_agent_items"} & tables(legacy)
    rollback("0005_app_thread_ids", 4)
    assert query(legacy, 'SELECT id, "sessionId" FROM threads ORDER BY "sessionId"') == renamed
    assert query(legacy, 'SELECT count(*) FROM thread_messages m JOIN threads t ON t.id = m."threadId"') == [
        (THREADED,)
    ]
    assert "sessionorm_renamed_threads" not in tables(legacy)
    rollback("0004_migrated_thread_record", 3)  # the record tables go
    assert not RECORD_TABLES & tables(legacy)
    schema_at_3 = schema(legacy)
    rollback("0003_orchestrator_app_schema", 2)  # changes nothing in the schema, on purpose
    assert schema(legacy) == schema_at_3
    rollback("0002_orchestrator_index_names", 1)
    assert {"threads", "thread_messages"} <= tables(legacy)
    rollback("0001_session_thread_relationship", 0)
    assert not {"threads", "thread_messages"} & tables(legacy)
    assert legacy_snapshot(legacy) == with_app_schema(before, flavor)  # the app's schema stays
    assert len(backups(legacy)) == 7


def backups(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.backup-"))


@contextlib.contextmanager
def store_on(path: Path) -> Iterator[SessionStore]:
    """The store on a file at version 1 (`SessionStore(path)` would ask for migration 0002)."""
    db = open_sqlite(path)
    try:
        yield SessionStore.on_database(db, str(path))
    finally:
        db.close()


def user_thread(path: Path) -> str:
    """A thread the user created (no migration marker) in the first session.

    Written with plain SQL: at version 1 the file's threads lack `ampMode`, which the store's
    create_thread writes (only a file at the latest migration opens as a store).
    """
    session_id = query(path, "SELECT id FROM sessions ORDER BY rowid LIMIT 1")[0][0]
    thread_id = "T-00000000-0000-4000-8000-000000000001"
    with raw(path) as con:
        con.execute(
            'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
            " VALUES (?, ?, 'Feature Discussion', '2025-08-24T12:34:56.789Z',"
            " '2025-08-24T12:34:56.789Z', 'active')",
            (thread_id, session_id),
        )
    return thread_id


def test_rollback_takes_a_backup_first_and_prints_it(migrated, dump):
    state = dump(migrated)
    result = invoke("rollback", "--db-path", migrated)
    assert result.exit_code == 0, result.stderr
    match = re.search(r"^backup: (\S+)$", result.stdout, re.M)
    assert match, result.stdout
    saved = Path(match.group(1))
    assert re.fullmatch(re.escape(migrated.name) + BACKUP_SUFFIX, saved.name)
    assert backups(migrated) == [saved]
    assert dump(saved) == state  # the migrated database, threads and all


def test_rollback_removes_the_new_tables_and_their_indexes(migrated):
    invoke("rollback", "--db-path", migrated)
    assert not {"threads", "thread_messages"} & tables(migrated)
    assert (
        query(migrated, "SELECT name FROM sqlite_master WHERE tbl_name IN ('threads', 'thread_messages')")
        == []
    )


def test_rollback_removes_the_migrations_row(migrated):
    invoke("rollback", "--db-path", migrated)
    rows = query(migrated, "SELECT * FROM migrations") if "migrations" in tables(migrated) else []
    assert rows == []


def test_rollback_leaves_sessions_and_every_other_table_as_before_migrate(migrated, before):
    invoke("rollback", "--db-path", migrated)
    assert legacy_snapshot(migrated) == before


def test_rollback_reports_what_it_reverted(migrated):
    result = invoke("rollback", "--db-path", migrated)
    assert "reverted 0001_session_thread_relationship" in result.stdout


def test_rollback_api_returns_its_backup_and_what_it_reverted(migrated, before):
    report = commands.rollback(migrated)
    assert report.reverted == ["0001_session_thread_relationship"]
    assert report.backup is not None and report.backup.exists()
    assert legacy_snapshot(migrated) == before


def test_rollback_then_migrate_again_works(migrated, before, flavor):
    first = migrated_rows(migrated)
    assert invoke("rollback", "--db-path", migrated).exit_code == 0
    result = invoke("migrate", "--db-path", migrated)
    assert result.exit_code == 0, result.stderr
    assert migrated_rows(migrated) == first  # same content; ids are new
    assert legacy_snapshot(migrated) == with_app_schema(before, flavor)  # migrate ran 0003 too
    assert invoke("verify", "--db-path", migrated).exit_code == 0


def test_rollback_in_a_real_process(migrated, before):
    done = run_module("rollback", "--db-path", migrated)
    assert done.returncode == 0, done.stderr
    assert legacy_snapshot(migrated) == before
    assert run_module("status", "--db-path", migrated).returncode == 1  # pending again


def test_rollback_refuses_to_destroy_a_thread_the_user_created(migrated, dump):
    user_thread(migrated)
    state = dump(migrated)
    result = invoke("rollback", "--db-path", migrated)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "refusing" in line and "--force" in line
    assert dump(migrated) == state
    assert backups(migrated) == []  # refused before anything was written


def test_rollback_refuses_to_destroy_a_message_the_user_added(migrated, dump):
    thread_id = query(migrated, "SELECT id FROM threads LIMIT 1")[0][0]
    with store_on(migrated) as store:
        store.add_thread_message(thread_id, "user", "Hello!")
    state = dump(migrated)
    done = run_module("rollback", "--db-path", migrated)
    assert done.returncode == 2
    assert "1 messages" in one_error_line(done.stderr)
    assert dump(migrated) == state


def test_rollback_api_refuses_without_force(migrated, dump):
    user_thread(migrated)
    state = dump(migrated)
    with pytest.raises(MigrationError, match="refusing"):
        commands.rollback(migrated)
    assert dump(migrated) == state


def test_rollback_force_destroys_user_threads_too(migrated, before):
    user_thread(migrated)
    result = invoke("rollback", "--force", "--db-path", migrated)
    assert result.exit_code == 0, result.stderr
    assert not {"threads", "thread_messages"} & tables(migrated)
    assert legacy_snapshot(migrated) == before
    assert len(backups(migrated)) == 1


def test_rollback_of_a_legacy_file_is_an_error_and_changes_nothing(legacy, dump):
    state = dump(legacy)
    result = invoke("rollback", "--db-path", legacy)
    assert result.exit_code == 2
    assert "no applied migration" in one_error_line(result.stderr)
    assert dump(legacy) == state
