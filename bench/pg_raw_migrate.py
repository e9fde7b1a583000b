"""The raw-SQL floor of migrations 1-5 on PostgreSQL: the best a hand-written psycopg script does.

One transaction: the two tables bare (columns, NOT NULL, defaults and the role CHECK, but no
keys), loaded from one scan of sessions, then the primary keys, UNIQUE("threadId", idx), the
foreign keys (one validating pass each) and the nine indexes, with exactly the names
PostgreSQL gives the keys when migration 1 creates the tables with their keys on and the
index names migration 2 leaves (the orchestrator's); the app's columns (migration 3), the
threads made with `T-` ids (migration 5) and recorded as they are made (migration 4), and the
five `migrations` rows.
`sessionorm verify` passes on the result. No ANALYZE: sessionorm's
migration runs one on top of this, so the floor is the stricter for it. Run as its own
process (psycopg only, no sessionorm import) so that it compares with a whole
`sessionorm migrate` process.

    python bench/pg_raw_migrate.py DATABASE_URL
"""

from __future__ import annotations

import datetime as dt
import sys

PREFIX_THREAD = "Migrated Thread for "
PREFIX_MESSAGE = "Thread migrated from legacy threadId: "

TABLES = (
    'CREATE TABLE threads (id TEXT NOT NULL, "sessionId" TEXT NOT NULL, name TEXT NOT NULL,'
    ' "createdAt" TEXT NOT NULL, "updatedAt" TEXT NOT NULL, status TEXT NOT NULL DEFAULT \'active\','
    """ "ampMode" TEXT CHECK("ampMode" IN ('production', 'local-cli')))""",
    'CREATE TABLE thread_messages (id TEXT NOT NULL, "threadId" TEXT NOT NULL,'
    " role TEXT NOT NULL CHECK(role IN ('user','assistant','system')),"
    ' content TEXT NOT NULL, "createdAt" TEXT NOT NULL, idx INTEGER NOT NULL)',
    "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    'CREATE TABLE sessionorm_migrated_threads ("markerId" TEXT PRIMARY KEY, "threadId" TEXT NOT NULL,'
    ' "sessionId" TEXT NOT NULL, "legacyThreadId" TEXT NOT NULL, "recordedAt" TEXT NOT NULL,'
    ' "deletedAt" TEXT)',
    'CREATE TABLE sessionorm_unmatched_sessions ("sessionId" TEXT PRIMARY KEY, "threadId" TEXT NOT NULL,'
    ' "recordedAt" TEXT NOT NULL)',
    'CREATE TABLE sessionorm_renamed_threads ("newId" TEXT PRIMARY KEY, "oldId" TEXT NOT NULL UNIQUE,'
    ' "renamedAt" TEXT NOT NULL)',
    'ALTER TABLE sessions ALTER COLUMN "ampPrompt" DROP NOT NULL',
)
# The app's columns migration 3 adds where a table lacks them: (table, column, definition).
APP_COLUMNS = (
    ("sessions", "threadId", "TEXT"),
    ("batch_items", "threadId", "TEXT"),
    ("sessions", "followUpPrompts", "TEXT"),
    ("sessions", "contextIncluded", "BOOLEAN"),
    ("sessions", "mode", "TEXT DEFAULT 'async'"),
    ("sessions", "autoCommit", "BOOLEAN DEFAULT TRUE"),
    ("sessions", "ampMode", "TEXT DEFAULT 'production'"),
)
MIGRATIONS = (
    "session-thread-relationship",
    "orchestrator-index-names",
    "orchestrator-app-schema",
    "migrated-thread-record",
    "app-thread-ids",
)

LOAD = (
    "WITH src AS MATERIALIZED (SELECT 'T-' || gen_random_uuid()::text AS id,"
    " gen_random_uuid()::text AS marker, s.id AS session_id, s.name,"
    ' s."createdAt" AS created_at, s."threadId" AS legacy FROM sessions s'
    """ WHERE s."threadId" IS NOT NULL AND s."threadId" != ''),"""
    ' new AS (INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
    f" SELECT id, session_id, '{PREFIX_THREAD}' || name, created_at, created_at, 'active' FROM src),"
    ' markers AS (INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
    f" SELECT marker, id, 'system', '{PREFIX_MESSAGE}' || legacy, created_at, 0 FROM src)"
    ' INSERT INTO sessionorm_migrated_threads ("markerId", "threadId", "sessionId", "legacyThreadId",'
    ' "recordedAt") SELECT marker, id, session_id, legacy, %s FROM src'
)
KEYS = (
    "ALTER TABLE threads ADD CONSTRAINT threads_pkey PRIMARY KEY (id)",
    "ALTER TABLE thread_messages ADD CONSTRAINT thread_messages_pkey PRIMARY KEY (id),"
    ' ADD CONSTRAINT "thread_messages_threadId_idx_key" UNIQUE ("threadId", idx)',
    'ALTER TABLE threads ADD CONSTRAINT "threads_sessionId_fkey" FOREIGN KEY ("sessionId")'
    " REFERENCES sessions(id) ON DELETE CASCADE",
    'ALTER TABLE thread_messages ADD CONSTRAINT "thread_messages_threadId_fkey"'
    ' FOREIGN KEY ("threadId") REFERENCES threads(id) ON DELETE CASCADE',
)

# (name, table, columns): the names migration 2 (the orchestrator's) gives them
INDEXES = (
    ("idx_threads_session_id", "threads", ("sessionId",)),
    ("idx_threads_status", "threads", ("status",)),
    ("idx_threads_created_at", "threads", ("createdAt",)),
    ("idx_threads_updated_at", "threads", ("updatedAt",)),
    ("idx_thread_messages_thread_id", "thread_messages", ("threadId",)),
    ("idx_thread_messages_role", "thread_messages", ("role",)),
    ("idx_thread_messages_created_at", "thread_messages", ("createdAt",)),
    ("idx_thread_messages_idx", "thread_messages", ("idx",)),
    ("idx_threads_session_id_updated_at", "threads", ("sessionId", "updatedAt")),
    ("idx_sessionorm_migrated_threads_session_id", "sessionorm_migrated_threads", ("sessionId",)),
    ("idx_sessionorm_migrated_threads_thread_id", "sessionorm_migrated_threads", ("threadId",)),
)


def index_sql(name: str, table: str, columns: tuple[str, ...]) -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f'CREATE INDEX "{name}" ON {table} ({quoted})'


def migrate(url: str) -> int:
    """Run the floor migration on the database at `url`; return the number of threads created."""
    import psycopg

    now = dt.datetime.now(dt.UTC)
    stamp = f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"
    with psycopg.connect(url, prepare_threshold=None) as con:  # one transaction, committed on exit
        for sql in TABLES:
            con.execute(sql)
        have = set(
            con.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
            ).fetchall()
        )
        tables = {table for table, _ in have}
        for table, column, definition in APP_COLUMNS:
            if table in tables and (table, column) not in have:
                con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {definition}')
        threads = con.execute(LOAD, (stamp,)).rowcount
        for sql in KEYS:
            con.execute(sql)
        for spec in INDEXES:
            con.execute(index_sql(*spec))
        with con.cursor() as cur:
            cur.executemany(
                "INSERT INTO migrations VALUES (%s, %s, %s)",
                [(n, name, stamp) for n, name in enumerate(MIGRATIONS, 1)],
            )
    return threads


if __name__ == "__main__":
    print(f"migrated {migrate(sys.argv[1])} sessions")
