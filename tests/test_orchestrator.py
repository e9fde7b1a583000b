"""Living beside the orchestrator (issue 11): its index names, databases it touched first,
its sessions rebuild, and a `verify` that tells lost data from harmless differences.

Every case is built from the orchestrator's own start-up DDL (`orchestrator_threads.sql`,
a verbatim copy) on real files, through the real CLI.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import pytest
from cli_support import (
    SHIPPED_SCRIPTS,
    invoke,
    migrate_to_version_1,
    one_error_line,
    query,
    raw,
    run_module,
    shipped_script,
    sidecars,
    threaded_sessions,
)
from cli_support import (
    VERSION_1_INDEX_NAMES as VERSION_1_NAMES,
)

from sessionorm import MigrationError, SessionStore, ValidationError, commands

ORCHESTRATOR_SQL = (Path(__file__).with_name("orchestrator_threads.sql")).read_text()
ORCHESTRATOR_INDEXES = re.findall(r"CREATE INDEX IF NOT EXISTS (\w+)", ORCHESTRATOR_SQL)
CONTRACT_NAMES = sorted([*ORCHESTRATOR_INDEXES, "idx_threads_session_id_updated_at"])
N, THREADED = 10, 6
PENDING_AFTER_1 = SHIPPED_SCRIPTS[1:]
T_UUID4 = r"T-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def lost(thread_ids: list[str]) -> str:
    """verify's problem line for migrated threads gone while their sessions remain."""
    ids = sorted(thread_ids)
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return (
        f"problem: {len(ids)} migrated threads are gone, with all their messages (at least "
        f"their {len(ids)} migration markers), while their sessions remain: {shown}; "
        "`sessionorm restore-threads --from BACKUP` copies back what a backup holds of them "
        "and nothing else (see README, 'Living with the orchestrator')"
    )


def index_names(path: Path) -> list[str]:
    """Named indexes of the thread tables (SQLite's own autoindexes left out)."""
    return sorted(
        r[0]
        for r in query(
            path,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN"
            " ('threads', 'thread_messages') AND name NOT LIKE 'sqlite_autoindex_%'",
        )
    )


def all_indexes(path: Path) -> int:
    return query(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'")[0][0]


def orchestrator_starts(path: Path) -> None:
    """What the orchestrator runs on every start, for the thread tables."""
    with raw(path) as con:
        con.executescript(ORCHESTRATOR_SQL)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ok(*args) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


@pytest.fixture(params=["pre", "final"])
def legacy(request, legacy_db) -> Path:
    return legacy_db(N, flavor=request.param, threaded=THREADED)


@pytest.fixture
def migrated(legacy) -> Path:
    ok("migrate", "--db-path", legacy)
    return legacy


# -- the orchestrator's index names ---------------------------------------------------------


def test_a_migrated_database_has_exactly_the_orchestrators_index_names(migrated):
    assert index_names(migrated) == CONTRACT_NAMES


def test_a_new_database_has_exactly_the_orchestrators_index_names(db_path):
    SessionStore(db_path).close()
    assert index_names(db_path) == CONTRACT_NAMES


def test_the_orchestrators_start_up_is_a_no_op_after_migrate(migrated, dump):
    count, before = all_indexes(migrated), dump(migrated)
    orchestrator_starts(migrated)
    assert all_indexes(migrated) == count
    assert dump(migrated) == before
    assert ok("verify", "--db-path", migrated).endswith(": ok (migrations, schema, integrity, data)\n")
    assert ok("diff", "--db-path", migrated).endswith("in sync with the models\n")


def test_the_orchestrators_start_up_is_a_no_op_on_a_new_database(db_path, dump):
    SessionStore(db_path).close()
    before = dump(db_path)
    orchestrator_starts(db_path)
    assert dump(db_path) == before


def test_the_models_name_their_indexes_as_the_orchestrator_does(migrated):
    from sessionorm.models import Thread, ThreadMessage

    declared = sorted(i._name for m in (Thread, ThreadMessage) for i in m._meta.fields_to_index())
    assert declared == CONTRACT_NAMES


# -- a database migrated before 0002, then started by the orchestrator ------------------------


@pytest.fixture
def started_at_version_1(legacy) -> Path:
    """Migration 1's index names, then an orchestrator start: 5 duplicates (14 indexes, not 9)."""
    migrate_to_version_1(legacy)
    orchestrator_starts(legacy)
    assert len(index_names(legacy)) == 14
    return legacy


def test_duplicate_indexes_are_notes_not_problems(started_at_version_1):
    result = invoke("verify", "--db-path", started_at_version_1)
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    # Pending: migrations 2-5; threads.ampMode is migration 3's. No index is a problem.
    assert problems == [
        *(f"problem: migration {m} is not applied" for m in PENDING_AFTER_1),
        "problem: add column threads.ampMode",
    ]
    assert notes == [
        "note: duplicate index idx_threads_createdAt on threads (createdAt): the same index as "
        "idx_threads_created_at",
        "note: duplicate index idx_threads_sessionId on threads (sessionId): the same index as "
        "idx_threads_session_id",
        "note: duplicate index idx_threads_updatedAt on threads (updatedAt): the same index as "
        "idx_threads_updated_at",
        "note: duplicate index idx_thread_messages_createdAt on thread_messages (createdAt): the same "
        "index as idx_thread_messages_created_at",
        "note: duplicate index idx_thread_messages_threadId on thread_messages (threadId): the same "
        "index as idx_thread_messages_thread_id",
    ]


def test_diff_and_makemigration_see_duplicates_as_the_same_index(started_at_version_1, tmp_path):
    # The one difference is threads.ampMode (pending migration 3 adds it): no index operation.
    result = invoke("diff", "--db-path", started_at_version_1)
    assert result.exit_code == 1, result.output
    assert result.stdout == "add column threads.ampMode\n"
    assert result.stderr.count("note: duplicate index") == 5
    # makemigration first wants the shipped migrations applied (its script would repeat them)
    made = invoke(
        "makemigration", "x", "--db-path", started_at_version_1, "--migrations-dir", tmp_path / "mig"
    )
    assert made.exit_code == 2
    assert "has shipped migrations pending (0002_orchestrator_index_names" in made.stderr
    assert not (tmp_path / "mig").exists()
    assert invoke("migrate", "--db-path", started_at_version_1).exit_code == 0
    with sqlite3.connect(started_at_version_1) as con:  # the orchestrator's duplicate, again
        con.execute('CREATE INDEX "idx_threads_createdAt" ON threads ("createdAt")')
    made = invoke(
        "makemigration", "x", "--db-path", started_at_version_1, "--migrations-dir", tmp_path / "mig"
    )
    assert made.exit_code == 0, made.output
    assert "in sync" in made.stdout
    assert not list((tmp_path / "mig").glob("*.py"))


def session_columns(path: Path) -> str:
    return ", ".join(f'"{r[1]}"' for r in query(path, "PRAGMA table_info(sessions)"))


def test_migration_0002_renames_and_drops_the_duplicates(started_at_version_1, dump):
    columns = session_columns(started_at_version_1)  # migration 3 adds the app's columns
    sessions = query(started_at_version_1, f"SELECT {columns} FROM sessions ORDER BY id")
    threads = query(started_at_version_1, "SELECT * FROM threads ORDER BY id")
    messages = query(started_at_version_1, "SELECT * FROM thread_messages ORDER BY id")
    out = ok("migrate", "--db-path", started_at_version_1)
    assert "applied 0002_orchestrator_index_names" in out
    assert index_names(started_at_version_1) == CONTRACT_NAMES
    # Every row kept; migration 5 gives each thread its `T-` id, migration 3 threads.ampMode.
    assert query(started_at_version_1, f"SELECT {columns} FROM sessions ORDER BY id") == sessions
    assert query(started_at_version_1, "SELECT * FROM threads ORDER BY id") == sorted(
        (f"T-{t[0]}", *t[1:], None) for t in threads
    )
    assert query(started_at_version_1, "SELECT * FROM thread_messages ORDER BY id") == [
        (m[0], f"T-{m[1]}", *m[2:]) for m in messages
    ]
    assert "note:" not in ok("verify", "--db-path", started_at_version_1)
    before = dump(started_at_version_1)
    orchestrator_starts(started_at_version_1)
    assert dump(started_at_version_1) == before


def test_migration_0002_on_a_version_1_database_renames_migration_1s_names(legacy):
    migrate_to_version_1(legacy)
    assert index_names(legacy) == VERSION_1_NAMES
    ok("migrate", "--db-path", legacy)
    assert index_names(legacy) == CONTRACT_NAMES


def test_migration_0002_down_restores_migration_1s_names(legacy):
    migrate_to_version_1(legacy)
    ok("migrate", "--db-path", legacy)
    for later in reversed(PENDING_AFTER_1[1:]):  # one at a time, the latest first
        assert f"reverted {later}\n" in ok("rollback", "--db-path", legacy)
    assert "reverted 0002_orchestrator_index_names" in ok("rollback", "--db-path", legacy)
    assert index_names(legacy) == VERSION_1_NAMES
    assert query(legacy, "SELECT version FROM migrations") == [(1,)]
    ok("migrate", "--db-path", legacy)
    assert index_names(legacy) == CONTRACT_NAMES
    ok("verify", "--db-path", legacy)


def test_migration_0002_dry_run_shows_the_renames_and_changes_nothing(legacy, file_digest):
    migrate_to_version_1(legacy)
    before = file_digest(legacy)
    out = ok("migrate", "--dry-run", "--db-path", legacy)
    assert 'DROP INDEX "idx_threads_sessionId"' in out
    assert 'CREATE INDEX "idx_threads_session_id" ON "threads" ("sessionId")' in out
    assert file_digest(legacy) == before


def test_migration_0002_refuses_an_orchestrator_name_on_another_shape(legacy, dump):
    migrate_to_version_1(legacy)
    with raw(legacy) as con:
        con.execute('CREATE INDEX idx_threads_session_id ON threads (status, "sessionId")')
    before = dump(legacy)
    result = invoke("migrate", "--db-path", legacy)
    assert result.exit_code == 2
    assert (
        "index idx_threads_session_id exists on threads (status, sessionId), not on threads "
        "(sessionId)" in one_error_line(result.stderr)
    )
    assert dump(legacy) == before


# -- indexes by shape ---------------------------------------------------------------------------


def test_an_index_under_another_name_is_the_same_index(migrated):
    with raw(migrated) as con:
        con.execute("DROP INDEX idx_threads_status")
        con.execute("CREATE INDEX my_status ON threads (status)")
    assert ok("verify", "--db-path", migrated).endswith(": ok (migrations, schema, integrity, data)\n")
    assert invoke("diff", "--db-path", migrated).exit_code == 0


def test_a_second_index_of_one_shape_is_a_note(migrated):
    with raw(migrated) as con:
        con.execute("CREATE INDEX my_status ON threads (status)")
    out = ok("verify", "--db-path", migrated)
    assert (
        "note: duplicate index my_status on threads (status): the same index as idx_threads_status\n"
    ) in out


@pytest.mark.parametrize(
    "other",
    [
        "CREATE INDEX other ON threads (status) WHERE status = 'active'",  # a predicate
        "CREATE UNIQUE INDEX other ON threads (status, id)",  # uniqueness and columns
        'CREATE INDEX other ON threads ("updatedAt", "sessionId")',  # column order
    ],
    ids=["partial", "unique", "order"],
)
def test_a_missing_shape_is_a_problem_whatever_else_exists(migrated, other):
    with raw(migrated) as con:
        con.execute(other)
        con.execute(
            "DROP INDEX idx_threads_status"
            if "status" in other
            else "DROP INDEX idx_threads_session_id_updated_at"
        )
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 1
    missing = "(status)" if "status" in other else "(sessionId, updatedAt)"
    assert f"problem: add index threads {missing}\n" in result.stdout
    assert "problem: drop index threads.other" in result.stdout  # not the contract's
    assert "note:" not in result.stdout


def test_makemigration_recreates_a_missing_index_under_the_orchestrators_name(migrated, tmp_path):
    with raw(migrated) as con:
        con.execute("DROP INDEX idx_threads_session_id")
    ok("makemigration", "restore", "--db-path", migrated, "--migrations-dir", tmp_path / "mig")
    text = (tmp_path / "mig" / "0008_restore.py").read_text()  # after the shipped 0001-0007
    assert "migrator.add_index('threads', ('sessionId',), name='idx_threads_session_id')" in text
    assert "migrator.drop_index('threads', 'idx_threads_session_id')" in text  # its down()
    ok("migrate", "--db-path", migrated, "--migrations-dir", tmp_path / "mig")
    assert index_names(migrated) == CONTRACT_NAMES
    ok("rollback", "--db-path", migrated, "--migrations-dir", tmp_path / "mig")
    assert "idx_threads_session_id" not in index_names(migrated)


# -- a database the orchestrator created its thread tables in first ---------------------------


def orchestrator_first(path: Path) -> dict[str, list[tuple]]:
    """The orchestrator's tables and indexes on a legacy file, with threads of its own.

    Session 0 gets its legacy thread as a row whose id IS the threadId (later orchestrator
    versions); session 1 a thread for another purpose, with a message. No `migrations` table.
    """
    orchestrator_starts(path)
    (s0, _, t0, _), (s1, _, _, _) = sorted(threaded_sessions(path), key=lambda r: r[3])[:2]
    with raw(path) as con:
        con.execute(
            "INSERT INTO threads VALUES (?, ?, ?, '2025-09-01T00:00:00.000Z',"
            " '2025-09-01T00:00:00.000Z', 'active')",
            (t0, s0, f"Thread {t0}"),
        )
        con.execute(
            "INSERT INTO threads VALUES ('t-own', ?, 'Feature Discussion',"
            " '2025-09-01T00:00:00.000Z', '2025-09-02T00:00:00.000Z', 'active')",
            (s1,),
        )
        con.execute(
            "INSERT INTO thread_messages VALUES ('m-own', 't-own', 'user', 'Hello!',"
            " '2025-09-02T00:00:00.000Z', 0)"
        )
    return {
        "threads": query(path, "SELECT * FROM threads ORDER BY id"),
        "thread_messages": query(path, "SELECT * FROM thread_messages ORDER BY id"),
        "sessions": [(s0, t0), (s1,)],
    }


def test_migrate_adopts_the_orchestrators_tables_and_keeps_its_rows(legacy):
    theirs = orchestrator_first(legacy)
    assert "migrations" not in {r[0] for r in query(legacy, "SELECT name FROM sqlite_master")}
    out = ok("migrate", "--db-path", legacy)
    assert f"threads created: {THREADED - 1}; sessions skipped (already migrated): 1" in out
    # Kept, under the `T-` id the app lists (migration 5), with threads.ampMode (migration 3).
    t_id = {"t-own": "T-t-own"}
    kept_threads = set(query(legacy, "SELECT * FROM threads"))
    assert {(t_id.get(t[0], t[0]), *t[1:], None) for t in theirs["threads"]} <= kept_threads
    kept_messages = set(query(legacy, "SELECT * FROM thread_messages"))
    assert {(m[0], t_id.get(m[1], m[1]), *m[2:]) for m in theirs["thread_messages"]} <= kept_messages
    assert index_names(legacy) == CONTRACT_NAMES
    assert ok("verify", "--db-path", legacy).endswith(": ok (migrations, schema, integrity, data)\n")


def test_a_thread_whose_id_is_the_legacy_thread_id_is_the_sessions_thread(legacy):
    theirs = orchestrator_first(legacy)
    (s0, t0), (s1,) = theirs["sessions"]
    ok("migrate", "--db-path", legacy)
    assert query(legacy, 'SELECT id, name FROM threads WHERE "sessionId" = ?', (s0,)) == [
        (t0, f"Thread {t0}")
    ]  # no second thread
    names = sorted(r[0] for r in query(legacy, 'SELECT name FROM threads WHERE "sessionId" = ?', (s1,)))
    assert names[0] == "Feature Discussion" and names[1].startswith("Migrated Thread for ")
    with SessionStore(legacy) as store:
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (0, THREADED)


def test_migrating_an_adopted_database_again_changes_nothing(legacy, dump):
    orchestrator_first(legacy)
    ok("migrate", "--db-path", legacy)
    before = dump(legacy)
    assert "up to date" in ok("migrate", "--db-path", legacy)
    orchestrator_starts(legacy)
    assert dump(legacy) == before


def test_rollback_will_not_destroy_the_orchestrators_threads(legacy):
    orchestrator_first(legacy)
    ok("migrate", "--db-path", legacy)
    for _ in range(6):  # 0007 (search), 0006 (no items), 0005 (ids), 0004 (record), 0003 (nothing), 0002
        ok("rollback", "--db-path", legacy)
    result = invoke("rollback", "--db-path", legacy)
    assert result.exit_code == 2
    assert "refusing to roll back: 2 threads and 1 messages" in one_error_line(result.stderr)


DIFFERENT_SHAPES = {
    "renamed column": (
        "name TEXT NOT NULL,",
        "title TEXT NOT NULL,",
        "threads lacks column name; threads has a column title the contract does not",
    ),
    "no cascade": (
        "REFERENCES threads(id) ON DELETE CASCADE",
        "REFERENCES threads(id)",
        "foreign key thread_messages.threadId is not ON DELETE CASCADE",
    ),
    "no unique": (",\n  UNIQUE(threadId, idx)", "", 'missing UNIQUE ("threadId", idx) on thread_messages'),
}


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
@pytest.mark.parametrize("case", list(DIFFERENT_SHAPES))
def test_thread_tables_of_another_shape_are_refused_and_the_file_keeps_every_byte(legacy_db, case, wal):
    path = legacy_db(N, threaded=THREADED, wal=wal)
    old, new, named = DIFFERENT_SHAPES[case]
    assert old in ORCHESTRATOR_SQL
    with raw(path) as con:
        con.executescript(ORCHESTRATOR_SQL.replace(old, new))
    before, files = digest(path), sorted(path.parent.iterdir())
    for args in (["migrate"], ["migrate", "--backup"], ["migrate", "--dry-run"]):
        result = invoke(*args, "--db-path", path)
        assert result.exit_code == 2, args
        line = one_error_line(result.stderr)
        assert (
            line.startswith("error: refusing to adopt the existing threads and thread_messages tables")
            and named in line
        )
        assert digest(path) == before and sorted(path.parent.iterdir()) == files, args
    with pytest.raises(MigrationError, match="refusing to adopt"):
        SessionStore(path, migrate=True)
    assert not any(sidecars(path).values()) or wal


# -- verify: problems and notes -----------------------------------------------------------------

SLIM_SESSIONS = """
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, ampPrompt TEXT NOT NULL, repoRoot TEXT NOT NULL,
  baseBranch TEXT NOT NULL, branchName TEXT NOT NULL, worktreePath TEXT NOT NULL,
  status TEXT NOT NULL, threadId TEXT, createdAt TEXT NOT NULL);
INSERT INTO sessions VALUES ('00000000-0000-4000-8000-000000000001', 'one', 'p', '/r', 'main',
  'amp/one', '/r/.worktrees/1', 'idle', 'T-1', '2025-08-01T00:00:00.000Z');
"""
# followUpPrompts and contextIncluded: migration 3 adds them, as the app's start-up does.
OPTIONAL = ("scriptCommand", "modelOverride", "lastRun", "notes")


def test_a_slim_sessions_layout_verifies_with_notes_only(tmp_path):
    path = tmp_path / "slim.db"
    with raw(path) as con:
        con.executescript(SLIM_SESSIONS)
    ok("migrate", "--db-path", path)
    out = ok("verify", "--db-path", path)
    assert [line for line in out.splitlines() if line.startswith("note:")] == [
        f"note: sessions has no column {c} (optional in the orchestrator's layouts)" for c in OPTIONAL
    ]
    assert "problem:" not in out
    assert ok("diff", "--db-path", path).endswith("in sync with the models\n")
    with SessionStore(path) as store:
        made = store.create_session(name="two", amp_prompt="p", repo_root="/r")
        assert store.get_session(made.id).follow_up_prompts is None
        with pytest.raises(ValidationError, match="no column 'notes'"):
            store.create_session(name="three", amp_prompt="p", repo_root="/r", notes="x")


def test_a_missing_required_sessions_column_is_still_a_problem(tmp_path):
    path = tmp_path / "broken.db"
    with raw(path) as con:
        con.executescript(SLIM_SESSIONS.replace("baseBranch TEXT NOT NULL, ", "").replace("'main',\n", "\n"))
    before = digest(path)
    result = invoke("migrate", "--db-path", path)  # not the orchestrator's table: refused
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        "error: refusing to migrate: the existing table sessions is not the orchestrator's: it "
        'has no column "baseBranch" (rename it or use another database; nothing was changed)'
    )
    assert digest(path) == before
    result = invoke("verify", "--db-path", path)
    assert result.exit_code == 1
    assert "problem: add column sessions.baseBranch\n" in result.stdout


def test_a_session_created_after_the_migration_with_a_thread_id_is_a_note(migrated):
    with SessionStore(migrated) as store:
        late = store.create_session(name="late", amp_prompt="p", repo_root="/r", thread_id="T-late")
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 0, result.output
    assert (
        "note: 1 sessions carry a threadId and have no thread for it yet (created, or given "
        "their threadId, after the migration): `sessionorm backfill` (or "
        "SessionStore.migrate_session_thread_ids()) creates them\n"
    ) in result.stdout
    out = ok("backfill", "--db-path", migrated)
    assert out == f"threads created: 1; sessions skipped (already have theirs): {THREADED}\n"
    made = query(migrated, 'SELECT id FROM threads WHERE "sessionId" = ?', (late.id,))
    assert len(made) == 1 and re.fullmatch(T_UUID4, made[0][0]), made
    assert "note:" not in ok("verify", "--db-path", migrated)
    assert ok("backfill", "--db-path", migrated).startswith("threads created: 0;")


def test_backfill_api_returns_the_counts(migrated):
    with SessionStore(migrated) as store:
        store.create_session(name="late", amp_prompt="p", repo_root="/r", thread_id="T-late")
    result = commands.backfill(migrated)
    assert (result.migrated, result.skipped) == (1, THREADED)


def test_backfill_refuses_a_file_with_pending_migrations_and_changes_nothing(legacy, file_digest):
    before = file_digest(legacy)
    done = run_module("backfill", "--db-path", legacy)
    assert done.returncode == 2
    assert "pending migrations" in one_error_line(done.stderr)
    assert file_digest(legacy) == before and not any(sidecars(legacy).values())


def test_backfill_never_creates_a_database(tmp_path):
    missing = tmp_path / "missing.db"
    done = run_module("backfill", "--db-path", missing)
    assert done.returncode != 0 and str(missing) in one_error_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


def test_migrated_threads_deleted_afterwards_are_a_problem(migrated):
    gone = [r[0] for r in query(migrated, "SELECT id FROM threads ORDER BY id DESC LIMIT 2")]
    with raw(migrated) as con:
        con.execute("DELETE FROM threads WHERE id IN (?, ?)", gone)
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 1
    assert lost(gone) + "\n" in result.stdout


def test_a_migration_run_again_by_another_tool_is_a_note(legacy):
    """The orchestrator's own runner, run on a migrated file, adds a second migrated thread.

    Added before migration 4, whose up records every marker: the record is what verify counts.
    """
    from sessionorm.backends.sqlite_files import open_sqlite
    from sessionorm.runner import MigrationRunner

    db = open_sqlite(legacy, 5.0)
    try:
        MigrationRunner(db).up(target="0002_orchestrator_index_names")
    finally:
        db.close()
    migrated = legacy
    with raw(migrated) as con:
        con.executescript("""
            INSERT INTO threads SELECT 'again-' || id, id, 'Migrated Thread for ' || name,
              createdAt, createdAt, 'active' FROM sessions WHERE threadId != '' LIMIT 2;
            INSERT INTO thread_messages SELECT 'again-m-' || t.id, t.id, 'system',
              'Thread migrated from legacy threadId: ' || s.threadId, t.createdAt, 0
              FROM threads t JOIN sessions s ON s.id = t.sessionId WHERE t.id LIKE 'again-%';""")
    ok("migrate", "--db-path", migrated)
    out = ok("verify", "--db-path", migrated)
    assert (
        "note: 2 sessions have more than one migrated thread (the migration ran again, e.g. the "
        "orchestrator's own runner: see README, 'Living with the orchestrator')\n"
    ) in out


def backfill_stage_sql(db) -> str:
    """The SELECT of migration 4's data step (`backfill`), as it runs; rolled back after."""
    seen = []
    execute = db.execute_sql

    def record(sql, *args, **kwargs):
        seen.append(sql)
        return execute(sql, *args, **kwargs)

    db.execute_sql = record
    try:
        with db.atomic() as transaction:
            shipped_script("0004_migrated_thread_record").backfill(db)
            transaction.rollback()
    finally:
        del db.execute_sql
    [stage] = [sql for sql in seen if sql.startswith("CREATE TEMPORARY TABLE")]
    return stage.split(" AS ", 1)[1]


def test_the_data_step_and_verify_search_per_session_and_scan_only_sessions(migrated):
    """One pass over one table (sessions, or the record of migrated threads); per row only
    index searches (no quadratic plan), inside `linear_plans` as verify runs them."""
    from sessionorm import thread_record
    from sessionorm.backends.pg_connections import linear_plans
    from sessionorm.backends.sqlite_files import open_sqlite

    step = shipped_script()
    db = open_sqlite(migrated, 5.0)
    try:
        statements = [  # (SQL, the one table it scans)
            (step.stage_sql().split(" AS ", 1)[1], "s"),
            (f"SELECT count(*) FROM sessions s WHERE {step.HAS_THREAD_ID} AND {step.NOT_YET_MIGRATED}", "s"),
            (backfill_stage_sql(db), "s"),
            (thread_record.LOST_SHOWN.format(shown=5), "r"),
        ]
        with linear_plans(db):
            for sql, table in statements:
                plan = [row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql)]
                scans = [line.split(" USING ")[0] for line in plan if line.startswith("SCAN")]
                assert scans == [f"SCAN {table}"], plan
                assert [line for line in plan if line.startswith("SEARCH")], plan
            # verify's one statement: each table scanned once, the record joined once
            plan = [
                row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + thread_record.data_counts_sql(True))
            ]
            derived = {"SCAN recorded", "SCAN twice", "SCAN unmatched", "SCAN k"}  # of the CTE and subqueries
            scans = sorted(
                line.split(" USING ")[0]
                for line in plan
                if line.startswith("SCAN") and line.split(" USING ")[0] not in derived
            )
            assert scans == ["SCAN r", "SCAN s", "SCAN threads", "SCAN u"], plan
            assert plan.count("MATERIALIZE recorded") == 1, plan
    finally:
        db.close()


# -- the orchestrator's sessions rebuild ----------------------------------------------------------


def rebuild_sessions(path: Path) -> None:
    """The orchestrator's start-up rebuild of `sessions`: copy, DROP TABLE, rename; foreign keys on."""
    ddl = query(path, "SELECT sql FROM sqlite_master WHERE name = 'sessions'")[0][0]
    with raw(path) as con:
        con.executescript(
            "BEGIN;"
            + ddl.replace("sessions", "sessions_new", 1)
            + "; INSERT INTO sessions_new SELECT * FROM sessions; DROP TABLE sessions;"
            " ALTER TABLE sessions_new RENAME TO sessions; COMMIT;"
        )


def test_the_search_index_stops_the_orchestrators_sessions_rebuild(legacy_db):
    """With the search index's triggers (migration 7), SQLite refuses the rebuild's DROP TABLE
    (SQLITE_LOCKED: the cascade reaches a trigger that writes the FTS5 table); the app's
    start-up swallows the error and rolls back, and no thread is lost."""
    path = legacy_db(N, threaded=THREADED)
    ok("migrate", "--db-path", path)
    before = query(path, "SELECT id FROM threads ORDER BY id")
    with pytest.raises(sqlite3.OperationalError, match="database table is locked"):
        rebuild_sessions(path)
    assert query(path, "SELECT id FROM threads ORDER BY id") == before
    assert invoke("verify", "--db-path", path).exit_code == 0


def test_the_orchestrators_sessions_rebuild_cascades_and_verify_catches_it(legacy_db):
    path = legacy_db(N, threaded=THREADED)  # no other table references a session
    ok("migrate", "--db-path", path)
    ok("rollback", "--db-path", path)  # without the search index (0007), the rebuild runs
    threads = [r[0] for r in query(path, "SELECT id FROM threads")]
    assert len(threads) == THREADED
    rebuild_sessions(path)
    assert query(path, "SELECT count(*) FROM threads") == [(0,)]  # the cascade took them all
    result = invoke("verify", "--db-path", path)
    assert result.exit_code == 1
    assert lost(threads) in result.stdout.splitlines()


def test_the_orchestrators_sessions_rebuild_is_blocked_by_other_references(legacy_db):
    path = legacy_db(N, threaded=THREADED, iterations=1)  # iterations reference sessions
    ok("migrate", "--db-path", path)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        rebuild_sessions(path)
    assert query(path, "SELECT count(*) FROM threads") == [(THREADED,)]
    ok("verify", "--db-path", path)


# -- verify --exercise ---------------------------------------------------------------------------


def counts(path: Path) -> list[int]:
    return [
        query(path, f"SELECT count(*) FROM {t}")[0][0]
        for t in ("sessions", "threads", "thread_messages", "migrations")
    ]


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_verify_exercise_runs_the_checklist_and_leaves_nothing_behind(legacy_db, wal, file_digest):
    path = legacy_db(N, threaded=THREADED, wal=wal)
    ok("migrate", "--db-path", path)
    if not wal:
        with raw(path) as con:
            assert con.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    assert path.read_bytes()[18] == (2 if wal else 1)
    before, rows = file_digest(path), counts(path)
    first = query(path, "SELECT id FROM sessions ORDER BY id LIMIT 1")[0][0]
    out = ok("verify", "--exercise", "--db-path", path)
    lines = out.splitlines()
    assert lines[0] == "exercise (rolled back afterwards):"
    assert re.fullmatch(rf"  \[ok\] create a thread on session {first}: thread {T_UUID4}", lines[1])
    assert lines[2:7] == [
        "  [ok] append 3 messages (idx 0..2): 3 messages",
        "  [ok] read them back in order: idx 0, 1, 2 in order",
        "  [ok] delete the thread; its messages cascade: its 3 messages went with it",
        lines[5],
        f"  [ok] rolled back: row counts unchanged: sessions {rows[0]}, threads {rows[1]},"
        f" thread_messages {rows[2]}, migrations {rows[3]}",
    ]
    assert lines[5].startswith("  [ok] migration row 1 is recorded: session-thread-relationship, applied ")
    assert lines[7].endswith(": ok (migrations, schema, integrity, data, exercise)")
    assert counts(path) == rows
    if not wal:
        assert file_digest(path) == before
        assert not any(sidecars(path).values())


def test_verify_exercise_on_a_database_without_sessions_makes_one_and_rolls_it_back(db_path):
    SessionStore(db_path).close()
    report = commands.verify(db_path, exercise=True)
    assert report.ok, report.problems
    assert report.exercise[0][:2] == ("create a session (the database has none)", True)
    assert counts(db_path) == [0, 0, 0, 7]  # the seven shipped migrations' rows


def test_verify_exercise_fails_a_step_that_does_not_hold(migrated):
    with raw(migrated) as con:
        con.execute("DELETE FROM migrations WHERE version = 1")
    before = counts(migrated)
    result = invoke("verify", "--exercise", "--db-path", migrated)
    assert result.exit_code == 1
    assert "  [FAIL] migration row 1 is recorded: migrations row 1 is missing\n" in result.stdout
    assert (
        "problem: verify --exercise: migration row 1 is recorded failed: migrations row 1 is missing\n"
    ) in result.stdout
    assert counts(migrated) == before


def test_verify_exercise_of_a_legacy_file_is_one_error_and_changes_nothing(legacy, file_digest):
    before = file_digest(legacy)
    result = invoke("verify", "--exercise", "--db-path", legacy)
    assert result.exit_code == 1
    assert (
        "  [FAIL] find the store's tables: cannot exercise the store: no table migrations,"
        " thread_messages, threads (run `sessionorm migrate` first)\n"
    ) in result.stdout
    assert "problem: migration 0001_session_thread_relationship is not applied\n" in result.stdout
    assert file_digest(legacy) == before and not any(sidecars(legacy).values())


# -- followUpPrompts: JSON text, a list in Python ------------------------------------------------


def test_follow_up_prompts_round_trip_as_a_list(store, db_path):
    made = store.create_session(
        name="s", amp_prompt="p", repo_root="/r", follow_up_prompts=["first", "zweite ü"]
    )
    assert made.follow_up_prompts == ["first", "zweite ü"]
    assert store.get_session(made.id).follow_up_prompts == ["first", "zweite ü"]
    assert query(db_path, 'SELECT "followUpPrompts" FROM sessions') == [('["first","zweite ü"]',)]
    none = store.create_session(name="n", amp_prompt="p", repo_root="/r")
    assert none.follow_up_prompts is None


def test_legacy_follow_up_prompts_read_as_lists(migrated):
    stored = query(migrated, 'SELECT id, "followUpPrompts" FROM sessions WHERE "followUpPrompts" IS NOT NULL')
    assert stored
    with SessionStore(migrated) as store:
        for session_id, text in stored:
            assert store.get_session(session_id).follow_up_prompts == [text[2:-2]]  # ["follow-up N"]


def test_follow_up_prompts_text_that_is_not_a_json_list_reads_verbatim(store):
    made = store.create_session(name="s", amp_prompt="p", repo_root="/r", follow_up_prompts="plain")
    assert store.get_session(made.id).follow_up_prompts == "plain"


@pytest.mark.parametrize("bad", [[1, 2], ["ok", None], [["nested"]]])
def test_follow_up_prompts_must_be_strings_and_nothing_is_written(store, db_path, bad, dump):
    before = dump(db_path)
    with pytest.raises(ValidationError, match="follow_up_prompts must be a list of strings"):
        store.create_session(name="s", amp_prompt="p", repo_root="/r", follow_up_prompts=bad)
    assert dump(db_path) == before


PARTIAL_MODELS = """
from sessionorm.models import MigrationRecord, Session, Thread, ThreadMessage

class ActiveThread(Thread):
    class Meta:
        table_name = "threads"

ActiveThread.add_index(ActiveThread.index(ActiveThread.status, where=ActiveThread.status == "active",
                                          name="idx_threads_active"))
MODELS = [Session, ActiveThread, ThreadMessage, MigrationRecord]
"""


@pytest.fixture
def partial_models(tmp_path, monkeypatch) -> str:
    """An importable models module declaring a partial index; its `module:MODELS` spec."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "partial_models.py").write_text(PARTIAL_MODELS)
    return "partial_models:MODELS"


def test_a_partial_index_is_matched_by_its_predicate_not_its_name(migrated, partial_models, tmp_path):
    result = invoke("diff", "--db-path", migrated, "--models", partial_models)
    assert result.exit_code == 1 and result.stdout == "add index threads.idx_threads_active\n"
    made = invoke(
        "makemigration",
        "active",
        "--db-path",
        migrated,
        "--models",
        partial_models,
        "--migrations-dir",
        tmp_path / "mig",
    )
    assert made.exit_code == 0, made.output
    text = (tmp_path / "mig" / "0008_active.py").read_text()  # after the shipped 0001-0007
    assert "# TODO: threads: create index idx_threads_active (partial/expression" in text
    assert "add_index" not in text  # never a plain index in its place
    with raw(migrated) as con:
        con.execute("CREATE INDEX by_another_name ON threads (status) WHERE status = 'active'")
    assert invoke("diff", "--db-path", migrated, "--models", partial_models).exit_code == 0
