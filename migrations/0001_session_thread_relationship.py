"""Session → threads → messages: the two tables, their indexes, one thread per legacy threadId.

Frozen DDL, independent of the models; `sessionorm diff` proves they agree.
"""
from sessionorm.errors import MigrationError
from sessionorm.thread_migration import foreign_rows, migrate_thread_ids

# A brand-new database gets the orchestrator's `pre` layout of sessions.
SESSIONS = """CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, "ampPrompt" TEXT NOT NULL, "followUpPrompts" TEXT,
  "repoRoot" TEXT NOT NULL, "baseBranch" TEXT NOT NULL, "branchName" TEXT NOT NULL,
  "worktreePath" TEXT NOT NULL, status TEXT NOT NULL, "scriptCommand" TEXT,
  "modelOverride" TEXT, "threadId" TEXT, "createdAt" TEXT NOT NULL, "lastRun" TEXT,
  notes TEXT, "contextIncluded" BOOLEAN)"""

THREADS = """CREATE TABLE IF NOT EXISTS threads (
  id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL, name TEXT NOT NULL,
  "createdAt" TEXT NOT NULL, "updatedAt" TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
  FOREIGN KEY("sessionId") REFERENCES sessions(id) ON DELETE CASCADE)"""

THREAD_MESSAGES = """CREATE TABLE IF NOT EXISTS thread_messages (
  id TEXT PRIMARY KEY, "threadId" TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('user','assistant','system')),
  content TEXT NOT NULL, "createdAt" TEXT NOT NULL, idx INTEGER NOT NULL,
  FOREIGN KEY("threadId") REFERENCES threads(id) ON DELETE CASCADE, UNIQUE("threadId", idx))"""

INDEXES = (
    ("threads", "sessionId"), ("threads", "status"), ("threads", "createdAt"),
    ("threads", "updatedAt"), ("thread_messages", "threadId"), ("thread_messages", "role"),
    ("thread_messages", "createdAt"), ("thread_messages", "idx"),
    ("threads", "sessionId", "updatedAt"),  # a session's threads, newest updated first
)


def index_sql(table, *columns):
    name = "idx_" + "_".join((table,) + columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} ({quoted})'


def statements():
    """The DDL, in the order `up` runs it (indexes after the bulk insert, which is faster)."""
    return [SESSIONS, THREADS, THREAD_MESSAGES], [index_sql(*spec) for spec in INDEXES]


def up(migrator, db):
    tables, indexes = statements()
    for sql in tables:
        db.execute_sql(sql)
    migrator.result = migrate_thread_ids(db)
    for sql in indexes:
        db.execute_sql(sql)


def down(migrator, db):
    threads, messages = foreign_rows(db)
    if (threads or messages) and not migrator.force:
        raise MigrationError(
            f"refusing to roll back: {threads} threads and {messages} messages were not created "
            "by the migration and would be destroyed (use --force to destroy them)")
    db.execute_sql("DROP TABLE thread_messages")
    db.execute_sql("DROP TABLE threads")
