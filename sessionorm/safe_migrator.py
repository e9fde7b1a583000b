"""Schema migrators that close the gaps of peewee's own (see docs/architecture.md, Safety rules)."""
from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator

from .dialect import Dialect
from .errors import MigrationError
from .migration_options import MigrationOptions
from .models import OWN_TABLES
from .postgres import TransactionTimeouts
from .sql_log import log_statement

if TYPE_CHECKING:
    class MixinBase(SchemaMigrator):  # the mixins' methods call the migrator class's own
        pass
else:
    MixinBase = object

WRITES = {sqlite3.SQLITE_INSERT: 0, sqlite3.SQLITE_UPDATE: 0, sqlite3.SQLITE_DELETE: 0,
          sqlite3.SQLITE_CREATE_INDEX: 1, sqlite3.SQLITE_ALTER_TABLE: 1}  # which arg names the table


@contextlib.contextmanager
def recording_writes(db, written: set[str]) -> Iterator[None]:
    """Collect the tables that statements write to (SQLite's authorizer runs once per prepare)."""

    def authorize(action, arg1, arg2, _db_name, _trigger):
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


def checks_before_commit(db, written: set[str] | None = None, atomic: bool = True) -> None:
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
        fk_checks = [f'PRAGMA foreign_key_check("{t}")' for t in sorted(written | children)]
        page_checks = [f'PRAGMA quick_check("{t}")' for t in sorted(written)]
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

    def __init__(self, database: peewee.Database, options: MigrationOptions | None = None,
                 **kwargs: Any) -> None:
        super().__init__(database, **kwargs)
        self.options = options or MigrationOptions()
        self.rebuilt = False  # set by a table rebuild inside the current migration

    @contextlib.contextmanager
    def migration_context(self, atomic: bool = True) -> Iterator[None]:
        db = self.database
        if db.in_transaction() or db.connection().in_transaction:
            raise MigrationError("refusing to migrate inside an open transaction; "
                                 "commit or roll it back first")
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
                    stack.enter_context(Dialect.of(db).write())
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


def refuse_unsafe_rebuild(db, table: str) -> None:
    """Raise `MigrationError` naming whatever a regex table rebuild of `table` would lose."""
    rows = db.execute_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    problems = []
    for kind, name, tbl_name, sql in rows:
        if kind == "trigger" and tbl_name.lower() == table.lower():
            problems.append(f"trigger {name}")
        elif kind == "view" and re.search(rf'\b{re.escape(table)}\b', sql, re.I):
            problems.append(f"view {name}")
        elif kind == "table" and name.lower() == table.lower():
            if re.search(r"\)\s*STRICT\b|\bWITHOUT\s+ROWID\b", sql, re.I):
                problems.append(f"table {name} is STRICT or WITHOUT ROWID")
            if re.search(r"\bGENERATED\s+ALWAYS\b|\bAS\s*\(", sql, re.I):
                problems.append(f"table {name} has generated columns")
            if "--" in sql or "/*" in sql:
                problems.append(f"table {name} has comments in its DDL")
    if problems:
        raise MigrationError(f"refusing to rebuild table {table}: it would lose or break "
                             + ", ".join(problems) + "; change them by hand first")


# pg_advisory_xact_lock's key for sessionorm's migrations (any constant: one per database).
MIGRATION_LOCK = 0x5E55_1011


def lock_database(db) -> None:
    """PostgreSQL: the migration lock, inside the caller's transaction, until it ends.

    An advisory lock serialises migrators (even on a database without tables yet), and
    SHARE ROW EXCLUSIVE on sessionorm's tables stops their writers while still letting
    readers, pg_dump among them, in. Other programs' tables in the same database are left
    alone (locking them could need privileges sessionorm lacks). Waiting is bounded by the
    transaction's lock_timeout.
    """
    db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    tables = [f'"{t}"' for t in db.get_tables() if t in OWN_TABLES]
    if tables:
        db.execute_sql(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")


def analyze_written(db) -> list[str]:
    """PostgreSQL: ANALYZE the tables this transaction wrote to; return them.

    Fresh tables have no statistics until autovacuum gets round to them, and until then the
    planner guesses; a guess made a query on 1,000,000 migrated sessions quadratic.
    """
    tables = [r[0] for r in db.execute_sql(
        "SELECT quote_ident(relname) FROM pg_catalog.pg_stat_xact_user_tables"
        " WHERE schemaname = current_schema() AND n_tup_ins + n_tup_upd + n_tup_del > 0"
        " ORDER BY relname")]
    if tables:
        db.execute_sql(f"ANALYZE {', '.join(tables)}")
    return tables


class PostgresSafety(MixinBase):
    """Mixin for peewee's `PostgresqlMigrator` (or a subclass, e.g. CockroachDB's): one
    transaction per migration, taken with the migration lock, ending with ANALYZE of what it
    wrote. Without transactional DDL (CockroachDB) or with `atomic=False`, peewee's own
    behaviour: no transaction, so no lock either."""

    def __init__(self, database: peewee.Database, options: MigrationOptions | None = None,
                 **kwargs: Any) -> None:
        super().__init__(database, **kwargs)
        self.options = options or MigrationOptions()

    @contextlib.contextmanager
    def migration_context(self, atomic: bool = True) -> Iterator[None]:
        db = self.database
        rehearsal = self.options.rehearsal  # the dry run holds the transaction and the lock
        if db.in_transaction() and not rehearsal:
            raise MigrationError("refusing to migrate inside an open transaction")
        if not (atomic and self.transactional_ddl):
            as_written = isinstance(db, TransactionTimeouts) and not db.in_transaction()
            with db.statements_as_written() if as_written else contextlib.nullcontext():
                yield
            return
        with Dialect.of(db).write():
            if not rehearsal:
                lock_database(db)
            yield
            analyze_written(db)


def make_migrator(db: peewee.Database, options: MigrationOptions | None = None) -> SchemaMigrator:
    """The migrator peewee picks for `db` (`SchemaMigrator.from_database`), made safe.

    The safety is mixed in front of peewee's own class, so a subclass keeps its settings
    (CockroachDB: no transactional DDL, explicit foreign keys, `DROP INDEX … CASCADE`).
    """
    base = type(SchemaMigrator.from_database(db))
    if issubclass(base, SqliteMigrator):
        safety: type = SqliteSafety
    elif issubclass(base, PostgresqlMigrator):
        safety = PostgresSafety
    else:
        raise MigrationError(f"unsupported database {type(db).__name__}")
    if (safety, base) not in SAFE_CLASSES:  # one class per pair: e.g. SafeCockroachDBMigrator
        SAFE_CLASSES[safety, base] = type(f"Safe{base.__name__}", (safety, base), {})
    return SAFE_CLASSES[safety, base](db, options)


SAFE_CLASSES: dict[tuple[type, type], type] = {}
