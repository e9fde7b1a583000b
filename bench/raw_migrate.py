"""The raw-SQL floor of migration 1: what a careful hand-written sqlite3 script costs.

One transaction: the two tables exactly as migration 1 writes them (and the `migrations`
row), the new thread ids staged in a temp table, one `INSERT … SELECT` for the threads and
one for their system messages, both in thread-id order, with the same UUID expression as
migration 1's script (`migrations/0001_session_thread_relationship.py`), then the 8 single-column
indexes plus `threads(sessionId, updatedAt)`. Run as its own process (stdlib only, no
sessionorm import) so that it compares with a whole `sessionorm migrate` process.

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
    " || '-' || hex(randomblob(6)))")

TABLES = (
    """CREATE TABLE threads (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, name TEXT NOT NULL,
  createdAt TEXT NOT NULL, updatedAt TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
  FOREIGN KEY(sessionId) REFERENCES sessions(id) ON DELETE CASCADE)""",
    """CREATE TABLE thread_messages (
  id TEXT PRIMARY KEY, threadId TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('user','assistant','system')),
  content TEXT NOT NULL, createdAt TEXT NOT NULL, idx INTEGER NOT NULL,
  FOREIGN KEY(threadId) REFERENCES threads(id) ON DELETE CASCADE, UNIQUE(threadId, idx))""",
    "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL)",
)

# The fastest plain SQL we know: stage the new thread ids once, then insert both tables in
# thread-id order (random-UUID keys then grow at one end; 2.5x faster than joining the new
# threads back to sessions at 1,000,000 sessions).
STAGE = (
    f"CREATE TEMP TABLE stage AS SELECT {SQLITE_UUID} AS id, s.id AS session_id, s.name AS name,"
    " s.createdAt AS created_at, s.threadId AS legacy"
    " FROM sessions s WHERE s.threadId IS NOT NULL AND s.threadId != ''")

INSERT_THREADS = (
    "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, status)"
    " SELECT id, session_id, 'Migrated Thread for ' || name, created_at, created_at, 'active'"
    " FROM stage ORDER BY id")

INSERT_MESSAGES = (
    "INSERT INTO thread_messages (id, threadId, role, content, createdAt, idx)"
    f" SELECT {SQLITE_UUID}, id, 'system', 'Thread migrated from legacy threadId: ' || legacy,"
    " created_at, 0 FROM stage ORDER BY id")

INDEXES = (
    ("threads", "sessionId"), ("threads", "status"), ("threads", "createdAt"),
    ("threads", "updatedAt"), ("thread_messages", "threadId"), ("thread_messages", "role"),
    ("thread_messages", "createdAt"), ("thread_messages", "idx"),
    ("threads", "sessionId", "updatedAt"),
)


def index_sql(table: str, *columns: str) -> str:
    return f"CREATE INDEX idx_{table}_{'_'.join(columns)} ON {table} ({', '.join(columns)})"


def migrate(path: str, cache_mb: int = 0, temp_store: str = "default",
            foreign_keys: bool = True) -> int:
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
        for sql in TABLES:
            con.execute(sql)
        con.execute(STAGE)
        threads = con.execute(INSERT_THREADS).rowcount
        con.execute(INSERT_MESSAGES)
        con.execute("DROP TABLE stage")
        for spec in INDEXES:
            con.execute(index_sql(*spec))
        now = dt.datetime.now(dt.UTC)
        con.execute("INSERT INTO migrations VALUES (1, 'session-thread-relationship', ?)",
                    (f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z",))
        con.execute("COMMIT")
    finally:
        con.close()
    return threads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
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
