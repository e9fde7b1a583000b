"""The orchestrator's index names: rename sessionorm's earlier ones, drop exact duplicates.

The orchestrator runs `CREATE INDEX IF NOT EXISTS` under its own names on every start; under
any other name it adds a second index of the same shape. A rename is a drop + create on
SQLite (which has no ALTER INDEX ... RENAME) and ALTER INDEX ... RENAME on PostgreSQL. Of
indexes with one shape (table, columns in order, uniqueness, predicate) only the one named
here stays. Frozen names, independent of the
models; `sessionorm diff` proves they agree.
"""
import peewee

from sessionorm.errors import MigrationError
from sessionorm.indexes import Shape, live_indexes

BEFORE, AFTER = 0, 1
# (table, columns) -> (migration 1's name, the orchestrator's name)
NAMES = {
    ("threads", ("sessionId",)): ("idx_threads_sessionId", "idx_threads_session_id"),
    ("threads", ("status",)): ("idx_threads_status", "idx_threads_status"),
    ("threads", ("createdAt",)): ("idx_threads_createdAt", "idx_threads_created_at"),
    ("threads", ("updatedAt",)): ("idx_threads_updatedAt", "idx_threads_updated_at"),
    ("thread_messages", ("threadId",)): ("idx_thread_messages_threadId",
                                         "idx_thread_messages_thread_id"),
    ("thread_messages", ("role",)): ("idx_thread_messages_role", "idx_thread_messages_role"),
    ("thread_messages", ("createdAt",)): ("idx_thread_messages_createdAt",
                                          "idx_thread_messages_created_at"),
    ("thread_messages", ("idx",)): ("idx_thread_messages_idx", "idx_thread_messages_idx"),
    # not the orchestrator's: a session's threads, newest updated first
    ("threads", ("sessionId", "updatedAt")): ("idx_threads_sessionId_updatedAt",
                                              "idx_threads_session_id_updated_at"),
}


def plan(db, which, in_place=False):
    """(drop, rename, create) arguments that leave exactly one index per shape, named `which`.

    `in_place`: rename an index of the shape instead of dropping and rebuilding it.
    """
    live = {table: live_indexes(db, table) for table in ("threads", "thread_messages")}
    drops, renames, creates = [], [], []
    for (table, columns), names in NAMES.items():
        name, shape = names[which], Shape(table, columns)
        for index in live[table]:
            if index.name == name and index.shape != shape:
                raise MigrationError(f"index {name} exists on {index.shape}, not on {shape}; "
                                     "drop or rename it first")
        same = [index.name for index in live[table] if index.shape == shape]
        if name not in same and same and in_place:
            renames.append((same[0], name))
            same = same[1:]
        drops += [(table, other) for other in same if other != name]
        if name not in same and not any(new == name for _, new in renames):
            creates.append((table, columns, name))
    return drops, renames, creates


def rename(migrator, db, which):
    in_place = isinstance(db, peewee.PostgresqlDatabase)  # SQLite has no ALTER INDEX … RENAME
    drops, renames, creates = plan(db, which, in_place)
    migrator.migrate(*[migrator.drop_index(table, name) for table, name in drops])
    for old, new in renames:
        db.execute_sql(f'ALTER INDEX "{old}" RENAME TO "{new}"')
    migrator.migrate(*[migrator.add_index(table, columns, name=name)
                       for table, columns, name in creates])
    left = plan(db, which)
    if left != ([], [], []):
        raise MigrationError(f"index names still differ after the rename: {left}")


def up(migrator, db):
    rename(migrator, db, AFTER)


def down(migrator, db):
    rename(migrator, db, BEFORE)


# Where neither migration has run yet (a legacy or a new database), the runner applies both
# at once with `up_with`: migration 1's tables and data step, then each index built once,
# under its final name, instead of built by 1 and rebuilt by 2 (2.0 s of 12 at 1,000,000
# sessions). The end state is the same; tests compare the two paths object by object.
FOLLOWS = "0001_session_thread_relationship"


def up_with(previous, migrator, db):
    """Migration 1 (the module `previous`) and this one, in the caller's transaction."""
    tables, _ = previous.statements()
    for sql in tables:
        db.execute_sql(sql)
    migrator.result = previous.migrate_thread_ids(db)
    rename(migrator, db, AFTER)
