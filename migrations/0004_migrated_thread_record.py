"""A record of the threads migration 1 made: which thread, for which session and legacy threadId.

`verify` judges losses from this record, never from `sessions.threadId` (the app rewrites it)
nor from thread names (the app makes `Thread <threadId>` rows of its own). Two tables:

- `sessionorm_migrated_threads`: one row per marker message of migration 1 (its id is the
  key; the thread's id follows renames). A thread deleted through sessionorm is marked
  `deletedAt`, not forgotten: it is no loss, and the data step never makes it again.
- `sessionorm_unmatched_sessions`: sessions that carried a threadId, and had no migrated
  thread, when the record began on a file migrated before it existed. Whether their thread
  was lost before then or the app set their threadId later cannot be told.

The record is filled from the marker messages (each names its legacy threadId), once, here.
This script also owns the re-runnable data step from now on (`backfill`, superseding
migration 1's): it makes `T-` ids, records what it makes, and skips sessions already in the
record. Self-contained: only exception classes come from the package.
"""
import datetime as dt

import peewee

from sessionorm.errors import MigrationError

# Migration 1's data step, whose re-runnable form this script takes over (`sessionorm backfill`).
SUPERSEDES = ("0001_session_thread_relationship",)

RECORD = "sessionorm_migrated_threads"
UNMATCHED = "sessionorm_unmatched_sessions"
MESSAGE_PREFIX = "Thread migrated from legacy threadId: "
THREAD_NAME_PREFIX = "Migrated Thread for "

TABLES = (
    f"""CREATE TABLE IF NOT EXISTS {RECORD} (
  "markerId" TEXT PRIMARY KEY, "threadId" TEXT NOT NULL, "sessionId" TEXT NOT NULL,
  "legacyThreadId" TEXT NOT NULL, "recordedAt" TEXT NOT NULL, "deletedAt" TEXT)""",
    f'CREATE INDEX IF NOT EXISTS "idx_{RECORD}_session_id" ON {RECORD} ("sessionId")',
    f'CREATE INDEX IF NOT EXISTS "idx_{RECORD}_thread_id" ON {RECORD} ("threadId")',
    f"""CREATE TABLE IF NOT EXISTS {UNMATCHED} (
  "sessionId" TEXT PRIMARY KEY, "threadId" TEXT NOT NULL, "recordedAt" TEXT NOT NULL)""",
)

IS_MARKER = (f"m.idx = 0 AND m.role = 'system'"
             f" AND substr(m.content, 1, {len(MESSAGE_PREFIX)}) = '{MESSAGE_PREFIX}'")
HAS_THREAD_ID = """s."threadId" IS NOT NULL AND s."threadId" != ''"""
IN_RECORD = f'EXISTS (SELECT 1 FROM {RECORD} r WHERE r."sessionId" = s.id)'
UNMATCHED_SESSION = f'EXISTS (SELECT 1 FROM {UNMATCHED} u WHERE u."sessionId" = s.id)'
# A thread of the session whose marker names its current threadId, or the app's own thread
# for it (id = the threadId): migration 1's "already migrated".
HAS_MARKER_THREAD = (
    """EXISTS (SELECT 1 FROM threads t WHERE t."sessionId" = s.id AND EXISTS"""
    """ (SELECT 1 FROM thread_messages m WHERE m."threadId" = t.id AND m.idx = 0"""
    f""" AND m.role = 'system' AND m.content = '{MESSAGE_PREFIX}' || s."threadId"))""")
HAS_APP_THREAD = (
    """EXISTS (SELECT 1 FROM threads o WHERE o.id = s."threadId" AND o."sessionId" = s.id)""")


def is_postgres(db):
    return isinstance(db, peewee.PostgresqlDatabase)


def now():
    value = dt.datetime.now(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def migration_1_time(db):
    """When migration 1 ran, as stored text in the orchestrator's format (None: unknown)."""
    row = db.execute_sql("SELECT applied_at FROM migrations WHERE version = 1").fetchone()
    if not row or not row[0]:
        return None
    try:
        value = dt.datetime.fromisoformat(str(row[0]).replace("Z", "+00:00"))
    except ValueError:
        return None
    value = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def record_markers(db, at):
    """Record every marker message not yet recorded; return how many."""
    p = db.param
    return db.execute_sql(
        f'INSERT INTO {RECORD} ("markerId", "threadId", "sessionId", "legacyThreadId", "recordedAt")'
        f' SELECT m.id, t.id, t."sessionId", substr(m.content, {len(MESSAGE_PREFIX) + 1}), {p}'
        f' FROM thread_messages m JOIN threads t ON t.id = m."threadId" WHERE {IS_MARKER}'
        f' AND NOT EXISTS (SELECT 1 FROM {RECORD} x WHERE x."markerId" = m.id)', (at,)).rowcount


def record_unmatched(db, at):
    """Sessions that existed when migration 1 ran, with a threadId and no migrated thread.

    An app thread for the threadId made before migration 1 ran is why migration 1 skipped
    the session; one made after it may stand in for a thread lost since (the app's rebuild of
    `sessions` deletes threads, then its start-up makes `Thread <threadId>` rows).
    """
    applied = migration_1_time(db)
    if applied is None:
        return 0
    p = db.param
    return db.execute_sql(
        f'INSERT INTO {UNMATCHED} ("sessionId", "threadId", "recordedAt")'
        f' SELECT s.id, s."threadId", {p} FROM sessions s WHERE {HAS_THREAD_ID}'
        f' AND s."createdAt" <= {p} AND NOT {IN_RECORD} AND NOT {UNMATCHED_SESSION}'
        ' AND NOT EXISTS (SELECT 1 FROM threads o WHERE o.id = s."threadId"'
        f' AND o."sessionId" = s.id AND o."createdAt" <= {p})', (at, applied, applied)).rowcount


def up(migrator, db, options):
    for sql in TABLES:
        db.execute_sql(sql)
    at = now()
    return {"recorded": record_markers(db, at), "unmatched": record_unmatched(db, at)}


def down(migrator, db, options):
    db.execute_sql(f"DROP TABLE {UNMATCHED}")
    db.execute_sql(f"DROP TABLE {RECORD}")


# -- the data step from now on ----------------------------------------------------------------

# A v4 UUID from SQLite's randomblob(): every hex digit random but the version and variant.
SQLITE_UUID = (
    "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)"
    " || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)"
    " || '-' || hex(randomblob(6)))")
POSTGRES_UUID = "gen_random_uuid()::text"
STAGE = "sessionorm_new_threads"


def backfill(db):
    """Threads for sessions that carry a threadId and are in no record yet (created since).

    Each gets a `T-` thread, its marker message and its record row, in the caller's
    transaction. Sessions in the record (their thread deleted through sessionorm included)
    and unmatched sessions are skipped.
    """
    uuid = POSTGRES_UUID if is_postgres(db) else SQLITE_UUID
    p, at = db.param, now()
    todo = (f"{HAS_THREAD_ID} AND NOT {IN_RECORD} AND NOT {UNMATCHED_SESSION}"
            f" AND NOT {HAS_MARKER_THREAD} AND NOT {HAS_APP_THREAD}")
    total = db.execute_sql(f"SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID}").fetchone()[0]
    stage, on_commit = ("pg_temp." + STAGE, " ON COMMIT DROP") if is_postgres(db) else ("temp." + STAGE, "")
    db.execute_sql(f"DROP TABLE IF EXISTS {stage}")
    db.execute_sql(
        f"CREATE TEMPORARY TABLE {STAGE}{on_commit} AS SELECT 'T-' || {uuid} AS id, {uuid} AS marker,"
        f' s.id AS session_id, s.name AS name, s."createdAt" AS created_at, s."threadId" AS legacy'
        f" FROM sessions s WHERE {todo}")
    made = db.execute_sql(
        'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
        f" SELECT id, session_id, '{THREAD_NAME_PREFIX}' || name, created_at, created_at,"
        f" 'active' FROM {stage} ORDER BY id").rowcount
    messages = db.execute_sql(
        'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
        f" SELECT marker, id, 'system', '{MESSAGE_PREFIX}' || legacy, created_at, 0"
        f" FROM {stage} ORDER BY id").rowcount
    recorded = db.execute_sql(
        f'INSERT INTO {RECORD} ("markerId", "threadId", "sessionId", "legacyThreadId",'
        f' "recordedAt") SELECT marker, id, session_id, legacy, {p} FROM {stage}', (at,)).rowcount
    db.execute_sql(f"DROP TABLE {stage}")  # an error rolls it back with the rest
    if not made == messages == recorded:
        raise MigrationError(f"the data step made {made} threads, {messages} messages and "
                             f"{recorded} record rows")
    return {"migrated": made, "skipped": total - made}
