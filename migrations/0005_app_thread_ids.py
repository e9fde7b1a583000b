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
    """Give each thread of `select_pairs` (SQL yielding old_id, new_id) its new id; return how
    many. Copy under the new id, move the messages and the record, delete the old row."""
    stage = stage_name(db)
    db.execute_sql(f"DROP TABLE IF EXISTS {stage}")
    on_commit = " ON COMMIT DROP" if is_postgres(db) else ""
    db.execute_sql(f"CREATE TEMPORARY TABLE {STAGE}{on_commit} AS {select_pairs}")
    columns = [c.name for c in db.get_columns("threads") if c.name != "id"]
    listed = ", ".join(f'"{c}"' for c in columns)
    copied = ", ".join(f't."{c}"' for c in columns)
    moved = db.execute_sql(
        f"INSERT INTO threads (id, {listed}) SELECT r.new_id, {copied}"
        f" FROM {stage} r JOIN threads t ON t.id = r.old_id ORDER BY r.new_id").rowcount
    db.execute_sql(f'UPDATE thread_messages SET "threadId" = (SELECT r.new_id FROM {stage} r'
                   f' WHERE r.old_id = thread_messages."threadId")'
                   f' WHERE "threadId" IN (SELECT old_id FROM {stage})')
    if RECORD in db.get_tables():
        db.execute_sql(f'UPDATE {RECORD} SET "threadId" = (SELECT r.new_id FROM {stage} r'
                       f' WHERE r.old_id = {RECORD}."threadId")'
                       f' WHERE "threadId" IN (SELECT old_id FROM {stage})')
    deleted = db.execute_sql(f"DELETE FROM threads WHERE id IN (SELECT old_id FROM {stage})").rowcount
    db.execute_sql(f"DROP TABLE {stage}")
    if moved != deleted:
        raise MigrationError(f"renaming threads copied {moved} and removed {deleted}")
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
    """Rename threads made without a `T-` id since (e.g. by sessionorm 0.2.0)."""
    rename_to_t_ids(db)
