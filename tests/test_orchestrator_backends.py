"""Issue 11 on both backends: migration 0002 up and down, the data step, adoption,
`verify --exercise` and followUpPrompts, on SQLite and on PostgreSQL.

Uses pg_support's `Backend` (a fresh database per test; PostgreSQL from
$SESSIONORM_TEST_PG_URL, skipped without it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import SHIPPED_SCRIPTS
from cli_support import VERSION_1_INDEX_NAMES as VERSION_1_NAMES
from pg_support import Backend, fresh_backend, legacy_rows

from sessionorm import MigrationError, commands
from sessionorm.backends.pg_connections import open_url
from sessionorm.backends.sqlite_files import open_sqlite
from sessionorm.runner import MigrationRunner

CONTRACT_NAMES = sorted(
    [
        "idx_threads_session_id",
        "idx_threads_status",
        "idx_threads_created_at",
        "idx_threads_updated_at",
        "idx_thread_messages_thread_id",
        "idx_thread_messages_role",
        "idx_thread_messages_created_at",
        "idx_thread_messages_idx",
        "idx_threads_session_id_updated_at",
    ]
)
AFTER_1 = SHIPPED_SCRIPTS[1:]
# The orchestrator's start-up index statements; PostgreSQL needs its camelCase names quoted.
ORCHESTRATOR_INDEXES = [
    ("idx_threads_session_id", "threads", "sessionId"),
    ("idx_threads_status", "threads", "status"),
    ("idx_threads_created_at", "threads", "createdAt"),
    ("idx_threads_updated_at", "threads", "updatedAt"),
    ("idx_thread_messages_thread_id", "thread_messages", "threadId"),
    ("idx_thread_messages_created_at", "thread_messages", "createdAt"),
    ("idx_thread_messages_role", "thread_messages", "role"),
    ("idx_thread_messages_idx", "thread_messages", "idx"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path: Path, monkeypatch) -> Iterator[Backend]:
    """A fresh empty database per test, on each backend."""
    with fresh_backend(request.param, tmp_path, monkeypatch) as database:
        yield database


@pytest.fixture
def legacy(backend: Backend) -> Backend:
    backend.load_legacy(legacy_rows())
    return backend


def index_names(backend: Backend) -> list[str]:
    """Indexes of the thread tables, without those of primary keys and UNIQUE constraints."""
    if backend.is_pg:
        rows = backend.query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename IN ('threads', 'thread_messages')"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
    else:
        rows = backend.query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN"
            " ('threads', 'thread_messages') AND name NOT LIKE 'sqlite_autoindex_%'"
        )
    return sorted(r[0] for r in rows)


def migrate_to_version_1(backend: Backend) -> None:
    """Migration 1 alone, through the real runner (as sessionorm did before 0002 shipped)."""
    db = open_url(backend.target) if backend.is_pg else open_sqlite(backend.target)
    try:
        MigrationRunner(db).up("0001_session_thread_relationship")
    finally:
        db.close()


def orchestrator_starts(backend: Backend) -> None:
    for name, table, column in ORCHESTRATOR_INDEXES:
        backend.execute(f'CREATE INDEX IF NOT EXISTS {name} ON {table}("{column}")')


def test_migration_0002_up_and_down(legacy):
    migrate_to_version_1(legacy)
    assert index_names(legacy) == VERSION_1_NAMES
    orchestrator_starts(legacy)
    assert len(index_names(legacy)) == 14
    report = commands.verify(legacy.target)
    # Pending: migrations 2-5; threads.ampMode is migration 3's. No index is a problem.
    assert report.problems == [
        *(f"migration {m} is not applied" for m in AFTER_1),
        "add column threads.ampMode",
    ]
    assert len(report.notes) == 5 and all(n.startswith("duplicate index ") for n in report.notes)

    assert commands.migrate(legacy.target).applied == AFTER_1
    assert index_names(legacy) == CONTRACT_NAMES
    orchestrator_starts(legacy)
    assert index_names(legacy) == CONTRACT_NAMES
    report = commands.verify(legacy.target)
    assert (report.problems, report.notes) == ([], [])

    for later in reversed(AFTER_1):  # one at a time, the latest first; 0002 last
        assert commands.rollback(legacy.target).reverted == [later]
    assert index_names(legacy) == VERSION_1_NAMES
    assert legacy.query("SELECT version FROM migrations") == [(1,)]
    commands.migrate(legacy.target)
    assert index_names(legacy) == CONTRACT_NAMES


def test_a_new_database_has_the_orchestrators_index_names(backend):
    with backend.store():
        pass
    assert index_names(backend) == CONTRACT_NAMES
    assert commands.diff(backend.target) == []


def test_the_data_step_takes_a_thread_with_the_legacy_id_as_the_sessions_thread(legacy):
    migrate_to_version_1(legacy)
    rows = legacy_rows()
    session_id, thread_id = rows[2][0], rows[2][11]
    legacy.execute('DELETE FROM threads WHERE "sessionId" = ?', (session_id,))
    legacy.execute(
        'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt")'
        " VALUES (?, ?, ?, '2025-09-01T00:00:00.000Z', '2025-09-01T00:00:00.000Z')",
        (thread_id, session_id, f"Thread {thread_id}"),
    )
    commands.migrate(legacy.target)
    with legacy.store() as store:
        result = store.migrate_session_thread_ids()
        assert (result.migrated, result.skipped) == (0, 6)
        assert [t.id for t in store.get_session_threads(session_id)] == [thread_id]
    assert commands.verify(legacy.target).ok


def test_thread_tables_of_another_shape_are_refused_before_writing(legacy):
    legacy.execute(
        'CREATE TABLE threads (id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL'
        ' REFERENCES sessions(id), name TEXT NOT NULL, "createdAt" TEXT NOT NULL,'
        " \"updatedAt\" TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active')"
    )
    before = legacy.snapshot()
    with pytest.raises(MigrationError, match="foreign key threads.sessionId is not ON DELETE CASCADE"):
        commands.migrate(legacy.target)
    assert legacy.snapshot() == before


def test_verify_exercise_leaves_the_rows_as_they_were(legacy):
    commands.migrate(legacy.target)
    before = legacy.snapshot()
    report = commands.verify(legacy.target, exercise=True)
    assert report.ok, report.problems
    assert [(what.split(" on session")[0], passed) for what, passed, _ in report.exercise] == [
        ("create a thread", True),
        ("append 3 messages (idx 0..2)", True),
        ("read them back in order", True),
        ("delete the thread; its messages cascade", True),
        ("migration row 1 is recorded", True),
        ("rolled back: row counts unchanged", True),
    ]
    assert legacy.snapshot() == before


def test_backfill_creates_the_thread_of_a_late_session(legacy):
    commands.migrate(legacy.target)
    with legacy.store() as store:
        late = store.create_session(name="late", amp_prompt="p", repo_root="/r", thread_id="T-late")
    assert commands.verify(legacy.target).notes == [
        "1 sessions carry a threadId and have no thread for it yet (created, or given their "
        "threadId, after the migration): `sessionorm backfill` (or "
        "SessionStore.migrate_session_thread_ids()) creates them"
    ]
    result = commands.backfill(legacy.target)
    assert (result.migrated, result.skipped) == (1, 6)
    with legacy.store() as store:
        [made] = store.get_session_threads(late.id)
        assert re.fullmatch(r"T-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", made.id)
    assert commands.verify(legacy.target).notes == []


def test_follow_up_prompts_round_trip_as_a_list(backend):
    with backend.store() as store:
        made = store.create_session(name="s", amp_prompt="p", repo_root="/r", follow_up_prompts=["a", "b ü"])
        assert store.get_session(made.id).follow_up_prompts == ["a", "b ü"]
    assert backend.query('SELECT "followUpPrompts" FROM sessions') == [('["a","b ü"]',)]
