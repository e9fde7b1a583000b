"""The raw-SQL floor of migrations 1-5: what a careful hand-written sqlite3 script costs.

One transaction, leaving the end state of sessionorm's migrations: the two tables exactly as
migration 1 writes them (with migration 3's `threads.ampMode`), the orchestrator app's
`sessions` columns and a nullable `ampPrompt` (migration 3, an edit of the stored DDL), the new
thread ids (`T-` and a UUID, as migration 5 leaves them) and marker ids staged in a temp table,
one `INSERT … SELECT` for the threads, one for their system messages and one for the record of
migrated threads (migration 4), in thread-id order, with the same UUID expression as migration
1's script (`migrations/0001_session_thread_relationship.py`), then the 8 single-column indexes
plus `threads(sessionId, updatedAt)` and the `migrations` rows. Run as its own process (stdlib
only, no sessionorm import) so that it compares with a whole `sessionorm migrate` process.

    python bench/raw_migrate.py DB [--cache-mb N] [--temp-store default|file|memory]
                                   [--no-foreign-keys]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys

# Copied verbatim from migrations/0001_…; cases/migrate.py warns if they drift apart.
SQLITE_UUID = (
    "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)"
    " || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)"
    " || '-' || hex(randomblob(6)))"
)

TABLES = (
    """CREATE TABLE threads (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, name TEXT NOT NULL,
  createdAt TEXT NOT NULL, updatedAt TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
  ampMode TEXT CHECK(ampMode IN ('production', 'local-cli')),
  FOREIGN KEY(sessionId) REFERENCES sessions(id) ON DELETE CASCADE)""",
    """CREATE TABLE thread_messages (
  id TEXT PRIMARY KEY, threadId TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('user','assistant','system')),
  content TEXT NOT NULL, createdAt TEXT NOT NULL, idx INTEGER NOT NULL,
  FOREIGN KEY(threadId) REFERENCES threads(id) ON DELETE CASCADE, UNIQUE(threadId, idx))""",
    "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    """CREATE TABLE sessionorm_migrated_threads (
  markerId TEXT PRIMARY KEY, threadId TEXT NOT NULL, sessionId TEXT NOT NULL,
  legacyThreadId TEXT NOT NULL, recordedAt TEXT NOT NULL, deletedAt TEXT)""",
    "CREATE TABLE sessionorm_unmatched_sessions (sessionId TEXT PRIMARY KEY, threadId TEXT NOT NULL,"
    " recordedAt TEXT NOT NULL)",
    "CREATE TABLE sessionorm_renamed_threads (newId TEXT PRIMARY KEY, oldId TEXT NOT NULL UNIQUE,"
    " renamedAt TEXT NOT NULL)",
    "ALTER TABLE sessions ADD COLUMN mode TEXT DEFAULT 'async'",
    "ALTER TABLE sessions ADD COLUMN autoCommit BOOLEAN DEFAULT 1",
    "ALTER TABLE sessions ADD COLUMN ampMode TEXT DEFAULT 'production'",
)
MIGRATIONS = (
    "session-thread-relationship",
    "orchestrator-index-names",
    "orchestrator-app-schema",
    "migrated-thread-record",
    "app-thread-ids",
)

# The fastest plain SQL we know: stage the new thread ids once, then insert both tables in
# thread-id order (random-UUID keys then grow at one end; 2.5x faster than joining the new
# threads back to sessions at 1,000,000 sessions).
STAGE = (
    f"CREATE TEMP TABLE stage AS SELECT 'T-' || {SQLITE_UUID} AS id, {SQLITE_UUID} AS marker,"
    " s.id AS session_id, s.name AS name,"
    " s.createdAt AS created_at, s.threadId AS legacy"
    " FROM sessions s WHERE s.threadId IS NOT NULL AND s.threadId != ''"
)

INSERT_THREADS = (
    "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, status)"
    " SELECT id, session_id, 'Migrated Thread for ' || name, created_at, created_at, 'active'"
    " FROM stage ORDER BY id"
)

INSERT_MESSAGES = (
    "INSERT INTO thread_messages (id, threadId, role, content, createdAt, idx)"
    " SELECT marker, id, 'system', 'Thread migrated from legacy threadId: ' || legacy,"
    " created_at, 0 FROM stage ORDER BY id"
)

INSERT_RECORD = (
    "INSERT INTO sessionorm_migrated_threads (markerId, threadId, sessionId, legacyThreadId,"
    " recordedAt) SELECT marker, id, session_id, legacy, ? FROM stage"
)

INDEXES = (
    ("threads", "sessionId"),
    ("threads", "status"),
    ("threads", "createdAt"),
    ("threads", "updatedAt"),
    ("thread_messages", "threadId"),
    ("thread_messages", "role"),
    ("thread_messages", "createdAt"),
    ("thread_messages", "idx"),
    ("threads", "sessionId", "updatedAt"),
    ("sessionorm_migrated_threads", "sessionId"),
    ("sessionorm_migrated_threads", "threadId"),
)


def index_sql(table: str, *columns: str) -> str:
    return f"CREATE INDEX idx_{table}_{'_'.join(columns)} ON {table} ({', '.join(columns)})"


def nullable_amp_prompt(con: sqlite3.Connection) -> None:
    """`ampPrompt TEXT NOT NULL` → `ampPrompt TEXT` in the stored DDL (SQLite's documented way)."""
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'sessions'").fetchone()[0]
    version = con.execute("PRAGMA schema_version").fetchone()[0]
    con.execute("PRAGMA writable_schema = ON")
    con.execute(
        "UPDATE sqlite_master SET sql = ? WHERE name = 'sessions'",
        (sql.replace("ampPrompt TEXT NOT NULL", "ampPrompt TEXT"),),
    )
    con.execute(f"PRAGMA schema_version = {version + 1}")
    con.execute("PRAGMA writable_schema = OFF")


def migrate(path: str, cache_mb: int = 0, temp_store: str = "default", foreign_keys: bool = True) -> int:
    """Run the floor migration on `path`; return the number of threads created."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        # The contract's connection settings, as sessionorm uses them.
        con.execute("PRAGMA busy_timeout = 5000")
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")
        # Bulk-step pragmas, fair on both sides when sessionorm uses them too.
        if cache_mb:
            con.execute(f"PRAGMA cache_size = {-1024 * cache_mb}")
        if temp_store != "default":
            con.execute(f"PRAGMA temp_store = {temp_store.upper()}")
        con.execute("BEGIN IMMEDIATE")
        now = dt.datetime.now(dt.UTC)
        stamp = f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"
        for sql in TABLES:
            con.execute(sql)
        nullable_amp_prompt(con)
        con.execute(STAGE)
        threads = con.execute(INSERT_THREADS).rowcount
        con.execute(INSERT_MESSAGES)
        con.execute(INSERT_RECORD, (stamp,))
        con.execute("DROP TABLE stage")
        for spec in INDEXES:
            con.execute(index_sql(*spec))
        con.executemany(
            "INSERT INTO migrations VALUES (?, ?, ?)",
            [(n, name, stamp) for n, name in enumerate(MIGRATIONS, 1)],
        )
        con.execute("COMMIT")
    finally:
        con.close()
    return threads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db")
    ap.add_argument("--cache-mb", type=int, default=0, help="page cache size (0: default)")
    ap.add_argument("--temp-store", choices=("default", "file", "memory"), default="default")
    ap.add_argument("--no-foreign-keys", action="store_true")
    args = ap.parse_args(argv)
    threads = migrate(args.db, args.cache_mb, args.temp_store, not args.no_foreign_keys)
    print(f"migrated {threads} sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
