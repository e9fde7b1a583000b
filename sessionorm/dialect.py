"""SQLite and PostgreSQL as the store and the migrator use them: one object per open database.

A `Dialect` is chosen once, when the store or a command opens its database. It owns what
differs between the two: the parameter style, the read-only snapshot, the write transaction
(the one helper for the store and the migrator), how appenders are serialised, `executemany`,
and which values text columns can carry.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import peewee

from .database import read_transaction


class Dialect:
    """What the store and the migrator need of a database, whichever it is."""

    name = "database"
    nul_in_text = True  # whether text columns can hold "\x00"
    cli_option = "--db-url"  # how the CLI names a database of this kind

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.param: str = db.param

    @staticmethod
    def of(db: peewee.Database) -> Dialect:
        """The dialect of an open peewee database (SQLite or PostgreSQL)."""
        if isinstance(db, peewee.SqliteDatabase):
            return SqliteDialect(db)
        if isinstance(db, peewee.PostgresqlDatabase):
            return PostgresDialect(db)
        raise TypeError(f"sessionorm supports SQLite and PostgreSQL, not {type(db).__name__}")

    def sql(self, template: str) -> str:
        """`template` with each `{p}` made this database's parameter marker."""
        return template.format(p=self.param)

    def snapshot(self, busy_timeout: float) -> contextlib.AbstractContextManager:
        """One read-only transaction: every read in the block sees the same committed state."""
        raise NotImplementedError

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement; return its cursor."""
        return self.db.execute_sql(sql, tuple(params))

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        self.db.cursor().executemany(sql, rows)

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction (a savepoint inside one the caller holds): all or nothing."""
        with self.db.atomic():
            yield

    def lock_thread(self, thread_id: str) -> bool:
        """Serialise appenders of one thread until the transaction ends; False: no such thread.

        Inside `write()` SQLite already holds the database's write lock: nothing more to do.
        """
        return True

    def session_value(self, data_type: str, value: Any) -> Any:
        """`value` as a column of `data_type` takes it (SQLite's affinity takes anything)."""
        return value


class SqliteDialect(Dialect):
    name = "SQLite"
    cli_option = "--db-path"
    db: peewee.SqliteDatabase

    def snapshot(self, busy_timeout: float) -> contextlib.AbstractContextManager:
        # a read transaction that sees other processes' WAL and waits out their locks
        return read_transaction(self.db, busy_timeout)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        # sqlite3 directly, not through peewee's cursor wrapper: the store's hot paths
        return self.db.connection().execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        self.db.connection().executemany(sql, rows)

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE` (the write lock from the first statement), or a savepoint when nested.

        On SQLITE_FULL or SQLITE_IOERR SQLite ends the transaction itself; a ROLLBACK then
        fails ("no transaction is active") and would hide the real error, so none is sent
        when the connection is no longer in a transaction.
        """
        db = self.db
        conn = db.connection()
        top = db.transaction_depth() == 0 and not conn.in_transaction
        step = db.transaction("IMMEDIATE") if top else db.savepoint()
        step.__enter__()  # on peewee's stack while it runs: atomic() inside makes savepoints
        try:
            yield
            if top:
                db.pop_transaction()
            step.commit(False)
        except BaseException:
            if top and db.transaction_depth() and db.top_transaction() is step:
                db.pop_transaction()
            if conn.in_transaction:
                step.rollback(False)
            raise


class PostgresDialect(Dialect):
    name = "PostgreSQL"
    nul_in_text = False  # text cannot hold "\x00": refused before any SQL

    def snapshot(self, busy_timeout: float) -> contextlib.AbstractContextManager:
        return self.db.atomic("REPEATABLE READ, READ ONLY")

    def lock_thread(self, thread_id: str) -> bool:
        # READ COMMITTED: appenders of one thread queue on its row, so `max(idx) + 1` is theirs
        sql = f"SELECT id FROM threads WHERE id = {self.param} FOR UPDATE"
        return self.execute(sql, (thread_id,)).fetchone() is not None

    def session_value(self, data_type: str, value: Any) -> Any:
        """Coerce as SQLite's column affinity would: PostgreSQL refuses 1 for a boolean, 2 for text."""
        kind = data_type.lower()
        if kind == "boolean" and isinstance(value, int):
            return bool(value)
        if kind in ("text", "character varying") and isinstance(value, (int, float)):
            return str(int(value) if isinstance(value, bool) else value)
        if kind in ("integer", "bigint", "smallint") and isinstance(value, bool):
            return int(value)
        return value


