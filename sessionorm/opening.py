"""Opening a `Target` for the length of a block: the one way commands, the copy and the
backups open one."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import peewee

from .database import (
    check_sqlite_file,
    check_writable,
    open_sqlite,
    open_url,
    sqlite_pragmas,
    translate_errors,
)
from .dialect import Dialect
from .target import Target


@contextlib.contextmanager
def opened(target: Target, *, readonly: bool = False, create: bool = False,
           keep_journal_mode: bool = False) -> Iterator[peewee.Database]:
    """The database for the length of a block, driver errors translated, closed after.

    A read-only block runs in one read-only transaction (`Dialect.snapshot`): everything it
    reads comes from the same committed state of a database that others may be writing.
    `keep_journal_mode`: a read-write SQLite connection that leaves the file's journal mode
    as it is (`verify --exercise`; the usual open switches it to WAL, rewriting the header).
    """
    if target.is_server:
        database = open_url(target.server_url, target.busy_timeout, create=create)
    elif keep_journal_mode:
        database = open_keeping_journal_mode(target.real_path, target.busy_timeout)
    else:
        database = open_sqlite(target.real_path, target.busy_timeout, create=create, readonly=readonly)
    try:
        with translate_errors(str(target)):
            if readonly:
                with Dialect.of(database).snapshot(target.busy_timeout):
                    yield database
            else:
                yield database
    finally:
        database.close()


def open_keeping_journal_mode(path: Path, busy_timeout: float) -> peewee.SqliteDatabase:
    """A read-write connection with the contract's pragmas except journal_mode."""
    check_sqlite_file(path, must_exist=True)
    check_writable(path)
    pragmas = [p for p in sqlite_pragmas(busy_timeout) if p[0] != "journal_mode"]
    db = peewee.SqliteDatabase(str(path), pragmas=pragmas, timeout=busy_timeout)
    with translate_errors(path):
        db.connect()
    return db
