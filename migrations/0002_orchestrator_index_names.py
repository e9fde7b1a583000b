"""The orchestrator's index names: rename sessionorm's earlier ones, drop exact duplicates.

The orchestrator runs `CREATE INDEX IF NOT EXISTS` under its own names on every start; under
any other name it adds a second index of the same shape. A rename is a drop + create on
SQLite (which has no ALTER INDEX ... RENAME) and ALTER INDEX ... RENAME on PostgreSQL. Of
indexes with one shape (table, columns in order, uniqueness, predicate) only the one named
here stays. Frozen names, independent of the
models; `sessionorm diff` proves they agree. Self-contained: everything it runs is in this file
(only exception classes come from the package), so its recorded sha256 covers all of it.
"""
import re

import peewee

from sessionorm.errors import MigrationError

# Earlier copies of this script with the same effect (their sha256 is recorded where they ran).
PREVIOUS_SHA256 = {
    # 0.1.0: the same renames, reading the live indexes through the package
    "fa2423bf2cce741b67529b3080e463962a42f5fa1415fa04f1e17c9067454e74",
}

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


PARTIAL = re.compile(r"\)\s*WHERE\s", re.I)


def shape(table, columns, unique=False, partial=False):
    """What an index is, whatever its name: table, columns in order, unique, partial."""
    return f"{table} ({', '.join(columns)})" + (" unique" if unique else "") + \
        (" with a WHERE clause" if partial else "")


def live_indexes(db, table):
    """(name, shape) of each index of `table` that has DDL (SQLite's automatic ones have none).

    An expression's column is None (SQLite) or its text (PostgreSQL): no name matches it.
    """
    return [(index.name, shape(table, [(c or "?").strip('"') for c in index.columns], bool(index.unique),
                               bool(PARTIAL.search(index.sql))))
            for index in db.get_indexes(table) if index.sql is not None]


def plan(db, which, in_place=False):
    """(drop, rename, create) arguments that leave exactly one index per shape, named `which`.

    `in_place`: rename an index of the shape instead of dropping and rebuilding it.
    """
    live = {table: live_indexes(db, table) for table in ("threads", "thread_messages")}
    drops, renames, creates = [], [], []
    for (table, columns), names in NAMES.items():
        name, wanted = names[which], shape(table, columns)
        for index, found in live[table]:
            if index == name and found != wanted:
                raise MigrationError(f"index {name} exists on {found}, not on {wanted}; "
                                     "drop or rename it first")
        same = [index for index, found in live[table] if found == wanted]
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


def up(migrator, db, options):
    rename(migrator, db, AFTER)


def down(migrator, db, options):
    rename(migrator, db, BEFORE)


# Where neither migration has run yet (a legacy or a new database), the runner applies both
# at once with `up_with`: migration 1's tables and data step, then each index built once,
# under its final name, instead of built by 1 and rebuilt by 2 (2.0 s of 12 at 1,000,000
# sessions). The end state is the same; tests compare the two paths object by object.
FOLLOWS = "0001_session_thread_relationship"


def up_with(previous, migrator, db, options):
    """Migration 1 (the module `previous`) and this one, in the caller's transaction; return
    migration 1's result."""
    tables, _ = previous.statements()
    for sql in tables:
        db.execute_sql(sql)
    result = previous.migrate_thread_ids(db)
    rename(migrator, db, AFTER)
    return result
