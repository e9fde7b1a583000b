"""Session → threads → messages: the two tables, their indexes, one thread per legacy threadId.

Self-contained: everything this script runs is in this file (its DDL and its data step), so
the sha256 recorded where it ran covers all of it. Only exception classes come from the
package. `sessionorm diff` proves the DDL and the models agree.
"""
import contextlib

import peewee

from sessionorm.errors import MigrationError

# Earlier copies of this script with the same effect (their sha256 is recorded where they ran).
PREVIOUS_SHA256 = {
    # 0.1.0: the same DDL, with its data step imported from the package
    "7cea90db81064e3876c7b4f482f09c65f06a6417d46fd860dd07c33f4e68e7dd",
}
# Tables this script creates, or adopts when the orchestrator created them first: the runner
# refuses, before anything is written, existing ones whose shape is not the models'.
ADOPTS = ("threads", "thread_messages")

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


# -- the data step: one thread and one system message per legacy threadId --------------------
# Set-based SQL, no Python loop over rows. A session counts as migrated when it has a thread
# whose first message is the marker below, or (later orchestrator versions) a thread whose id
# is its threadId.

THREAD_NAME_PREFIX = "Migrated Thread for "
MESSAGE_PREFIX = "Thread migrated from legacy threadId: "

# A v4 UUID from SQLite's randomblob(): every hex digit random but the version and variant.
SQLITE_UUID = (
    "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)"
    " || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)"
    " || '-' || hex(randomblob(6)))")
POSTGRES_UUID = "gen_random_uuid()::text"

HAS_THREAD_ID = """s."threadId" IS NOT NULL AND s."threadId" != ''"""
IS_MARKER = (f"""m.idx = 0 AND m.role = 'system' """
             f"""AND substr(m.content, 1, {len(MESSAGE_PREFIX)}) = '{MESSAGE_PREFIX}'""")
# Nested EXISTS, not a join: with a join SQLite's planner (no ANALYZE statistics) drives the
# subquery from the unselective index on thread_messages(idx) or (role) -- quadratic.
HAS_MARKER_THREAD = (
    """EXISTS (SELECT 1 FROM threads t WHERE t."sessionId" = s.id AND EXISTS"""
    """ (SELECT 1 FROM thread_messages m WHERE m."threadId" = t.id AND m.idx = 0"""
    f""" AND m.role = 'system' AND m.content = '{MESSAGE_PREFIX}' || s."threadId"))""")
HAS_LEGACY_THREAD = (
    """EXISTS (SELECT 1 FROM threads o WHERE o.id = s."threadId" AND o."sessionId" = s.id)""")
NOT_YET_MIGRATED = f"NOT {HAS_MARKER_THREAD} AND NOT {HAS_LEGACY_THREAD}"
# PostgreSQL: joins under NOT EXISTS, which become hash anti-joins with nested loops off.
NOT_YET_MIGRATED_PG = (
    'NOT EXISTS (SELECT 1 FROM threads t JOIN thread_messages m ON m."threadId" = t.id'
    """ WHERE t."sessionId" = s.id AND m.idx = 0 AND m.role = 'system'"""
    f""" AND m.content = '{MESSAGE_PREFIX}' || s."threadId") AND NOT {HAS_LEGACY_THREAD}""")
STAGE = "temp.sessionorm_new_threads"


def is_postgres(db):
    return isinstance(db, peewee.PostgresqlDatabase)


def stage_sql():
    """SQLite: the sessions still to migrate, each with its new thread's id, in a temp table."""
    return (
        f"CREATE TABLE {STAGE} AS SELECT {SQLITE_UUID} AS id, s.id AS session_id, s.name AS name,"
        f' s."createdAt" AS created_at, s."threadId" AS legacy'
        f" FROM sessions s WHERE {HAS_THREAD_ID} AND {NOT_YET_MIGRATED}")


# Both inserts read the stage in thread-id order: the random-UUID keys of threads and of
# UNIQUE(threadId, idx) then grow at one end instead of everywhere.
def insert_staged_threads_sql():
    return (
        'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
        f" SELECT id, session_id, '{THREAD_NAME_PREFIX}' || name, created_at, created_at, 'active'"
        f" FROM {STAGE} ORDER BY id")


def insert_staged_messages_sql():
    return (
        'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
        f" SELECT {SQLITE_UUID}, id, 'system', '{MESSAGE_PREFIX}' || legacy, created_at, 0"
        f" FROM {STAGE} ORDER BY id")


def insert_both_sql_postgres():
    """Threads and their messages in one statement: PostgreSQL returns the new rows."""
    return (
        'WITH new AS (INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
        f" SELECT {POSTGRES_UUID}, s.id, '{THREAD_NAME_PREFIX}' || s.name, s.\"createdAt\","
        " s.\"createdAt\", 'active'"
        f" FROM sessions s WHERE {HAS_THREAD_ID} AND {NOT_YET_MIGRATED_PG}"
        ' RETURNING id, "sessionId", "createdAt")'
        ' INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
        f" SELECT {POSTGRES_UUID}, new.id, 'system', '{MESSAGE_PREFIX}' || s.\"threadId\","
        ' new."createdAt", 0 FROM new JOIN sessions s ON s.id = new."sessionId"')


def bulk_load_sql_postgres():
    """Both tables from one scan of sessions, for tables without keys (see `bulk_load_postgres`)."""
    return (
        f"WITH src AS MATERIALIZED (SELECT {POSTGRES_UUID} AS id, s.id AS session_id, s.name,"
        f' s."createdAt" AS created_at, s."threadId" AS legacy FROM sessions s WHERE {HAS_THREAD_ID}),'
        ' new AS (INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
        f" SELECT id, session_id, '{THREAD_NAME_PREFIX}' || name, created_at, created_at, 'active'"
        " FROM src)"
        ' INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
        f" SELECT {POSTGRES_UUID}, id, 'system', '{MESSAGE_PREFIX}' || legacy, created_at, 0 FROM src")


def key_constraints(db):
    """(table, name, definition, kind) of the keys and foreign keys of or into the new tables,
    foreign keys last (they are added after the keys they reference)."""
    tables = ["threads", "thread_messages"]
    return db.execute_sql(
        "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid),"
        " c.contype FROM pg_catalog.pg_constraint c WHERE c.contype IN ('p', 'u', 'f')"
        " AND (c.conrelid = ANY(%s::text[]::regclass[]) OR c.confrelid = ANY(%s::text[]::regclass[]))"
        " ORDER BY c.contype = 'f', c.conrelid::regclass::text, c.conname", (tables, tables)).fetchall()


def add_constraints_sql(constraints):
    """One ALTER TABLE per table and kind (keys, then foreign keys): one pass over the table each."""
    grouped = {}
    for table, name, definition, kind in constraints:
        grouped.setdefault((kind == "f", table), []).append(f"ADD CONSTRAINT {name} {definition}")
    return [f"ALTER TABLE {table} {', '.join(adds)}" for (_, table), adds in grouped.items()]


def bulk_load_postgres(db):
    """Load the empty new tables bare, then put their keys back: the threads created.

    Building each index once from the loaded rows and validating each foreign key in one pass
    is 2-3x faster at 1,000,000 sessions than inserting into tables that carry their keys.
    The constraints come back with the names and definitions PostgreSQL gave them, in the
    same transaction.
    """
    constraints = key_constraints(db)
    for table, name, _, _ in reversed(constraints):  # foreign keys first
        db.execute_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    migrated = db.execute_sql(bulk_load_sql_postgres()).rowcount
    for sql in add_constraints_sql(constraints):
        db.execute_sql(sql)
    return migrated


# A frozen copy of the package's `linear_plans`: without statistics (fresh tables) the planner
# would walk indexes once per session; with nested loops off it hashes each side once.
HASH_JOINS = {"enable_nestloop": "off", "jit": "off", "work_mem": "64MB"}


@contextlib.contextmanager
def hash_joins(db):
    """PostgreSQL: the block's statements planned with HASH_JOINS, the settings put back after."""
    if not is_postgres(db):
        yield
        return
    names = list(HASH_JOINS)
    with db.atomic():
        old = db.execute_sql("SELECT " + ", ".join(["current_setting(%s)"] * len(names)),
                             names).fetchone()
        set_locally(db, HASH_JOINS)
        yield
        set_locally(db, dict(zip(names, old, strict=True)))


def set_locally(db, settings):
    db.execute_sql("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(settings)),
                   [v for item in settings.items() for v in item])


def count_threaded_sessions(db):
    return db.execute_sql(f"SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID}").fetchone()[0]


def migrate_thread_ids(db):
    """The data step, inside the caller's transaction: {"migrated": threads made, "skipped": n}.

    Sessions that already have their thread are skipped, so it may run again at any time.
    PostgreSQL loads empty new tables in bulk (`bulk_load_postgres`).
    """
    if is_postgres(db):
        empty = not db.execute_sql("SELECT EXISTS (SELECT 1 FROM threads)"
                                   " OR EXISTS (SELECT 1 FROM thread_messages)").fetchone()[0]
        if empty:  # no session can have its thread yet: none is skipped
            return {"migrated": bulk_load_postgres(db), "skipped": 0}
        with hash_joins(db):
            total = count_threaded_sessions(db)
            migrated = db.execute_sql(insert_both_sql_postgres()).rowcount
        return {"migrated": migrated, "skipped": total - migrated}
    total = count_threaded_sessions(db)
    db.execute_sql(f"DROP TABLE IF EXISTS {STAGE}")
    db.execute_sql(stage_sql())
    try:
        migrated = db.execute_sql(insert_staged_threads_sql()).rowcount
        messages = db.execute_sql(insert_staged_messages_sql()).rowcount
    finally:
        db.execute_sql(f"DROP TABLE {STAGE}")
    if messages != migrated:
        raise MigrationError(f"the data step made {migrated} threads and {messages} messages")
    return {"migrated": migrated, "skipped": total - migrated}


def foreign_rows_sql():
    return ("SELECT (SELECT count(*) FROM threads t WHERE NOT EXISTS"
            f' (SELECT 1 FROM thread_messages m WHERE m."threadId" = t.id AND {IS_MARKER})),'
            f" (SELECT count(*) FROM thread_messages m WHERE NOT ({IS_MARKER}))")


def foreign_rows(db):
    """Threads and messages that the migration did not create (rollback would destroy them)."""
    with hash_joins(db):
        return tuple(db.execute_sql(foreign_rows_sql()).fetchone())


# -- the runner's entry points ------------------------------------------------------------------

def up(migrator, db, options):
    tables, indexes = statements()
    for sql in tables:
        db.execute_sql(sql)
    result = migrate_thread_ids(db)
    for sql in indexes:
        db.execute_sql(sql)
    return result


def check_down(db, options):
    """Refuse a rollback that would destroy threads or messages the migration did not create."""
    threads, messages = foreign_rows(db)
    if (threads or messages) and not options.force:
        raise MigrationError(
            f"refusing to roll back: {threads} threads and {messages} messages were not created "
            "by the migration and would be destroyed (use --force to destroy them)")


def down(migrator, db, options):
    check_down(db, options)
    db.execute_sql("DROP TABLE thread_messages")
    db.execute_sql("DROP TABLE threads")


def backfill(db):
    """The data step again, for sessions created since with a threadId and no thread."""
    return migrate_thread_ids(db)
