"""The raw floors of `sessionorm copy` (issue 15): the same rows, plain drivers, nothing checked.

    python bench/raw_copy.py to-pg   SOURCE.db  POSTGRES_URL   # sqlite3 -> psycopg COPY
    python bench/raw_copy.py to-sqlite POSTGRES_URL  DEST.db   # psycopg COPY TO -> executemany

Both read each table in primary-key order (as sessionorm does) and produce the tables of a
migrated database, with the same keys, foreign keys and indexes, built the fastest plain way:

- to-pg: one transaction; bare tables, binary `COPY … FROM STDIN` with `write_row`, then the
  primary keys, UNIQUE, the nine indexes and the foreign keys (with the same
  `maintenance_work_mem` as sessionorm); no checksums, no migrations, no verification.
- to-sqlite: a new file with `journal_mode=OFF`, `synchronous=OFF`, the same page cache as
  sessionorm, tables with their keys, `executemany` in one transaction per table, indexes
  after the load, then WAL mode; no checksums, no migrations, no verification.

Only sessionorm's five tables are carried (the benchmark's other legacy tables are empty).
"""

from __future__ import annotations

import sqlite3
import sys

BATCH = 5_000
SORT_MEMORY = "256MB"  # sessionorm.backends.pg_copy.PG_SORT_MEMORY
SQLITE_CACHE = -16384  # sessionorm.backends.sqlite_copy.SQLITE_CACHE

SESSION_COLUMNS = (
    "id",
    "name",
    "ampPrompt",
    "followUpPrompts",
    "repoRoot",
    "baseBranch",
    "branchName",
    "worktreePath",
    "status",
    "scriptCommand",
    "modelOverride",
    "threadId",
    "createdAt",
    "lastRun",
    "notes",
    "contextIncluded",
)
TABLES = {  # name: (columns, primary key)
    "sessions": (SESSION_COLUMNS, "id"),
    "threads": (("id", "sessionId", "name", "createdAt", "updatedAt", "status"), "id"),
    "thread_messages": (("id", "threadId", "role", "content", "createdAt", "idx"), "id"),
    "migrations": (("version", "name", "applied_at"), "version"),
    "migration_checksums": (("version", "sha256"), "version"),
}
PG_TYPES = {"contextIncluded": "bool", "idx": "int4", "version": "int4"}

BARE_PG = """
CREATE TABLE sessions (
  id TEXT NOT NULL, name TEXT NOT NULL, "ampPrompt" TEXT NOT NULL, "followUpPrompts" TEXT,
  "repoRoot" TEXT NOT NULL, "baseBranch" TEXT NOT NULL, "branchName" TEXT NOT NULL,
  "worktreePath" TEXT NOT NULL, status TEXT NOT NULL, "scriptCommand" TEXT,
  "modelOverride" TEXT, "threadId" TEXT, "createdAt" TEXT NOT NULL, "lastRun" TEXT,
  notes TEXT, "contextIncluded" BOOLEAN);
CREATE TABLE threads (
  id TEXT NOT NULL, "sessionId" TEXT NOT NULL, name TEXT NOT NULL,
  "createdAt" TEXT NOT NULL, "updatedAt" TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active');
CREATE TABLE thread_messages (
  id TEXT NOT NULL, "threadId" TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('user','assistant','system')),
  content TEXT NOT NULL, "createdAt" TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE migrations (version INTEGER NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL);
CREATE TABLE migration_checksums (version INTEGER NOT NULL, sha256 TEXT NOT NULL);
"""
INDEXES = [
    ("idx_threads_session_id", "threads", "sessionId"),
    ("idx_threads_status", "threads", "status"),
    ("idx_threads_created_at", "threads", "createdAt"),
    ("idx_threads_updated_at", "threads", "updatedAt"),
    ("idx_thread_messages_thread_id", "thread_messages", "threadId"),
    ("idx_thread_messages_role", "thread_messages", "role"),
    ("idx_thread_messages_created_at", "thread_messages", "createdAt"),
    ("idx_thread_messages_idx", "thread_messages", "idx"),
    ("idx_threads_session_id_updated_at", "threads", 'sessionId", "updatedAt'),
]
KEYS_PG = [
    "ALTER TABLE sessions ADD PRIMARY KEY (id)",
    "ALTER TABLE threads ADD PRIMARY KEY (id)",
    'ALTER TABLE thread_messages ADD PRIMARY KEY (id), ADD UNIQUE ("threadId", idx)',
    "ALTER TABLE migrations ADD PRIMARY KEY (version)",
    "ALTER TABLE migration_checksums ADD PRIMARY KEY (version)",
]
FOREIGN_KEYS_PG = [
    'ALTER TABLE threads ADD FOREIGN KEY ("sessionId") REFERENCES sessions(id) ON DELETE CASCADE',
    'ALTER TABLE thread_messages ADD FOREIGN KEY ("threadId") REFERENCES threads(id) ON DELETE CASCADE',
]
SQLITE_DDL = """
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, "ampPrompt" TEXT NOT NULL, "followUpPrompts" TEXT,
  "repoRoot" TEXT NOT NULL, "baseBranch" TEXT NOT NULL, "branchName" TEXT NOT NULL,
  "worktreePath" TEXT NOT NULL, status TEXT NOT NULL, "scriptCommand" TEXT,
  "modelOverride" TEXT, "threadId" TEXT, "createdAt" TEXT NOT NULL, "lastRun" TEXT,
  notes TEXT, "contextIncluded" BOOLEAN);
CREATE TABLE threads (
  id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL, name TEXT NOT NULL,
  "createdAt" TEXT NOT NULL, "updatedAt" TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
  FOREIGN KEY("sessionId") REFERENCES sessions(id) ON DELETE CASCADE);
CREATE TABLE thread_messages (
  id TEXT PRIMARY KEY, "threadId" TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('user','assistant','system')),
  content TEXT NOT NULL, "createdAt" TEXT NOT NULL, idx INTEGER NOT NULL,
  FOREIGN KEY("threadId") REFERENCES threads(id) ON DELETE CASCADE, UNIQUE("threadId", idx));
CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
CREATE TABLE migration_checksums (version INTEGER NOT NULL PRIMARY KEY, sha256 TEXT NOT NULL);
"""


def quoted(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def index_sql() -> list[str]:
    return [f'CREATE INDEX "{name}" ON {table} ("{cols}")' for name, table, cols in INDEXES]


def to_pg(source: str, url: str) -> None:
    import psycopg

    lite = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    lite.execute("BEGIN")  # one snapshot, as sessionorm reads
    with psycopg.connect(url, prepare_threshold=None) as pg:
        pg.execute(BARE_PG)
        for table, (columns, key) in TABLES.items():
            cursor = lite.execute(f"SELECT {quoted(columns)} FROM {table} ORDER BY {key}")
            with pg.cursor().copy(f"COPY {table} ({quoted(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([PG_TYPES.get(c, "text") for c in columns])
                while batch := cursor.fetchmany(BATCH):
                    for row in batch:
                        copy.write_row(row)
        pg.execute(f"SET LOCAL maintenance_work_mem = '{SORT_MEMORY}'")
        for sql in KEYS_PG + index_sql() + FOREIGN_KEYS_PG:
            pg.execute(sql)
    lite.close()


def to_sqlite(url: str, dest: str) -> None:
    import psycopg

    lite = sqlite3.connect(dest, isolation_level=None)
    lite.execute("PRAGMA journal_mode = OFF")
    lite.execute("PRAGMA synchronous = OFF")
    lite.execute(f"PRAGMA cache_size = {SQLITE_CACHE}")
    lite.executescript(SQLITE_DDL)
    with psycopg.connect(url, prepare_threshold=None) as pg:
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
        for table, (columns, key) in TABLES.items():
            insert = f"INSERT INTO {table} ({quoted(columns)}) VALUES ({', '.join('?' * len(columns))})"
            lite.execute("BEGIN")
            with pg.cursor().copy(
                f"COPY (SELECT {quoted(columns)} FROM {table} ORDER BY {key}) TO STDOUT (FORMAT BINARY)"
            ) as copy:
                copy.set_types([PG_TYPES.get(c, "text") for c in columns])
                batch = []
                for row in copy.rows():
                    batch.append(row)
                    if len(batch) == BATCH:
                        lite.executemany(insert, batch)
                        batch = []
                if batch:
                    lite.executemany(insert, batch)
            lite.execute("COMMIT")
    lite.execute("BEGIN")
    for sql in index_sql():
        lite.execute(sql)
    lite.execute("COMMIT")
    lite.execute("PRAGMA journal_mode = WAL")
    lite.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("to-pg", "to-sqlite"):
        print(__doc__, file=sys.stderr)
        return 2
    (to_pg if argv[0] == "to-pg" else to_sqlite)(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
