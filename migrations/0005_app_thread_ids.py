"""Thread ids the orchestrator app shows: every thread without a `T-` id becomes `T-<old id>`.

The app lists only threads whose id starts with `T-` (its UI and its session export), and its
own start-up tries the same rename, which fails on the foreign key as soon as a thread has
messages. Migration 1 and sessionorm 0.2.0's `create_thread` made bare UUIDs. Here each such
thread is copied under its new id, its messages move to it and the old row goes, all in the
caller's transaction, so foreign keys hold at every step on both engines. The record of
migrated threads follows. A thread whose `T-` id is already taken keeps its id.

Every rename is kept in `sessionorm_renamed_threads`, so `down` puts the old ids back.
`backfill` renames threads made since by older tools. Self-contained: only exception classes
come from the package.
"""
import datetime as dt

import peewee

from sessionorm.errors import MigrationError

RENAMES = "sessionorm_renamed_threads"
RECORD = "sessionorm_migrated_threads"
STAGE = "sessionorm_thread_renames"
TABLE = f"""CREATE TABLE IF NOT EXISTS {RENAMES} (
  "newId" TEXT PRIMARY KEY, "oldId" TEXT NOT NULL UNIQUE, "renamedAt" TEXT NOT NULL)"""


def is_postgres(db):
    return isinstance(db, peewee.PostgresqlDatabase)


def now():
    value = dt.datetime.now(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def stage_name(db):
    return ("pg_temp." if is_postgres(db) else "temp.") + STAGE


def move_threads(db, select_pairs):
    """Give each thread of `select_pairs` (SQL yielding old_id, new_id) its new id, its
    messages and its record row following; return how many."""
    stage = stage_name(db)
    db.execute_sql(f"DROP TABLE IF EXISTS {stage}")
    on_commit = " ON COMMIT DROP" if is_postgres(db) else ""
    # keyed by the old id: every statement below looks a thread up in it
    db.execute_sql(f"CREATE TEMPORARY TABLE {STAGE} (old_id TEXT PRIMARY KEY, new_id TEXT NOT NULL)"
                   f"{on_commit}")
    db.execute_sql(f"INSERT INTO {stage} (old_id, new_id) {select_pairs}")

    def moving(table, column):
        return (f'UPDATE {table} SET "{column}" = (SELECT r.new_id FROM {stage} r'
                f' WHERE r.old_id = {table}."{column}") WHERE "{column}" IN (SELECT old_id FROM {stage})')

    if RECORD in db.get_tables():
        db.execute_sql(moving(RECORD, "threadId"))
    messages, threads = moving("thread_messages", "threadId"), moving("threads", "id")
    if is_postgres(db):
        # One statement: its foreign-key checks run at its end, when both sides have moved.
        moved = db.execute_sql(f"WITH moved AS ({messages}) {threads}").rowcount
    else:
        # Foreign keys are checked at COMMIT (off already inside a migration).
        db.execute_sql("PRAGMA defer_foreign_keys = ON")
        db.execute_sql(messages)
        moved = db.execute_sql(threads).rowcount
    staged = db.execute_sql(f"SELECT count(*) FROM {stage}").fetchone()[0]
    db.execute_sql(f"DROP TABLE {stage}")
    if moved != staged:
        raise MigrationError(f"renaming threads moved {moved} of {staged}")
    return moved


def rename_to_t_ids(db):
    """Rename every thread without a `T-` id whose `T-` id is free; keep each rename."""
    at, p = now(), db.param
    pairs = ("SELECT t.id AS old_id, 'T-' || t.id AS new_id FROM threads t"
             " WHERE substr(t.id, 1, 2) != 'T-' AND NOT EXISTS"
             " (SELECT 1 FROM threads o WHERE o.id = 'T-' || t.id)")
    db.execute_sql(f'INSERT INTO {RENAMES} ("newId", "oldId", "renamedAt")'
                   f" SELECT new_id, old_id, {p} FROM ({pairs}) pairs"
                   f' WHERE NOT EXISTS (SELECT 1 FROM {RENAMES} x WHERE x."oldId" = pairs.old_id'
                   f' OR x."newId" = pairs.new_id)', (at,))
    return move_threads(db, pairs)


def up(migrator, db, options):
    db.execute_sql(TABLE)
    return {"renamed": rename_to_t_ids(db)}


def down(migrator, db, options):
    """The old ids back, for each renamed thread that still has its new id and whose old id
    is free; then the table of renames goes."""
    move_threads(db, f'SELECT x."newId" AS old_id, x."oldId" AS new_id FROM {RENAMES} x'
                     ' WHERE EXISTS (SELECT 1 FROM threads t WHERE t.id = x."newId")'
                     ' AND NOT EXISTS (SELECT 1 FROM threads o WHERE o.id = x."oldId")')
    db.execute_sql(f"DROP TABLE {RENAMES}")


def backfill(db):
    """Rename threads made without a `T-` id since (e.g. by sessionorm 0.2.0 or the app at
    3b7ef7d)."""
    return {"renamed": rename_to_t_ids(db)}


# -- a legacy or new database: migrations 1 to 5 at once ---------------------------------------
# Where none of 1-5 has run, the runner hands them all to `up_together`: migration 1's
# threads are made with `T-` ids and recorded at once, instead of made, recorded and renamed
# (each rename rewrites a thread, its message and its record row), and every index is built
# once, after the rows. The end state is the same; tests compare the two paths.
TOGETHER_FROM = "0001_session_thread_relationship"
TOGETHER = (TOGETHER_FROM, "0002_orchestrator_index_names", "0003_orchestrator_app_schema",
            "0004_migrated_thread_record")
MESSAGE_PREFIX = "Thread migrated from legacy threadId: "
HAS_THREAD_ID = """s."threadId" IS NOT NULL AND s."threadId" != ''"""


def bulk_load_sql_postgres():
    """Threads, their markers and their record rows from one scan of sessions."""
    uuid = "gen_random_uuid()::text"
    return (
        f"WITH src AS MATERIALIZED (SELECT 'T-' || {uuid} AS id, {uuid} AS marker,"
        ' s.id AS session_id, s.name, s."createdAt" AS created_at, s."threadId" AS legacy'
        f" FROM sessions s WHERE {HAS_THREAD_ID}),"
        ' threads_made AS (INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt",'
        " status) SELECT id, session_id, 'Migrated Thread for ' || name, created_at, created_at,"
        " 'active' FROM src),"
        ' markers_made AS (INSERT INTO thread_messages (id, "threadId", role, content, "createdAt",'
        f" idx) SELECT marker, id, 'system', '{MESSAGE_PREFIX}' || legacy, created_at, 0 FROM src)"
        f' INSERT INTO {RECORD} ("markerId", "threadId", "sessionId", "legacyThreadId", "recordedAt")'
        " SELECT marker, id, session_id, legacy, %s FROM src")


def bulk_load_postgres(first, db):
    """Empty thread tables loaded bare, then their keys back (migration 1's way, `first`)."""
    constraints = first.key_constraints(db)
    for table, name, _, _ in reversed(constraints):  # foreign keys first
        db.execute_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    made = db.execute_sql(bulk_load_sql_postgres(), (now(),)).rowcount
    for sql in first.add_constraints_sql(constraints):
        db.execute_sql(sql)
    return {"migrated": made, "skipped": 0}


def empty_thread_tables(db):
    return not db.execute_sql("SELECT EXISTS (SELECT 1 FROM threads)"
                              " OR EXISTS (SELECT 1 FROM thread_messages)").fetchone()[0]


def up_together(steps, migrator, db, options):
    """Migrations 1 to 5 in the caller's transaction; their results by name."""
    modules = dict(steps)
    first, indexes, app_schema, record = (modules[name] for name in TOGETHER)
    for sql in first.statements()[0]:
        db.execute_sql(sql)
    app_schema.up(migrator, db, options)
    record_indexes = [sql for sql in record.TABLES if sql.startswith("CREATE INDEX")]
    for sql in record.TABLES:
        if sql not in record_indexes:
            db.execute_sql(sql)
    db.execute_sql(TABLE)
    renamed = rename_to_t_ids(db)  # threads the app made before, with bare ids
    recorded = record.record_markers(db, now())  # markers another tool made before
    if is_postgres(db) and empty_thread_tables(db):
        result = bulk_load_postgres(first, db)
    else:
        if recorded:  # the data step looks sessions up in the record
            for sql in record_indexes:
                db.execute_sql(sql)
            record_indexes = []
        result = record.backfill(db)
    for sql in record_indexes:
        db.execute_sql(sql)
    indexes.rename(migrator, db, indexes.AFTER)
    return {TOGETHER_FROM: result, TOGETHER[3]: {"recorded": recorded + result["migrated"],
                                                 "unmatched": 0},
            "0005_app_thread_ids": {"renamed": renamed}}
