"""Plain helpers for the migration and CLI suites (imported, not fixtures).

Everything works on real SQLite files; raw `sqlite3` is used to look at them so that the
checks do not depend on the code under test.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner, Result

from sessionorm.cli import cli

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tables sessionorm adds: the contract's three plus its own checksum bookkeeping and its
# record of migrated and renamed threads (migrations 4 and 5).
NEW_TABLES = (
    "threads",
    "thread_messages",
    "migrations",
    "migration_checksums",
    "sessionorm_migrated_threads",
    "sessionorm_unmatched_sessions",
    "sessionorm_renamed_threads",
    "sessionorm_agent_sessions",
    "sessionorm_agent_items",
)
# The search index (migration 7), never carried by copy: SQLite's keys, FTS5 table and its
# shadow tables; PostgreSQL's table of tsvectors.
SEARCH_TABLES_SQLITE = (
    "sessionorm_search_keys",
    "sessionorm_search",
    "sessionorm_search_data",
    "sessionorm_search_idx",
    "sessionorm_search_docsize",
    "sessionorm_search_config",
)
SEARCH_TABLES_PG = ("sessionorm_search",)
# The orchestrator app's other tables: migration 3 makes them in a SQLite file (PostgreSQL: columns only).
APP_TABLES = (
    "iterations",
    "tool_calls",
    "merge_history",
    "batches",
    "batch_items",
    "swebench_runs",
    "swebench_case_results",
    "stream_events",
)
# The shipped migrations as the `migrations` table records them: (version, name).
SHIPPED_MIGRATIONS = [
    (1, "session-thread-relationship"),
    (2, "orchestrator-index-names"),
    (3, "orchestrator-app-schema"),
    (4, "migrated-thread-record"),
    (5, "app-thread-ids"),
    (6, "agent-memory"),
    (7, "message-search"),
]
# Their script names, in order.
SHIPPED_SCRIPTS = [
    "0001_session_thread_relationship",
    "0002_orchestrator_index_names",
    "0003_orchestrator_app_schema",
    "0004_migrated_thread_record",
    "0005_app_thread_ids",
    "0006_agent_memory",
    "0007_message_search",
]
# The contract's indexes under the names sessionorm 0.1's migration 1 gave them (migration 2 renames them).
VERSION_1_INDEX_NAMES = sorted(
    [
        "idx_threads_sessionId",
        "idx_threads_status",
        "idx_threads_createdAt",
        "idx_threads_updatedAt",
        "idx_thread_messages_threadId",
        "idx_thread_messages_role",
        "idx_thread_messages_createdAt",
        "idx_thread_messages_idx",
        "idx_threads_sessionId_updatedAt",
    ]
)
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
BACKUP_SUFFIX = r"\.backup-\d{4}-\d{2}-\d{2}-\d{6}"
CONTRACT_INDEXES = [
    ("threads", "sessionId"),
    ("threads", "status"),
    ("threads", "createdAt"),
    ("threads", "updatedAt"),
    ("thread_messages", "threadId"),
    ("thread_messages", "role"),
    ("thread_messages", "createdAt"),
    ("thread_messages", "idx"),
]
THREAD_NAME = "Migrated Thread for {}"
MESSAGE = "Thread migrated from legacy threadId: {}"


# -- running the CLI -------------------------------------------------------------------------


def shipped_script(name: str = "0001_session_thread_relationship") -> types.ModuleType:
    """A shipped migration script, loaded from its file as the runner loads it."""
    from playhouse.migrations import Migration

    from sessionorm.runner import migrations_dir

    return Migration(0, name, str(migrations_dir() / f"{name}.py"), None).load()


def invoke(*args: str | os.PathLike) -> Result:
    """`sessionorm ARGS` through click's CliRunner; stdout and stderr kept apart."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def run_module(
    *args: str | os.PathLike, timeout: float = 60, cwd: str | os.PathLike | None = None
) -> subprocess.CompletedProcess:
    """`python -m sessionorm ARGS` in a real process with stdin closed.

    It runs in the repository (this checkout's sessionorm), or in `cwd` with the checkout
    first on PYTHONPATH: a folder of the test's own where the command may write (PostgreSQL
    backups land in the working folder), which parallel test workers never share.
    """
    env = dict(os.environ)
    env.pop("AMPSM_DB_PATH", None)
    env.pop("SESSIONORM_DB_URL", None)
    if cwd is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "sessionorm", *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT if cwd is None else cwd,
    )


def one_error_line(stderr: str) -> str:
    """The single `error: …` line a failing command must print; asserts there is only that."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


# -- looking at files ------------------------------------------------------------------------


@contextlib.contextmanager
def raw(path: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """A plain autocommit sqlite3 connection with foreign keys on."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA foreign_keys = ON")
    try:
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def reader(path: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """A connection that writes nothing and leaves no -wal/-shm files (the last close removes them).

    `mode=rw` + `query_only`, never `immutable=1`, which would ignore another connection's WAL.
    """
    con = sqlite3.connect(f"file:{Path(path).resolve()}?mode=rw", uri=True)
    con.execute("PRAGMA query_only = 1")
    try:
        yield con
    finally:
        con.close()


def query(path: str | os.PathLike, sql: str, params: tuple = ()) -> list[tuple]:
    with reader(path) as con:
        return con.execute(sql, params).fetchall()


def tables(path: str | os.PathLike) -> set[str]:
    return {r[0] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def legacy_snapshot(path: str | os.PathLike) -> dict[str, object]:
    """Schema objects and rows of every table sessionorm did not add (see NEW_TABLES)."""
    ours = (*NEW_TABLES, *SEARCH_TABLES_SQLITE, "sessionorm_search_text")
    with reader(path) as con:
        schema = con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            f" WHERE tbl_name NOT IN {ours!r} AND name NOT LIKE 'sessionorm_search%' ORDER BY type, name"
        ).fetchall()
        snapshot: dict[str, object] = {"schema": schema}
        for (table,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            f" AND name NOT IN {ours!r} AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ):
            snapshot[table] = con.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
    return snapshot


# Migration 3 (the app's f785b0c schema) on a legacy file of each layout: the columns it
# lacks, appended by ALTER TABLE with the app's definitions, and the value each existing row
# then reads. `rollback` keeps them (0003's down changes nothing, on purpose).
APP_COLUMNS = {
    "pre": {
        "sessions": [
            ("\"mode\" TEXT DEFAULT 'async'", "async"),
            ('"autoCommit" BOOLEAN DEFAULT 1', 1),
            ("\"ampMode\" TEXT DEFAULT 'production'", "production"),
        ],
        "batch_items": [('"threadId" TEXT', None)],
    },
    "final": {},
}


def with_app_schema(snapshot: dict[str, object], flavor: str) -> dict[str, object]:
    """The `legacy_snapshot` of a legacy file of `flavor` once migration 3 has run: every row
    as it was plus the app's columns, `sessions.ampPrompt` nullable (its stored DDL edited)."""
    added = APP_COLUMNS[flavor]

    def ddl(table: str, sql: str) -> str:
        if table == "sessions":
            sql = sql.replace("ampPrompt TEXT NOT NULL", "ampPrompt TEXT")
        columns = ", ".join(definition for definition, _ in added.get(table, []))
        if not columns:
            return sql
        if table == "batch_items":  # SQLite appends after the last column definition
            return sql.replace("toolCalls INTEGER,", f"toolCalls INTEGER, {columns},")
        assert sql.endswith(")"), sql
        return f"{sql[:-1]}, {columns})"

    expected: dict[str, object] = {
        "schema": [
            (kind, name, table, ddl(table, sql) if kind == "table" else sql)
            for kind, name, table, sql in snapshot["schema"]
        ]
    }
    for table, rows in snapshot.items():
        if table != "schema":
            values = tuple(value for _, value in added.get(table, []))
            expected[table] = [row + values for row in rows]
    return expected


def index_columns(path: str | os.PathLike) -> set[tuple[str, ...]]:
    """(table, column, …) of every index on the new tables, as PRAGMA index_info reads them."""
    found = set()
    with reader(path) as con:
        for table in ("threads", "thread_messages"):
            for row in con.execute(f"PRAGMA index_list({table})"):
                columns = [r[2] for r in con.execute(f'PRAGMA index_info("{row[1]}")')]
                found.add((table, *columns))
    return found


def sidecars(path: str | os.PathLike) -> dict[str, bool]:
    """Which of the -wal/-shm/-journal files exist next to `path`."""
    return {suffix: Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm", "-journal")}


def threaded_sessions(path: str | os.PathLike) -> list[tuple[str, str, str, str]]:
    """(id, name, threadId, createdAt) of the sessions the migration must give a thread."""
    return query(
        path,
        'SELECT id, name, "threadId", "createdAt" FROM sessions'
        ' WHERE "threadId" IS NOT NULL AND "threadId" != \'\' ORDER BY id',
    )


def migrated_rows(path: str | os.PathLike) -> list[tuple]:
    """(sessionId, thread name, thread createdAt, status, role, idx, content, message createdAt)."""
    return query(
        path,
        'SELECT t."sessionId", t.name, t."createdAt", t.status, m.role, m.idx,'
        ' m.content, m."createdAt" FROM threads t'
        ' JOIN thread_messages m ON m."threadId" = t.id ORDER BY t."sessionId"',
    )


# -- building databases ----------------------------------------------------------------------

# What the original TypeScript orchestrator's migration 1 runs (its own index names, its
# `datetime('now')` applied_at, updatedAt = the time it ran).
TYPESCRIPT_MIGRATION = """
CREATE TABLE IF NOT EXISTS threads (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, name TEXT NOT NULL,
  createdAt TEXT NOT NULL, updatedAt TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
  FOREIGN KEY(sessionId) REFERENCES sessions(id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS thread_messages (
  id TEXT PRIMARY KEY, threadId TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('user', 'assistant', 'system')),
  content TEXT NOT NULL, createdAt TEXT NOT NULL, idx INTEGER NOT NULL,
  FOREIGN KEY(threadId) REFERENCES threads(id) ON DELETE CASCADE, UNIQUE(threadId, idx));
INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, status)
  SELECT lower(hex(randomblob(16))), id, 'Migrated Thread for ' || name, createdAt,
         '2025-08-24T12:34:56.789Z', 'active'
  FROM sessions WHERE threadId IS NOT NULL AND threadId != '';
INSERT INTO thread_messages (id, threadId, role, content, createdAt, idx)
  SELECT lower(hex(randomblob(16))), t.id, 'system',
         'Thread migrated from legacy threadId: ' || s.threadId, s.createdAt, 0
  FROM threads t JOIN sessions s ON s.id = t.sessionId;
CREATE INDEX IF NOT EXISTS idx_threads_session_id ON threads(sessionId);
CREATE INDEX IF NOT EXISTS idx_threads_status ON threads(status);
CREATE INDEX IF NOT EXISTS idx_threads_created_at ON threads(createdAt);
CREATE INDEX IF NOT EXISTS idx_threads_updated_at ON threads(updatedAt);
CREATE INDEX IF NOT EXISTS idx_thread_messages_thread_id ON thread_messages(threadId);
CREATE INDEX IF NOT EXISTS idx_thread_messages_created_at ON thread_messages(createdAt);
CREATE INDEX IF NOT EXISTS idx_thread_messages_role ON thread_messages(role);
CREATE INDEX IF NOT EXISTS idx_thread_messages_idx ON thread_messages(idx);
CREATE TABLE IF NOT EXISTS migrations (
  version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
INSERT OR REPLACE INTO migrations (version, name, applied_at)
  VALUES (1, 'session-thread-relationship', datetime('now'));
"""


def migrate_like_typescript(path: str | os.PathLike) -> Path:
    """Apply the TypeScript tool's migration 1 to a legacy file, in one transaction."""
    with raw(path) as con:
        con.executescript("BEGIN;" + TYPESCRIPT_MIGRATION + "COMMIT;")
    return Path(path)


def migrate_to_version_1(path: str | os.PathLike) -> Path:
    """Apply migration 1 only (its index names), as sessionorm did before 0002 shipped.

    Through the real runner, with a target, as `migrate` runs it.
    """
    from sessionorm.backends.sqlite_files import open_sqlite
    from sessionorm.runner import MigrationRunner

    db = open_sqlite(path)
    try:
        MigrationRunner(db).up("0001_session_thread_relationship")
    finally:
        db.close()
    return Path(path)


def write_migration(directory: Path, filename: str, body: str) -> Path:
    """A migration script in `directory` (peewee's runner loads `[0-9]*.py`)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(body)
    return path


def copy_real_migration(directory: Path) -> list[Path]:
    """The shipped scripts (0001-0007), so a scratch directory's history matches a migrated file."""
    return [
        write_migration(directory, source.name, source.read_text())
        for source in sorted((REPO_ROOT / "migrations").glob("[0-9]*.py"))
    ]


# The README's own-models example, as a module a test writes next to its database.
PRIORITY_MODELS_MODULE = (
    "from peewee import IntegerField\n"
    "from sessionorm.models import MigrationRecord, Session, Thread, ThreadMessage\n"
    "class PriorityThread(Thread):\n"
    "    priority = IntegerField(default=0, index=True)\n"
    "    class Meta:\n"
    "        table_name = 'threads'\n"
    "MODELS = [Session, PriorityThread, ThreadMessage, MigrationRecord]\n"
)
