"""Schema migrators that close the gaps of peewee's own (see docs/architecture.md, Safety rules)."""
from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator

from .errors import MigrationError
from .models import OWN_TABLES
from .sql_log import log_statement

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


def checks_before_commit(db, written: set[str] | None = None) -> None:
    """Raise `MigrationError` unless foreign keys and page structure are intact.

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
    for sql in fk_checks:
        bad = db.execute_sql(sql).fetchmany(5)
        if bad:
            rows = "; ".join(f"{t} rowid {r} -> {p}" for t, r, p, _ in bad)
            raise MigrationError(f"foreign key check failed, rolled back: {rows}")
    for sql in page_checks:
        result = [r[0] for r in db.execute_sql(sql).fetchmany(5)]
        if result != ["ok"]:
            raise MigrationError(f"integrity check failed, rolled back: {'; '.join(result)}")


@contextlib.contextmanager
def immediate_transaction(db) -> Iterator[None]:
    """`db.atomic("IMMEDIATE")`, letting the real error through when SQLite already rolled back.

    On SQLITE_FULL (disk full) or SQLITE_IOERR SQLite ends the transaction itself; peewee's
    unconditional ROLLBACK then fails with "no transaction is active" and hides the cause.
    """
    try:
        log_statement("BEGIN IMMEDIATE")  # peewee begins and commits unlogged; --verbose shows both
        with db.atomic("IMMEDIATE"):
            yield
            log_statement("COMMIT")
    except peewee.OperationalError as exc:
        cause: BaseException | None = exc
        while cause is not None and "no transaction is active" in str(cause):
            cause = cause.__context__  # peewee's wrapper, then sqlite3's, then the real one
        if cause is None or cause is exc:
            raise
        raise cause from None


class SafeSqliteMigrator(SqliteMigrator):
    """`SqliteMigrator` that cannot cascade-delete rows or lose triggers and views."""

    force = False  # rollback(force=True) sets it: destroy threads the migration did not create
    rebuilt = False  # set by a table rebuild inside the current migration

    @contextlib.contextmanager
    def migration_context(self, atomic: bool = True) -> Iterator[None]:
        # peewee's version sets foreign_keys=0 even inside a transaction, where SQLite ignores it.
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
                    stack.enter_context(immediate_transaction(db))
                with recording_writes(db, written):
                    yield
                checks_before_commit(db, None if self.rebuilt else written)
        finally:
            if fk_on:
                db.execute_sql("PRAGMA foreign_keys = 1")

    def _update_column(self, table, column_to_update, fn):
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


class SafePostgresqlMigrator(PostgresqlMigrator):
    """PostgreSQL has transactional DDL and no rebuilds: one transaction per migration, taken
    with the migration lock, ending with ANALYZE of what it wrote."""

    force = False
    # A dry run sets `rehearsal`: it holds `lock_database`'s lock in its own transaction,
    # and every migration then runs in a savepoint of it.
    rehearsal = False

    @contextlib.contextmanager
    def migration_context(self, atomic: bool = True) -> Iterator[None]:
        if self.database.in_transaction() and not self.rehearsal:
            raise MigrationError("refusing to migrate inside an open transaction")
        with self.database.atomic():
            if not self.rehearsal:
                lock_database(self.database)
            yield
            analyze_written(self.database)


def make_migrator(db) -> SchemaMigrator:
    """The safe migrator for `db`'s dialect."""
    migrator = SchemaMigrator.from_database(db)
    if isinstance(migrator, SqliteMigrator):
        return SafeSqliteMigrator(db)
    if isinstance(migrator, PostgresqlMigrator):
        return SafePostgresqlMigrator(db)
    raise MigrationError(f"unsupported database {type(db).__name__}")
