"""SQLite's safety for peewee's `SqliteMigrator`: no rebuild cascades, loses triggers and views,
or commits unchecked (see docs/architecture.md, Safety rules)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import peewee
from playhouse.migrate import SchemaMigrator

from ..errors import MigrationError
from ..identifiers import q
from ..migration_options import MigrationOptions
from ..sql_log import log_statement
from .sqlite_files import write_transaction

if TYPE_CHECKING:

    class MixinBase(SchemaMigrator):  # the mixins' methods call the migrator class's own
        pass
else:
    MixinBase = object

WRITES = {
    sqlite3.SQLITE_INSERT: 0,
    sqlite3.SQLITE_UPDATE: 0,
    sqlite3.SQLITE_DELETE: 0,
    sqlite3.SQLITE_CREATE_INDEX: 1,
    sqlite3.SQLITE_ALTER_TABLE: 1,
}  # which arg names the table


@contextlib.contextmanager
def recording_writes(db: peewee.Database, written: set[str]) -> Iterator[None]:
    """Collect the tables that statements write to (SQLite's authorizer runs once per prepare)."""

    def authorize(
        action: int, arg1: str | None, arg2: str | None, _db_name: str | None, _trigger: str | None
    ) -> int:
        if action in WRITES:
            table = (arg1, arg2)[WRITES[action]]
            if table and not table.startswith("sqlite_"):
                written.add(table)
        return sqlite3.SQLITE_OK

    conn = db.connection()
    conn.set_authorizer(authorize)
    try:
        yield
    finally:
        conn.set_authorizer(None)


def checks_before_commit(db: peewee.Database, written: set[str] | None = None, atomic: bool = True) -> None:
    """Raise `MigrationError` unless foreign keys and page structure are intact.

    `atomic=False`: the migration ran outside a transaction, so the error says that its
    changes stay (there is nothing to roll back).

    `written=None` (after a table rebuild) runs the full foreign_key_check and
    integrity_check. Otherwise only the written tables are checked, with quick_check and
    foreign_key_check on them and on the tables referencing them: a full integrity_check
    took 47% of a 1,000,000-session migration; `verify` runs it whole.
    """
    if written is None:
        fk_checks, page_checks = ["PRAGMA foreign_key_check"], ["PRAGMA integrity_check"]
    else:
        tables = set(db.get_tables())
        written = written & tables
        children = {t for t in tables for fk in db.get_foreign_keys(t) if fk.dest_table in written}
        fk_checks = [f"PRAGMA foreign_key_check({q(t)})" for t in sorted(written | children)]
        page_checks = [f"PRAGMA quick_check({q(t)})" for t in sorted(written)]
    outcome = "rolled back" if atomic else "ran outside a transaction, its changes stay"
    for sql in fk_checks:
        bad = db.execute_sql(sql).fetchmany(5)
        if bad:
            rows = "; ".join(f"{t} rowid {r} -> {p}" for t, r, p, _ in bad)
            raise MigrationError(f"foreign key check failed, {outcome}: {rows}")
    for sql in page_checks:
        result = [r[0] for r in db.execute_sql(sql).fetchmany(5)]
        if result != ["ok"]:
            raise MigrationError(f"integrity check failed, {outcome}: {'; '.join(result)}")


class SqliteSafety(MixinBase):
    """Mixin for peewee's `SqliteMigrator`: it cannot cascade-delete rows or lose triggers and views.

    Foreign keys go off before the transaction (inside one SQLite ignores the pragma) and
    are checked, with the pages written, before COMMIT.
    """

    def __init__(
        self, database: peewee.Database, options: MigrationOptions | None = None, **kwargs: Any
    ) -> None:
        super().__init__(database, **kwargs)
        self.options = options or MigrationOptions()
        self.rebuilt = False  # set by a table rebuild inside the current migration

    @contextlib.contextmanager
    def migration_context(self, atomic: bool = True) -> Iterator[None]:
        db = self.database
        if db.in_transaction() or db.connection().in_transaction:
            raise MigrationError(
                "refusing to migrate inside an open transaction; commit or roll it back first"
            )
        fk_on = db.execute_sql("PRAGMA foreign_keys").fetchone()[0]
        db.execute_sql("PRAGMA foreign_keys = 0")
        if db.execute_sql("PRAGMA foreign_keys").fetchone()[0] != 0:
            raise MigrationError("could not turn foreign keys off; refusing to rebuild tables")
        written: set[str] = set()
        self.rebuilt = False
        try:
            with contextlib.ExitStack() as stack:
                if atomic:
                    log_statement("BEGIN IMMEDIATE")  # peewee begins and commits unlogged
                    stack.enter_context(write_transaction(db))
                with recording_writes(db, written):
                    yield
                checks_before_commit(db, None if self.rebuilt else written, atomic)
                if atomic:
                    log_statement("COMMIT")
        finally:
            if fk_on:
                db.execute_sql("PRAGMA foreign_keys = 1")

    def _update_column(self, table: str, column_to_update: str, fn: Any) -> Any:
        # peewee rebuilds the table from its stored DDL with a regex: refuse what it would lose.
        refuse_unsafe_rebuild(self.database, table)
        self.rebuilt = True  # check the whole file before COMMIT
        return super()._update_column(table, column_to_update, fn)


def refuse_unsafe_rebuild(db: peewee.Database, table: str) -> None:
    """Raise `MigrationError` naming whatever a regex table rebuild of `table` would lose."""
    rows = db.execute_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
    ).fetchall()
    problems = []
    for kind, name, tbl_name, sql in rows:
        if kind == "trigger" and tbl_name.lower() == table.lower():
            problems.append(f"trigger {name}")
        elif kind == "view" and re.search(rf"\b{re.escape(table)}\b", sql, re.I):
            problems.append(f"view {name}")
        elif kind == "table" and name.lower() == table.lower():
            if re.search(r"\)\s*STRICT\b|\bWITHOUT\s+ROWID\b", sql, re.I):
                problems.append(f"table {name} is STRICT or WITHOUT ROWID")
            if re.search(r"\bGENERATED\s+ALWAYS\b|\bAS\s*\(", sql, re.I):
                problems.append(f"table {name} has generated columns")
            if "--" in sql or "/*" in sql:
                problems.append(f"table {name} has comments in its DDL")
    if problems:
        raise MigrationError(
            f"refusing to rebuild table {table}: it would lose or break "
            + ", ".join(problems)
            + "; change them by hand first"
        )
