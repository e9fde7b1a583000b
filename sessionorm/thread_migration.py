"""The data step of migration 1: one thread and one system message per legacy threadId.

Set-based SQL (no Python loop over rows), shared by the migration script and
`SessionStore.migrate_session_thread_ids`. Each statement has a twin that returns its SQL.
"""
from __future__ import annotations

from dataclasses import dataclass

import peewee

from .drift import column_differences, constraint_differences, existing
from .errors import MigrationError
from .models import Thread, ThreadMessage
from .postgres import linear_plans

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
# subquery from the unselective index on thread_messages(idx) or (role), scanning every
# marker message for every session -- quadratic (80 s for `verify` on 50,000 sessions).
# Nested, it walks threads(sessionId) then the UNIQUE(threadId, idx) index.
HAS_MARKER_THREAD = (
    """EXISTS (SELECT 1 FROM threads t WHERE t."sessionId" = s.id AND EXISTS"""
    """ (SELECT 1 FROM thread_messages m WHERE m."threadId" = t.id AND m.idx = 0"""
    f""" AND m.role = 'system' AND m.content = '{MESSAGE_PREFIX}' || s."threadId"))""")
# Later orchestrator versions give the legacy thread a row of its own: id = the threadId
# (a primary-key lookup).
HAS_LEGACY_THREAD = (
    """EXISTS (SELECT 1 FROM threads o WHERE o.id = s."threadId" AND o."sessionId" = s.id)""")
NOT_YET_MIGRATED = f"NOT {HAS_MARKER_THREAD} AND NOT {HAS_LEGACY_THREAD}"
# PostgreSQL: joins under NOT EXISTS, which become hash anti-joins under `linear_plans`.
NOT_YET_MIGRATED_PG = (
    'NOT EXISTS (SELECT 1 FROM threads t JOIN thread_messages m ON m."threadId" = t.id'
    """ WHERE t."sessionId" = s.id AND m.idx = 0 AND m.role = 'system'"""
    f""" AND m.content = '{MESSAGE_PREFIX}' || s."threadId") AND NOT {HAS_LEGACY_THREAD}""")
NEW_TABLES = ("threads", "thread_messages")
# Sessions with more than one migrated thread: another tool ran the migration again.
MIGRATED_TWICE = (
    f"""SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID} AND (SELECT count(*) FROM threads t"""
    """ WHERE t."sessionId" = s.id AND EXISTS (SELECT 1 FROM thread_messages m"""
    """ WHERE m."threadId" = t.id AND m.idx = 0 AND m.role = 'system'"""
    f""" AND m.content = '{MESSAGE_PREFIX}' || s."threadId")) > 1""")


@dataclass(frozen=True)
class MigrationResult:
    """Threads created now, and sessions with a threadId that already had theirs."""

    migrated: int
    skipped: int


def is_postgres(db: peewee.Database) -> bool:
    return isinstance(db, peewee.PostgresqlDatabase)


STAGE = "temp.sessionorm_new_threads"


def stage_sql() -> str:
    """SQLite: the sessions still to migrate, each with its new thread's id, in a temp table."""
    return (
        f"CREATE TABLE {STAGE} AS SELECT {SQLITE_UUID} AS id, s.id AS session_id, s.name AS name,"
        f' s."createdAt" AS created_at, s."threadId" AS legacy'
        f" FROM sessions s WHERE {HAS_THREAD_ID} AND {NOT_YET_MIGRATED}")


# Both inserts read the stage in thread-id order: the random-UUID keys of threads and of
# UNIQUE(threadId, idx) then grow at one end instead of everywhere, and the foreign-key check
# walks threads in order (2.5x faster than joining new threads back to sessions at 1M).
def insert_staged_threads_sql() -> str:
    return (
        'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
        f" SELECT id, session_id, '{THREAD_NAME_PREFIX}' || name, created_at, created_at, 'active'"
        f" FROM {STAGE} ORDER BY id")


def insert_staged_messages_sql() -> str:
    return (
        'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
        f" SELECT {SQLITE_UUID}, id, 'system', '{MESSAGE_PREFIX}' || legacy, created_at, 0"
        f" FROM {STAGE} ORDER BY id")


def insert_both_sql_postgres() -> str:
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


def bulk_load_sql_postgres() -> str:
    """Both tables from one scan of sessions, for tables without keys (see `bulk_load_postgres`)."""
    return (
        f"WITH src AS MATERIALIZED (SELECT {POSTGRES_UUID} AS id, s.id AS session_id, s.name,"
        f' s."createdAt" AS created_at, s."threadId" AS legacy FROM sessions s WHERE {HAS_THREAD_ID}),'
        ' new AS (INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
        f" SELECT id, session_id, '{THREAD_NAME_PREFIX}' || name, created_at, created_at, 'active'"
        " FROM src)"
        ' INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
        f" SELECT {POSTGRES_UUID}, id, 'system', '{MESSAGE_PREFIX}' || legacy, created_at, 0 FROM src")


def key_constraints(db: peewee.Database) -> list[tuple[str, str, str, str]]:
    """(table, name, definition, kind) of the keys and foreign keys of or into the new tables.

    Foreign keys come last, as they must be added: after the keys they reference.
    """
    tables = list(NEW_TABLES)
    return db.execute_sql(
        "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid),"
        " c.contype FROM pg_catalog.pg_constraint c WHERE c.contype IN ('p', 'u', 'f')"
        " AND (c.conrelid = ANY(%s::text[]::regclass[]) OR c.confrelid = ANY(%s::text[]::regclass[]))"
        " ORDER BY c.contype = 'f', c.conrelid::regclass::text, c.conname", (tables, tables)).fetchall()


def add_constraints_sql(constraints: list[tuple[str, str, str, str]]) -> list[str]:
    """One ALTER TABLE per table and kind (keys, then foreign keys): one pass over the table each."""
    grouped: dict[tuple[bool, str], list[str]] = {}
    for table, name, definition, kind in constraints:
        grouped.setdefault((kind == "f", table), []).append(f"ADD CONSTRAINT {name} {definition}")
    return [f"ALTER TABLE {table} {', '.join(adds)}" for (_, table), adds in grouped.items()]


def bulk_load_postgres(db: peewee.Database) -> int:
    """Load the empty new tables bare, then put their keys back: the threads created.

    Inserting into tables that already carry their keys pays, per row, for a foreign-key
    check and inserts into random-UUID indexes; building each index once from the loaded
    rows and validating each foreign key in one pass is 2-3x faster at 1,000,000 sessions.
    The constraints come back with the names and definitions PostgreSQL gave them, in the
    same transaction, so the end state is the same as loading them with their keys on.
    """
    constraints = key_constraints(db)
    for table, name, _, _ in reversed(constraints):  # foreign keys first
        db.execute_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    migrated = db.execute_sql(bulk_load_sql_postgres()).rowcount
    for sql in add_constraints_sql(constraints):
        db.execute_sql(sql)
    return migrated


def new_tables_empty(db: peewee.Database) -> bool:
    return not db.execute_sql(
        "SELECT EXISTS (SELECT 1 FROM threads) OR EXISTS (SELECT 1 FROM thread_messages)").fetchone()[0]


def count_plan_sql(db: peewee.Database) -> str:
    """(sessions with a threadId, those of them still to migrate) in one row."""
    if is_postgres(db):
        # An anti-join needs NOT EXISTS in WHERE; inside CASE it would be a subplan per row.
        return (f"SELECT (SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID}),"
                f" (SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID} AND {NOT_YET_MIGRATED_PG})")
    return (f"SELECT count(*), coalesce(sum(CASE WHEN {NOT_YET_MIGRATED} THEN 1 ELSE 0 END), 0)"
            f" FROM sessions s WHERE {HAS_THREAD_ID}")


def count_plan(db: peewee.Database) -> MigrationResult:
    """How many sessions the step would migrate and skip, without writing."""
    with linear_plans(db):
        total, pending = db.execute_sql(count_plan_sql(db)).fetchone()
    return MigrationResult(migrated=pending, skipped=total - pending)


def count_threaded_sessions(db: peewee.Database) -> int:
    return db.execute_sql(f"SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID}").fetchone()[0]


def migrate_thread_ids(db: peewee.Database) -> MigrationResult:
    """Run the step inside the caller's transaction; return what it did.

    Refuses (`MigrationError`, before writing) thread tables that exist in another shape
    than the contract's: migration 1 adopts those the orchestrator created only when they
    are the same tables. PostgreSQL loads empty new tables in bulk (`bulk_load_postgres`).
    """
    refuse_foreign_shape(db)
    if is_postgres(db):
        if new_tables_empty(db):  # no session can have its thread yet: none is skipped
            return MigrationResult(migrated=bulk_load_postgres(db), skipped=0)
        with linear_plans(db):
            total = count_threaded_sessions(db)
            migrated = db.execute_sql(insert_both_sql_postgres()).rowcount
        return MigrationResult(migrated=migrated, skipped=total - migrated)
    total = count_threaded_sessions(db)
    db.execute_sql(f"DROP TABLE IF EXISTS {STAGE}")
    db.execute_sql(stage_sql())
    try:
        migrated = db.execute_sql(insert_staged_threads_sql()).rowcount
        messages = db.execute_sql(insert_staged_messages_sql()).rowcount
    finally:
        db.execute_sql(f"DROP TABLE {STAGE}")
    assert messages == migrated, (messages, migrated)
    return MigrationResult(migrated=migrated, skipped=total - migrated)


def foreign_rows_sql() -> str:
    return ("SELECT (SELECT count(*) FROM threads t WHERE NOT EXISTS"
            f' (SELECT 1 FROM thread_messages m WHERE m."threadId" = t.id AND {IS_MARKER})),'
            f" (SELECT count(*) FROM thread_messages m WHERE NOT ({IS_MARKER}))")


def foreign_rows(db: peewee.Database) -> tuple[int, int]:
    """Threads and messages that the migration did not create (rollback would destroy them)."""
    with linear_plans(db):
        return db.execute_sql(foreign_rows_sql()).fetchone()


def shape_differences(db: peewee.Database) -> list[str]:
    """How existing `threads` / `thread_messages` differ from the contract's tables.

    Columns (names, types, NOT NULL, defaults), the cascading foreign keys and
    UNIQUE("threadId", idx); indexes are not part of it (migration 1 adds missing ones).
    """
    models = [Thread, ThreadMessage]
    lines = []
    for model, table in existing(db, models):
        live = {c.name for c in db.get_columns(table)}
        wanted = {f.column_name for f in model._meta.sorted_fields}
        lines += [f"{table} lacks column {c}" for c in sorted(wanted - live)]
        lines += [f"{table} has a column {c} the contract does not" for c in sorted(live - wanted)]
    lines += [str(c) for c in column_differences(db, models)]
    return lines + constraint_differences(db, models)


def refuse_foreign_shape(db: peewee.Database) -> None:
    """Raise `MigrationError` naming every difference when the thread tables are not the contract's."""
    differences = shape_differences(db)
    if differences:
        raise MigrationError(
            "refusing to adopt the existing thread tables: they differ from sessionorm's ("
            + "; ".join(differences) + "); rename or fix them first")
