"""One plain function per command: the Python API and the CLI are the same thing."""
from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import peewee
from playhouse.migrations import Migration

from .backup import backup_sqlite
from .database import (
    DEFAULT_BUSY_TIMEOUT,
    check_sqlite_file,
    default_path,
    open_sqlite,
    open_url,
    readonly_sqlite_uri,
    translate_errors,
)
from .errors import MigrationError
from .progress import reporting
from .runner import MigrationRunner
from .sql_log import capturing
from .thread_migration import foreign_rows
from .verify import VerifyReport, verify_database

Progress = Callable[[float], None] | None
BULK_PRAGMAS = (("cache_size", -65536), ("temp_store", 2))  # 64 MiB cache, temp in memory


@dataclass
class MigrateReport:
    """What `migrate` did, or would do under `dry_run`."""

    database: str
    dry_run: bool = False
    created: bool = False
    pending: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    migrated: int = 0
    skipped: int = 0
    statements: list[str] = field(default_factory=list)
    backup: Path | None = None
    seconds: float = 0.0


@dataclass
class RollbackReport:
    database: str
    reverted: list[str]
    backup: Path | None
    seconds: float


def location(db: str | os.PathLike | None) -> str:
    """A database argument as given, or the default path."""
    return str(db) if db is not None else str(default_path())


def is_url(db: str) -> bool:
    return "://" in db and not db.startswith("file:")


def open_database(db: str, *, readonly: bool = False, create: bool = False,
                  busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> peewee.Database:
    if is_url(db):
        return open_url(db, busy_timeout, create=create)
    return open_sqlite(db, busy_timeout, create=create, readonly=readonly)


def sqlite_path(db: str) -> Path:
    if is_url(db):
        if db.startswith("sqlite:///"):
            return Path(db[len("sqlite:///"):])
        raise MigrationError(f"{db}: only SQLite files are supported by this command so far")
    return Path(db).expanduser()


# -- status, verify, backup -------------------------------------------------------------------

def status(db: str | os.PathLike | None = None) -> list[Migration]:
    """Every migration, applied (with its time) or pending; never creates a database."""
    database = open_database(location(db), readonly=True)
    try:
        with translate_errors(location(db)):
            return MigrationRunner(database).status()
    finally:
        database.close()


def verify(db: str | os.PathLike | None = None) -> VerifyReport:
    """Check tables, columns, indexes, migration rows, integrity and foreign keys."""
    database = open_database(location(db), readonly=True)
    try:
        with translate_errors(location(db)):
            return verify_database(database)
    finally:
        database.close()


def backup(db: str | os.PathLike | None = None, dest: str | os.PathLike | None = None,
           busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Path:
    """A checked online copy of the database; returns its path."""
    return backup_sqlite(sqlite_path(location(db)), dest, busy_timeout)


# -- migrate ----------------------------------------------------------------------------------

def migrate(db: str | os.PathLike | None = None, dry_run: bool = False, backup: bool = False,
            busy_timeout: float = DEFAULT_BUSY_TIMEOUT, progress: Progress = None) -> MigrateReport:
    """Apply the pending migrations, each in one transaction; see DESIGN.md."""
    where = location(db)
    path = None if is_url(where) else sqlite_path(where)
    exists = path is None or check_sqlite_file(path, must_exist=False)
    report = MigrateReport(database=where, dry_run=dry_run, created=not exists)
    start = time.monotonic()
    if dry_run:
        rehearse(path, report, progress)
    else:
        apply(where, path, report, backup and exists, busy_timeout, progress)
    report.seconds = time.monotonic() - start
    return report


def apply(where: str, path: Path | None, report: MigrateReport, take_backup: bool,
          busy_timeout: float, progress: Progress) -> None:
    if take_backup and path is not None and has_pending(where):
        report.backup = backup_sqlite(path, busy_timeout=busy_timeout)
    database = open_database(where, create=True, busy_timeout=busy_timeout)
    try:
        with translate_errors(where):
            run_pending(database, report, progress)
    finally:
        database.close()


def has_pending(where: str) -> bool:
    database = open_database(where, readonly=True)
    try:
        with translate_errors(where):
            return bool(MigrationRunner(database).pending())
    finally:
        database.close()


def run_pending(database: peewee.Database, report: MigrateReport, progress: Progress) -> None:
    runner = MigrationRunner(database)
    report.pending = [m.name for m in runner.pending()]
    if not report.pending:
        return
    with bulk_pragmas(database), reporting(database, progress):
        report.applied = runner.up()
    result = getattr(runner.migrator, "result", None)
    if result is not None:
        report.migrated, report.skipped = result.migrated, result.skipped


class bulk_pragmas:
    """A larger page cache for a one-off bulk step, reset afterwards."""

    def __init__(self, database: peewee.Database) -> None:
        self.database = database
        self.saved: list[tuple[str, object]] = []

    def __enter__(self) -> None:
        if isinstance(self.database, peewee.SqliteDatabase):
            for name, value in BULK_PRAGMAS:
                self.saved.append((name, self.database.pragma(name)))
                self.database.pragma(name, value)

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved:
            self.database.pragma(name, value)


def rehearse(path: Path | None, report: MigrateReport, progress: Progress) -> None:
    """Run the migrations on an in-memory copy and record the SQL; the file is not touched."""
    if path is None:
        raise MigrationError("--dry-run is supported for SQLite files only so far")
    memory = peewee.SqliteDatabase(":memory:", pragmas=[("foreign_keys", 1)])
    memory.connect()
    try:
        if report.created:
            pass  # a new database: rehearse on an empty one
        else:
            with translate_errors(path), closing(sqlite3.connect(
                    readonly_sqlite_uri(path), uri=True)) as source:
                source.backup(memory.connection())

        def keep(sql: str, params: tuple) -> None:
            if not sql.lstrip().upper().startswith(("SELECT", "PRAGMA")):
                report.statements.append(sql if not params else f"{sql}  -- {list(params)!r}")

        with capturing(keep), translate_errors(path):
            run_pending(memory, report, progress)
    finally:
        memory.close()


# -- rollback ---------------------------------------------------------------------------------

def rollback(db: str | os.PathLike | None = None, force: bool = False,
             busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> RollbackReport:
    """Revert the latest migration after a backup; refuses to destroy rows it did not create."""
    where = location(db)
    path = sqlite_path(where)
    start = time.monotonic()
    check_rollback_possible(where, force)
    saved = backup_sqlite(path, busy_timeout=busy_timeout)
    database = open_database(where, busy_timeout=busy_timeout)
    try:
        with translate_errors(where):
            runner = MigrationRunner(database)
            runner.migrator.force = force
            reverted = runner.down()
    finally:
        database.close()
    return RollbackReport(where, reverted, saved, time.monotonic() - start)


def check_rollback_possible(where: str, force: bool) -> None:
    """Refuse early, before the backup, when the rollback could not go ahead."""
    database = open_database(where, readonly=True)
    try:
        with translate_errors(where):
            applied = [m for m in MigrationRunner(database).status() if m.applied]
            if not applied:
                raise MigrationError(f"{where}: no applied migration to roll back")
            if force or applied[-1].idx != 1:
                return  # only migration 1 owns threads and messages
            threads, messages = foreign_rows(database)
            if threads or messages:
                raise MigrationError(
                    f"refusing to roll back: {threads} threads and {messages} messages were not "
                    "created by the migration and would be destroyed (use --force to destroy them)")
    finally:
        database.close()
