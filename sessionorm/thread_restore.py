"""`restore-threads`: copy back, from a backup, the threads a database has lost, and nothing else.

Restoring a whole backup would throw away every row written since (the orchestrator app keeps
writing). This copies only threads the backup holds and the database lacks, whose session the
database still has, with those of their messages it lacks: a thread the app's rebuild of
`sessions` deleted comes back; a thread deleted through sessionorm (marked in the record of
migrated threads) does not. A bare-UUID id from before migration 5 comes back as `T-<id>`,
kept among the renames so that a rollback puts the old id back. The record is mended: the
thread is recorded again, and its session is no longer "unmatched".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import peewee

from .backends import backend_of
from .errors import MigrationError
from .identifiers import q
from .thread_record import MESSAGE_PREFIX, RECORD, RENAMES, UNMATCHED
from .values import now_timestamp


@dataclass
class RestoreReport:
    """What `restore-threads` copied back (or would, under `dry_run`)."""

    database: str
    backup: str
    dry_run: bool = False
    threads: list[str] = field(default_factory=list)  # their ids in the database
    messages: int = 0


@dataclass
class Lost:
    """One thread to copy back: its row, the rows of its messages the database lacks, and its
    migration marker if it has one."""

    new_id: str
    row: dict
    messages: list[dict]
    marker: dict | None


def target_id(thread_id: str, renamed: bool) -> str:
    """The id a thread of the backup has in a database whose threads carry `T-` ids."""
    return thread_id if not renamed or thread_id.startswith("T-") else "T-" + thread_id


def rows(db: peewee.Database, sql: str, params: tuple = ()) -> list[dict]:
    cursor = db.execute_sql(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def column_names(db: peewee.Database, table: str) -> list[str]:
    return [c.name for c in db.get_columns(table)]


def find_lost(backup: peewee.Database, db: peewee.Database) -> list[Lost]:
    """The backup's threads that `db` lacks, whose session `db` has, not deleted on purpose."""
    if not {"threads", "thread_messages"} <= set(backup.get_tables()):
        raise MigrationError(
            "the backup has no threads table: it is not a backup of a migrated database (nothing was changed)"
        )
    tables = set(db.get_tables())
    renamed = RENAMES in tables
    deleted = deleted_markers(db, tables)
    keep_thread = shared_columns(backup, db, "threads")
    keep_message = shared_columns(backup, db, "thread_messages")
    found = []
    for row in rows(backup, f"SELECT {', '.join(q(c) for c in keep_thread)} FROM threads ORDER BY id"):
        new_id = target_id(row["id"], renamed)
        if not restorable(db, row, new_id):
            continue
        messages = backup_messages(backup, keep_message, row["id"])
        marker = migration_marker(messages)
        if marker is not None and marker["id"] in deleted:
            continue  # deleted through sessionorm: not a loss
        found.append(Lost(new_id, row, missing_messages(db, messages), marker))
    return found


def deleted_markers(db: peewee.Database, tables: set[str]) -> set[str]:
    """The marker ids of threads deleted through sessionorm, from the record (none without one)."""
    if RECORD not in tables:
        return set()
    return {r[0] for r in db.execute_sql(f'SELECT "markerId" FROM {RECORD} WHERE "deletedAt" IS NOT NULL')}


def migration_marker(messages: list[dict]) -> dict | None:
    """A thread's migration marker: its first message, a system one with the marker prefix."""
    return next(
        (
            m
            for m in messages
            if m["idx"] == 0 and m["role"] == "system" and m["content"].startswith(MESSAGE_PREFIX)
        ),
        None,
    )


def shared_columns(backup: peewee.Database, db: peewee.Database, table: str) -> list[str]:
    """The columns of the backup's `table` that `db`'s has too, in the backup's order."""
    have = set(column_names(db, table))
    return [c for c in column_names(backup, table) if c in have]


def restorable(db: peewee.Database, thread: dict, new_id: str) -> bool:
    """Whether `db` lacks the thread (by its old or new id) and has its session."""
    mark = backend_of(db).sql
    present = db.execute_sql(
        mark("SELECT 1 FROM threads WHERE id IN ({p}, {p})"), (thread["id"], new_id)
    ).fetchone()
    session = db.execute_sql(mark("SELECT 1 FROM sessions WHERE id = {p}"), (thread["sessionId"],)).fetchone()
    return not present and bool(session)


def backup_messages(backup: peewee.Database, columns: list[str], thread_id: str) -> list[dict]:
    """The backup's messages of one thread, in order, with `columns`."""
    return rows(
        backup,
        backend_of(backup).sql(
            f"SELECT {', '.join(q(c) for c in columns)} FROM thread_messages"
            ' WHERE "threadId" = {p} ORDER BY idx'
        ),
        (thread_id,),
    )


def missing_messages(db: peewee.Database, messages: list[dict]) -> list[dict]:
    """Those of `messages` that `db` does not hold (by id)."""
    sql = backend_of(db).sql("SELECT 1 FROM thread_messages WHERE id = {p}")
    return [m for m in messages if not db.execute_sql(sql, (m["id"],)).fetchone()]


def insert(db: peewee.Database, table: str, row: dict) -> int:
    mark = backend_of(db).param
    return db.execute_sql(
        f"INSERT INTO {q(table)} ({', '.join(q(c) for c in row)}) VALUES ({', '.join([mark] * len(row))})",
        tuple(row.values()),
    ).rowcount


def put_back(db: peewee.Database, lost: Lost) -> int:
    """Insert one lost thread and the messages `db` lacks; mend the record; return messages."""
    mark = backend_of(db).sql
    tables = set(db.get_tables())
    insert(db, "threads", {**lost.row, "id": lost.new_id})
    if lost.new_id != lost.row["id"] and RENAMES in tables:
        db.execute_sql(
            mark(f'DELETE FROM {RENAMES} WHERE "oldId" = {{p}} OR "newId" = {{p}}'),
            (lost.row["id"], lost.new_id),
        )
        insert(db, RENAMES, {"newId": lost.new_id, "oldId": lost.row["id"], "renamedAt": now_timestamp()})
    copied = sum(
        insert(db, "thread_messages", {**message, "threadId": lost.new_id}) for message in lost.messages
    )
    if lost.marker is not None and RECORD in tables:
        legacy = lost.marker["content"][len(MESSAGE_PREFIX) :]
        if (
            db.execute_sql(
                mark(f'UPDATE {RECORD} SET "threadId" = {{p}} WHERE "markerId" = {{p}}'),
                (lost.new_id, lost.marker["id"]),
            ).rowcount
            == 0
        ):
            insert(
                db,
                RECORD,
                {
                    "markerId": lost.marker["id"],
                    "threadId": lost.new_id,
                    "sessionId": lost.row["sessionId"],
                    "legacyThreadId": legacy,
                    "recordedAt": now_timestamp(),
                    "deletedAt": None,
                },
            )
        if UNMATCHED in tables:
            db.execute_sql(
                mark(f'DELETE FROM {UNMATCHED} WHERE "sessionId" = {{p}}'), (lost.row["sessionId"],)
            )
    return copied


def restore_threads(backup: peewee.Database, db: peewee.Database, report: RestoreReport) -> None:
    """Fill `report` with the lost threads; unless it is a dry run, copy them back in one
    write transaction (the write lock first, then the decision)."""
    if report.dry_run:
        lost = find_lost(backup, db)
        report.threads = [t.new_id for t in lost]
        report.messages = sum(len(t.messages) for t in lost)
        return
    with backend_of(db).write():
        for thread in find_lost(backup, db):
            report.messages += put_back(db, thread)
            report.threads.append(thread.new_id)
