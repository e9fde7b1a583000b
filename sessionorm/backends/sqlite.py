"""SQLite: a file opened through `sqlite_files`, its own write lock, pragmas for checks."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee

from ..database import first_line, is_corrupt, translate_errors
from ..errors import MigrationError
from ..identifiers import q
from ..sql_log import LOGGER
from .base import Backend, Progress, Restored
from .catalog import BATCH, INT_RANGES, Table
from .sqlite_backup import backup_sqlite, process_alive
from .sqlite_catalog import SqliteCatalog
from .sqlite_files import (
    check_sqlite_file,
    check_writable,
    open_keeping_journal_mode,
    open_sqlite,
    polling_busy,
    read_snapshot,
    read_transaction,
    reader,
    remove_unused_sidecars,
    write_transaction,
)
from .sqlite_migrator import SqliteSafety
from .sqlite_restore import restore_sqlite
from .sqlite_search import SqliteSearch

if TYPE_CHECKING:
    from ..target import Target

# A 16 MiB page cache for a bulk step: faster than the default 2 MiB, while peak memory stays
# flat (a larger cache, or temp_store=MEMORY, grows the index sorts past 150 MB at 1M sessions).
BULK_PRAGMAS = (("cache_size", -16384), ("temp_store", 0))
STORAGE = {"integer": "integer", "boolean": "integer", "real": "real", "blob": "blob"}  # typeof()
INSTRUCTIONS = 1_000_000  # between checks of the clock in `reporting`: negligible next to the work


class SqliteBackend(Backend):
    @property
    def search(self) -> SqliteSearch:
        return SqliteSearch(self)

    cli_option = "--db-path"
    backup_checked = "integrity ok, row counts match"
    catalog_class = SqliteCatalog
    safety_mixin = SqliteSafety
    copy_types = {"text": "TEXT", "integer": "INTEGER", "boolean": "BOOLEAN", "real": "REAL", "blob": "BLOB"}
    db: peewee.SqliteDatabase

    # -- a database not yet open -----------------------------------------------------------

    @classmethod
    def open(
        cls, target: Target, *, readonly: bool = False, create: bool = False, keep_journal_mode: bool = False
    ) -> peewee.Database:
        if keep_journal_mode:
            return open_keeping_journal_mode(target.real_path, target.busy_timeout)
        return open_sqlite(target.real_path, target.busy_timeout, create=create, readonly=readonly)

    @classmethod
    def exists(cls, target: Target) -> bool:
        return check_sqlite_file(target.real_path, must_exist=False)

    @classmethod
    def check_writable(cls, target: Target) -> None:
        check_writable(target.real_path)

    @classmethod
    def needs_read_only_check(cls, target: Target) -> bool:
        # the read-write open switches a rollback-journal file to WAL, rewriting its header
        path = target.real_path
        return path.is_file() and path.stat().st_size > 0

    @classmethod
    def damage(cls, target: Target) -> list[str]:
        """`PRAGMA integrity_check` on a connection of its own, read-only, as far as it gets."""
        with reader(target.real_path) as con:
            try:
                lines = [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
            except sqlite3.DatabaseError as exc:
                lines = [f"stopped: {first_line(exc)}"]
        return [line for line in lines if line != "ok"]

    @classmethod
    def backup(
        cls,
        target: Target,
        dest: str | os.PathLike | None = None,
        progress: Progress = None,
        locked: peewee.Database | None = None,
    ) -> Path:
        # Under a lock holder's transaction another connection still reads the last committed
        # state, which the holder has not changed yet.
        return backup_sqlite(target.real_path, dest, target.busy_timeout, progress)

    @classmethod
    def restore(cls, target: Target, backup: Path, progress: Progress = None) -> Restored:
        """One write transaction on the live file, never a rename (see `sqlite_restore`)."""
        return restore_sqlite(backup, target.real_path, target.busy_timeout, progress)

    @classmethod
    @contextlib.contextmanager
    def rehearsal(cls, target: Target, created: bool) -> Iterator[peewee.Database]:
        """A temporary on-disk copy of one snapshot of the file, deleted afterwards.

        On disk, not in memory, so that memory stays flat whatever the file's size; it lives
        in the system's temporary folder (`$TMPDIR`).
        """
        path = target.real_path
        remove_stale_rehearsals(Path(tempfile.gettempdir()))
        with tempfile.TemporaryDirectory(prefix=f"{REHEARSAL_PREFIX}{os.getpid()}-") as scratch:
            copy = Path(scratch) / path.name
            if not created:
                copy_for_rehearsal(path, copy, target.busy_timeout)
            rehearsal = open_sqlite(copy, target.busy_timeout, create=True)
            try:
                rehearsal.execute_sql("PRAGMA synchronous = 0")  # a throwaway copy needs no durability
                with translate_errors(path):
                    yield rehearsal
            finally:
                rehearsal.close()

    # -- bulk copy -------------------------------------------------------------------------

    @classmethod
    def refuse_copy_target(cls, source: Target, target: Target) -> None:
        from .sqlite_copy import refuse_copy_target  # the copy stands above the backends

        refuse_copy_target(source, target)

    @classmethod
    def copy_into(
        cls, src: Any, target: Target, tables: dict[str, Any], report: Any, progress: Progress
    ) -> None:
        from .sqlite_copy import copy_to_sqlite  # the copy stands above the backends

        copy_to_sqlite(src, target, tables, report, progress)

    def unfit_value_tests(self, table: Table, target_types: dict[str, str]) -> list[tuple[str, str]]:
        """Into PostgreSQL: a BOOLEAN holding anything but 0/1 (PostgreSQL's boolean would take
        any true value as true), an integer, real or blob column holding another type or a
        number out of the target's range. Text columns, most of the data, are not tested: a
        TEXT column can only hold text or a blob, and a blob fails loudly where it is written;
        NUL characters are found in the canonical text."""
        if not target_types:
            return []
        tests = []
        for c in table.columns:
            col = q(c.name)
            if c.kind == "boolean":
                tests.append((c.name, f"typeof({col}) NOT IN ('integer', 'null') OR {col} NOT IN (0, 1)"))
            elif c.kind != "text":
                # psycopg's binary int4 wraps a number that does not fit instead of failing
                limit = INT_RANGES.get(target_types.get(c.name, ""), 2**63)
                test = f"typeof({col}) NOT IN ('{STORAGE[c.kind]}', 'null')"
                if c.kind == "integer" and limit < 2**63:
                    test += f" OR {col} NOT BETWEEN {-limit} AND {limit - 1}"
                tests.append((c.name, test))
        return tests

    def copy_out(
        self, select: str, table: Table, extra_types: list[str], digest: Any = None
    ) -> Iterator[list[tuple]]:
        cursor = self.db.connection().execute(select)
        while batch := cursor.fetchmany(BATCH):
            yield batch

    # -- SQL -------------------------------------------------------------------------------

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        # sqlite3 directly, not through peewee's cursor wrapper: the store's hot paths; logged
        # as peewee logs (--verbose, `sql_log.capturing`), at the cost of one level check
        if LOGGER.isEnabledFor(logging.DEBUG):
            params = tuple(params)
            LOGGER.debug((sql, params))
        return self.db.connection().execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        if LOGGER.isEnabledFor(logging.DEBUG):
            LOGGER.debug((f"{sql} -- {len(rows)} rows", ()))
        self.db.connection().executemany(sql, rows)

    @contextlib.contextmanager
    def streaming(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Any]:
        # sqlite3's cursor steps the statement as it is iterated: nothing is fetched ahead
        cursor = self.execute(sql, params)
        try:
            yield cursor
        finally:
            cursor.close()

    # -- transactions and locks ------------------------------------------------------------

    def snapshot(self, busy_timeout: float) -> contextlib.AbstractContextManager:
        # a read transaction that sees other processes' WAL and waits out their locks
        return read_transaction(self.db, busy_timeout)

    def write(self) -> contextlib.AbstractContextManager:
        return write_transaction(self.db)

    @contextlib.contextmanager
    def stable_write(self) -> Iterator[None]:
        """The write lock, taken by polling (`polling_busy`): beside a writer committing in a loop
        in rollback-journal mode, SQLite's own busy handler sleeps through the short gaps
        between its locks and gives up. The block's writes run in a savepoint of it."""
        con = self.db.connection()
        busy_timeout = con.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
        polling_busy(con, busy_timeout, "BEGIN IMMEDIATE")
        try:
            with write_transaction(self.db):  # inside a transaction already: a savepoint
                yield
            con.execute("COMMIT")
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")

    # -- work on the whole database --------------------------------------------------------

    def after_failure(self) -> None:
        if hasattr(self.db, "real_path"):
            remove_unused_sidecars(self.db.real_path)

    def integrity_problems(self) -> list[str]:
        problems = [
            f"integrity_check: {r[0]}"
            for r in self.rows_until_damage("PRAGMA integrity_check")
            if r[0] != "ok"
        ]
        problems += [
            f"foreign_key_check: {r[0]} rowid {r[1]} references missing {r[2]}"
            if len(r) == 4
            else f"foreign_key_check: {r[0]}"
            for r in self.rows_until_damage("PRAGMA foreign_key_check")
        ]
        return problems

    def rows_until_damage(self, sql: str) -> list[tuple]:
        """The rows `sql` returns; on a damaged file, those it returned before it had to stop."""
        rows: list[tuple] = []
        try:
            for row in self.db.execute_sql(sql):
                rows.append(row)
        except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
            if not is_corrupt(exc):
                raise
            rows.append((f"stopped: {first_line(exc)}",))
        return rows

    def storage_bytes(self) -> int:
        path = self.db.real_path  # type: ignore[attr-defined]  # set by `open_sqlite`
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())

    def reclaim_space(self, tables: list[str]) -> None:
        """VACUUM (the whole file: SQLite vacuums no single table), then a checkpoint that
        copies the rewritten pages into the file and truncates the -wal."""
        con = self.db.connection()
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextlib.contextmanager
    def bulk_pragmas(self) -> Iterator[None]:
        """A larger page cache for a one-off bulk step, reset afterwards."""
        database = self.db
        saved = [(name, database.pragma(name)) for name, _ in BULK_PRAGMAS]
        for name, value in BULK_PRAGMAS:
            database.pragma(name, value)
        try:
            yield
        finally:
            for name, value in saved:
                database.pragma(name, value)

    @contextlib.contextmanager
    def reporting(self, report: Callable[[float], None] | None, every: float = 1.0) -> Iterator[None]:
        """From SQLite's progress handler, every million virtual-machine instructions."""
        if report is None:
            yield
            return
        start = time.monotonic()
        due = [start + every]

        def tick() -> int:
            now = time.monotonic()
            if now >= due[0]:
                due[0] = now + every
                report(now - start)
            return 0  # 0 = carry on

        conn = self.db.connection()
        conn.set_progress_handler(tick, INSTRUCTIONS)
        try:
            yield
        finally:
            conn.set_progress_handler(None, 0)


REHEARSAL_PREFIX = "sessionorm-dry-run-"  # then the owner's pid: sessionorm-dry-run-<pid>-<random>


def remove_stale_rehearsals(directory: Path) -> None:
    """Delete the temporary copies of dry runs whose process is gone (killed before it could)."""
    for leftover in directory.glob(f"{REHEARSAL_PREFIX}*"):
        owner = leftover.name[len(REHEARSAL_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not process_alive(int(owner)):
            shutil.rmtree(leftover, ignore_errors=True)


def copy_for_rehearsal(path: Path, copy: Path, busy_timeout: float) -> None:
    """Copy one snapshot of `path` to `copy`, refusing first when the disk lacks the room."""
    with read_snapshot(path, busy_timeout) as source:
        page_size = source.execute("PRAGMA page_size").fetchone()[0]
        pages = source.execute("PRAGMA page_count").fetchone()[0]
        need = 2 * page_size * pages  # the copy, and as much again for what migrations add
        free = shutil.disk_usage(copy.parent).free
        if free < need:
            raise MigrationError(
                f"--dry-run needs about {need / 2**20:.0f} MiB in {copy.parent.parent} for a "
                f"temporary copy of the database, and only {free / 2**20:.0f} MiB are free; "
                "point TMPDIR at a folder with more room"
            )
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            target.close()
