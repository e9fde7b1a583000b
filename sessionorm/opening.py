"""Opening a `Target` for the length of a block: the one way commands and the copy open one."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import peewee

from .database import open_sqlite, open_url, translate_errors
from .dialect import Dialect
from .target import Target


@contextlib.contextmanager
def opened(target: Target, *, readonly: bool = False, create: bool = False
           ) -> Iterator[peewee.Database]:
    """The database for the length of a block, driver errors translated, closed after.

    A read-only block runs in one read-only transaction (`Dialect.snapshot`): everything it
    reads comes from the same committed state of a database that others may be writing.
    """
    if target.is_server:
        database = open_url(target.server_url, target.busy_timeout, create=create)
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
