"""PostgreSQL: connections safe behind pgbouncer (`pg_connections`), row locks for appenders,
the migration lock, `pg_dump` backups and rehearsals in a transaction rolled back."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee
from playhouse.migrate import SchemaMigrator

from ..database import translate_errors
from ..errors import MigrationError
from ..identifiers import q
from ..sql_log import log_statement
from .base import Backend, Progress, Restored
from .catalog import BATCH, Table
from .pg_backup import backup_postgres
from .pg_bulk import canon_sql, copy_out, pg_hash_sql
from .pg_catalog import PostgresCatalog
from .pg_connections import linear_plans, open_url, statements_alone
from .pg_migrator import PostgresSafety, lock_database
from .pg_restore import restore_postgres
from .pg_search import PostgresSearch

if TYPE_CHECKING:
    from ..target import Target


class PostgresBackend(Backend):
    @property
    def search(self) -> PostgresSearch:
        return PostgresSearch(self)

    nul_in_text = False  # text cannot hold "\x00": refused before any SQL
    hash_anti_joins = True
    copy_digests = True
    byte_order = ' COLLATE "C"'  # the database's collation may sort by language
    backup_checked = "pg_restore --list reads it, every table's data is in it"
    catalog_class = PostgresCatalog
    safety_mixin = PostgresSafety
    # Across engines; INTEGER becomes bigint: SQLite integers are 64-bit.
    copy_types = {
        "text": "TEXT",
        "integer": "BIGINT",
        "boolean": "BOOLEAN",
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
    }
    copy_booleans = {False: "FALSE", True: "TRUE"}
    db: peewee.PostgresqlDatabase

    # -- a database not yet open -----------------------------------------------------------

    @classmethod
    def open(
        cls, target: Target, *, readonly: bool = False, create: bool = False, keep_journal_mode: bool = False
    ) -> peewee.Database:
        return open_url(target.server_url, target.busy_timeout, create=create)

    @classmethod
    def backup(
        cls,
        target: Target,
        dest: str | os.PathLike | None = None,
        progress: Progress = None,
        locked: peewee.Database | None = None,
    ) -> Path:
        # pg_dump's ACCESS SHARE locks are compatible with the migration lock
        return backup_postgres(target, dest, locked)

    @classmethod
    def restore(cls, target: Target, backup: Path, progress: Progress = None) -> Restored:
        """`pg_restore` into a new database, then renames (see `pg_restore`)."""
        return restore_postgres(target, backup, progress)

    @classmethod
    @contextlib.contextmanager
    def rehearsal(cls, target: Target, created: bool) -> Iterator[peewee.Database]:
        """One transaction, holding the migration lock as the real run would, rolled back.

        Its DDL is transactional, so the database is left exactly as it was; the rehearsal
        takes the same locks as the real run, for as long as it lasts.
        """
        database = cls.open(target)
        try:
            if not SchemaMigrator.from_database(database).transactional_ddl:  # e.g. CockroachDB
                raise MigrationError(
                    f"--dry-run needs transactional DDL, which {type(database).__name__} "
                    "lacks: its rolled-back rehearsal could leave schema changes behind"
                )
            with translate_errors(str(target)), database.atomic() as transaction:
                lock_database(database)  # as the real run does: a busy database fails here
                yield database
                transaction.rollback()  # peewee then commits the empty transaction it begins
        finally:
            database.close()

    @classmethod
    def copy_into(
        cls, src: Any, target: Target, tables: dict[str, Any], report: Any, progress: Progress
    ) -> None:
        from .pg_copy import copy_to_postgres  # the copy stands above the backends

        copy_to_postgres(src, target, tables, report, progress)

    def row_hash_sql(self, table: Table) -> str | None:
        canon = canon_sql(table)
        return None if canon is None else pg_hash_sql(canon)

    def unfit_value_tests(self, table: Table, target_types: dict[str, str]) -> list[tuple[str, str]]:
        """Into SQLite: a NaN (SQLite stores NULL)."""
        if target_types:
            return []
        return [(c.name, f"{q(c.name)} = 'NaN'::float8") for c in table.columns if c.kind == "real"]

    def copy_out(
        self, select: str, table: Table, extra_types: list[str], digest: Any = None
    ) -> Iterator[list[tuple]]:
        types = [*self.catalog.column_types(table.name).values(), *extra_types]
        return copy_out(self.db, select, types, digest)

    @contextlib.contextmanager
    def streaming(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Any]:
        # a server-side cursor (DECLARE … FETCH): psycopg's plain cursor would hold every row;
        # it lives in the caller's transaction, so pgbouncer's transaction pooling keeps it
        params = tuple(params)
        log_statement(sql)
        cursor = self.db.connection().cursor(name=f"sessionorm_stream_{next(CURSOR_NUMBERS)}")
        cursor.itersize = BATCH
        try:
            cursor.execute(sql, params)
            yield cursor
        finally:
            cursor.close()

    # -- transactions and locks ------------------------------------------------------------

    def snapshot(self, busy_timeout: float) -> contextlib.AbstractContextManager:
        return self.db.atomic("REPEATABLE READ, READ ONLY")

    def stable_write(self) -> contextlib.AbstractContextManager:
        # one snapshot for every read; the writes are the transaction's own rows
        return self.db.atomic("REPEATABLE READ")

    def lock_thread(self, thread_id: str) -> bool:
        # READ COMMITTED: appenders of one thread queue on its row, so `max(idx) + 1` is theirs
        sql = f"SELECT id FROM threads WHERE id = {self.param} FOR UPDATE"
        return self.execute(sql, (thread_id,)).fetchone() is not None

    def lock_key(self, key: str) -> None:
        # transaction-scoped: released at COMMIT, so it holds behind pgbouncer's transaction pooling
        self.execute(f"SELECT pg_advisory_xact_lock(hashtextextended({self.param}, 0))", (key,))

    def lock_writers(self) -> None:
        lock_database(self.db)  # the migration lock: SHARE ROW EXCLUSIVE on sessionorm's tables

    # -- work on the whole database --------------------------------------------------------

    def storage_bytes(self) -> int:
        return self.db.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]

    def reclaim_space(self, tables: list[str]) -> None:
        """Plain `VACUUM (ANALYZE)` of `tables`: the room becomes reusable inside their files
        (which PostgreSQL seldom gives back to the system); `VACUUM FULL` would lock the app
        out while it rewrites them."""
        present = [q(t) for t in tables if t in set(self.db.get_tables())]
        if present:
            with statements_alone(self.db):  # VACUUM refuses a transaction block
                self.db.execute_sql(f"VACUUM (ANALYZE) {', '.join(present)}")

    def integrity_problems(self) -> list[str]:
        """PostgreSQL's twin of foreign_key_check: unvalidated constraints and orphan rows.

        Enforced constraints make orphans impossible; they appear only where a constraint was
        added NOT VALID, or triggers were disabled during a bulk load.
        """
        db = self.db
        problems = [
            f"constraint {name} on {table} is NOT VALID (never checked against old rows)"
            for table, name in db.execute_sql(
                "SELECT conrelid::regclass::text, conname FROM pg_catalog.pg_constraint"
                " WHERE NOT convalidated AND connamespace = current_schema()::regnamespace"
                " ORDER BY 1, 2"
            )
        ]
        foreign_keys = [(table, fk) for table in db.get_tables() for fk in db.get_foreign_keys(table)]
        with self.linear_plans():  # one hash anti-join per foreign key, statistics or not
            for table, fk in foreign_keys:
                orphans = db.execute_sql(orphans_sql(table, fk)).fetchone()[0]
                if orphans:
                    problems.append(
                        f"foreign key check: {orphans} rows of {table} reference missing "
                        f"{fk.dest_table} ({fk.column} -> {fk.dest_column})"
                    )
        return problems

    def linear_plans(self) -> contextlib.AbstractContextManager:
        return linear_plans(self.db)

    # -- values ----------------------------------------------------------------------------

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


CURSOR_NUMBERS = itertools.count()  # server-side cursors need names unique in their session


def orphans_sql(table: str, fk: peewee.ForeignKeyMetadata) -> str:
    """Rows of `table` whose foreign key `fk` finds no parent row (an anti-join)."""
    return (
        f"SELECT count(*) FROM {q(table)} c WHERE c.{q(fk.column)} IS NOT NULL AND NOT EXISTS"
        f" (SELECT 1 FROM {q(fk.dest_table)} p WHERE p.{q(fk.dest_column)} = c.{q(fk.column)})"
    )
