"""Opening a `Target` for the length of a block: the one way commands, the copy and the
backups open one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import peewee

from ..database import translate_errors
from .choice import backend_for

if TYPE_CHECKING:
    from ..target import Target


@contextlib.contextmanager
def opened(
    target: Target, *, readonly: bool = False, create: bool = False, keep_journal_mode: bool = False
) -> Iterator[peewee.Database]:
    """The database for the length of a block, driver errors translated, closed after.

    A read-only block runs in one read-only transaction (`Backend.snapshot`): everything it
    reads comes from the same committed state of a database that others may be writing.
    `keep_journal_mode`: a read-write SQLite connection that leaves the file's journal mode
    as it is (`verify --exercise`; the usual open switches it to WAL, rewriting the header).
    """
    backend = backend_for(target)
    database = backend.open(target, readonly=readonly, create=create, keep_journal_mode=keep_journal_mode)
    failed = True
    try:
        with translate_errors(str(target)):
            if readonly:
                with backend(database).snapshot(target.busy_timeout):
                    yield database
            else:
                yield database
        failed = False
    finally:
        database.close()
        if failed:  # once closed: what the failed command made and could not use
            backend(database).after_failure()
