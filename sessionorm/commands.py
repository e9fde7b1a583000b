"""One plain function per command: the Python API and the CLI are the same thing."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrations import Migration, _resolve_models
from playhouse.migrations import MigrationError as PeeweeMigrationError

from .backup import backup_sqlite
from .database import (
    DEFAULT_BUSY_TIMEOUT,
    check_sqlite_file,
    check_writable,
    default_path,
    open_sqlite,
    open_url,
    readonly_sqlite_uri,
    redact,
    sqlite_url_path,
    translate_errors,
)
from .drift import schema_drift
from .errors import MigrationError
from .makemigration import NewMigration, make_migration
from .models import MODELS, MigrationChecksum
from .pg_backup import backup_postgres
from .progress import reporting
from .runner import MigrationRunner
from .safe_migrator import lock_database
from .sql_log import capturing
from .thread_migration import foreign_rows
from .verify import VerifyReport, verify_database

Progress = Callable[[str], None] | None  # receives one-line progress messages
Dir = str | os.PathLike | None
# A 16 MiB page cache for the bulk step: faster than the default 2 MiB, while peak memory stays
# flat (a larger cache, or temp_store=MEMORY, grows the index sorts past 150 MB at 1M sessions).
BULK_PRAGMAS = (("cache_size", -16384), ("temp_store", 0))


@dataclass
class MigrateReport:
    """What `migrate` did, or would do under `dry_run`."""

    database: str
    dry_run: bool = False
    created: bool = False
    pending: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    migrated: int | None = None  # None: no pending migration copies legacy threadIds
    skipped: int | None = None
    statements: list[str] = field(default_factory=list)
    backup: Path | None = None
    backup_checked: str = ""  # how the backup was checked, for the CLI
    seconds: float = 0.0
    # Tables of another program in a database that had no `sessions` table: the orchestrator's
    # tables were added next to them (said, never silent).
    other_tables: list[str] = field(default_factory=list)


@dataclass
class RollbackReport:
    database: str
    reverted: list[str]
    backup: Path | None
    seconds: float


def extra(migrations_dir: Dir) -> list[str]:
    """A project's own migration scripts, run after the shipped ones."""
    return [str(migrations_dir)] if migrations_dir else []


def location(db: str | os.PathLike | None) -> str:
    """A database argument as given, or the default path."""
    return str(db) if db is not None else str(default_path())


def is_url(db: str) -> bool:
    return "://" in db and not db.startswith("file:")


def is_server(db: str) -> bool:
    """A URL of a database server (PostgreSQL), not of a SQLite file."""
    return is_url(db) and not db.startswith("sqlite:")


@contextlib.contextmanager
def opened(db: str, **options: Any) -> Iterator[peewee.Database]:
    """`open_database` for the length of a block, driver errors translated, closed after."""
    database = open_database(db, **options)
    try:
        with translate_errors(db):
            yield database
    finally:
        database.close()


def open_database(db: str, *, readonly: bool = False, create: bool = False,
                  busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> peewee.Database:
    if is_url(db):
        return open_url(db, busy_timeout, create=create)
    return open_sqlite(db, busy_timeout, create=create, readonly=readonly)


def sqlite_path(db: str) -> Path:
    if is_server(db):
        raise MigrationError(f"{redact(db)}: only SQLite files are supported by this command")
    return Path(sqlite_url_path(db) if db.startswith("sqlite:") else db).expanduser()


# -- status, verify, backup -------------------------------------------------------------------

def status(db: str | os.PathLike | None = None, migrations_dir: Dir = None,
           busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> list[Migration]:
    """Every migration, applied (with its time) or pending; never creates a database."""
    with opened(location(db), readonly=True, busy_timeout=busy_timeout) as database:
        return MigrationRunner(database, extra_dirs=extra(migrations_dir)).status()


def verify(db: str | os.PathLike | None = None, migrations_dir: Dir = None,
           models: str | None = None, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> VerifyReport:
    """Check tables, columns, indexes, migration rows, integrity and foreign keys."""
    with opened(location(db), readonly=True, busy_timeout=busy_timeout) as database, \
            snapshot(database):
        runner = MigrationRunner(database, extra_dirs=extra(migrations_dir))
        return verify_database(database, runner, load_models(models))


def snapshot(database: peewee.Database) -> contextlib.AbstractContextManager:
    """PostgreSQL: one read-only transaction, so every check sees the same snapshot."""
    if isinstance(database, peewee.PostgresqlDatabase):
        return database.atomic("REPEATABLE READ, READ ONLY")
    return contextlib.nullcontext()


def backup(db: str | os.PathLike | None = None, dest: str | os.PathLike | None = None,
           busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Path:
    """A checked online copy of the database (PostgreSQL: a pg_dump archive); returns its path."""
    if is_server(location(db)):
        return backup_postgres(location(db), dest, busy_timeout)
    return backup_sqlite(sqlite_path(location(db)), dest, busy_timeout)


def backup_checked(db: str) -> str:
    """How `backup` checked its copy of `db`, in words."""
    if is_server(db):
        return "pg_restore --list reads it, every table's data is in it"
    return "integrity ok, row counts match"


# -- migrate ----------------------------------------------------------------------------------

def migrate(db: str | os.PathLike | None = None, dry_run: bool = False, backup: bool = False,
            busy_timeout: float = DEFAULT_BUSY_TIMEOUT, progress: Progress = None,
            migrations_dir: Dir = None) -> MigrateReport:
    """Apply the pending migrations, each in one transaction; see DESIGN.md."""
    where = location(db)
    path = None if is_server(where) else sqlite_path(where)
    exists = path is None or check_sqlite_file(path, must_exist=False)
    report = MigrateReport(database=redact(where), dry_run=dry_run, created=not exists)
    start = time.monotonic()
    if dry_run and path is None:
        rehearse_in_transaction(where, report, progress, migrations_dir, busy_timeout)
    elif dry_run:
        rehearse(path, report, progress, migrations_dir)
    else:
        apply(where, path, report, backup and exists, busy_timeout, progress, migrations_dir)
    report.seconds = time.monotonic() - start
    return report


def apply(where: str, path: Path | None, report: MigrateReport, take_backup: bool,
          busy_timeout: float, progress: Progress, migrations_dir: Dir) -> None:
    if path is None:
        apply_postgres(where, report, take_backup, busy_timeout, progress, migrations_dir)
        return
    check_writable(path)  # before a backup that would be wasted
    if take_backup and has_pending(where, migrations_dir):
        report.backup = backup(where, busy_timeout=busy_timeout)
        report.backup_checked = backup_checked(where)
    with opened(where, create=True, busy_timeout=busy_timeout) as database:
        run_pending(database, report, progress, migrations_dir)


def has_pending(where: str, migrations_dir: Dir) -> bool:
    """Whether anything is pending; refuses another program's tables (before a backup)."""
    with opened(where, readonly=True) as database:
        runner = MigrationRunner(database, extra_dirs=extra(migrations_dir))
        pending = [m.name for m in runner.pending()]
        runner.refuse_foreign_tables(pending)
        return bool(pending)


def locked_runner(database: peewee.Database, migrations_dir: Dir) -> MigrationRunner:
    """PostgreSQL: take the migration lock in the caller's transaction; a runner that uses it."""
    lock_database(database)
    runner = MigrationRunner(database, extra_dirs=extra(migrations_dir))
    runner.migrator.locked = True
    return runner


def apply_postgres(where: str, report: MigrateReport, take_backup: bool, busy_timeout: float,
                   progress: Progress, migrations_dir: Dir) -> None:
    """One transaction: take the lock, decide what is pending, back up, migrate.

    pg_dump's ACCESS SHARE locks are compatible with the lock held, so the backup is exactly
    the state the migration starts from; a busy database fails before any backup.
    """
    with opened(where, create=True, busy_timeout=busy_timeout) as database, database.atomic():
        runner = locked_runner(database, migrations_dir)
        pending = [m.name for m in runner.pending()]
        if not pending:
            return
        runner.refuse_foreign_tables(pending)
        if take_backup:
            report.backup = backup_postgres(where, busy_timeout=busy_timeout, locked=database)
            report.backup_checked = backup_checked(where)
        run_pending(database, report, progress, migrations_dir, runner)


def run_pending(database: peewee.Database, report: MigrateReport, progress: Progress,
                migrations_dir: Dir, runner: MigrationRunner | None = None) -> None:
    runner = runner or MigrationRunner(database, extra_dirs=extra(migrations_dir))
    report.pending = [m.name for m in runner.pending()]
    if not report.pending:
        return
    report.other_tables = other_tables(database)
    names = ", ".join(report.pending)
    tell = None if progress is None else (lambda s: progress(f"applying {names}: {s:.0f} s"))
    if tell:
        tell(0)
    with bulk_pragmas(database), reporting(database, tell):
        report.applied = runner.up()
    record_result(runner, report)


def other_tables(database: peewee.Database) -> list[str]:
    """Another program's tables, if the database has no `sessions` table (else none)."""
    tables = database.get_tables()
    if "sessions" in tables:
        return []
    ours = {m._meta.table_name for m in (*MODELS, MigrationChecksum)}
    return sorted(t for t in tables if t not in ours)


def record_result(runner: MigrationRunner, report: MigrateReport) -> None:
    """The data step's counts, when a migration that copies legacy threadIds ran."""
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


def plan_statement(report: MigrateReport) -> Callable[[str, tuple], None]:
    """A `capturing` sink that keeps the statements that change something, with their parameters."""

    def keep(sql: str, params: tuple) -> None:
        if not sql.lstrip().upper().startswith(("SELECT", "PRAGMA", "SAVEPOINT", "RELEASE")):
            report.statements.append(sql if not params else f"{sql}  -- {list(params)!r}")

    return keep


class _Rehearsed(Exception):
    """Leaves a dry run's transaction, so that it is rolled back."""


def rehearse_in_transaction(where: str, report: MigrateReport, progress: Progress,
                            migrations_dir: Dir, busy_timeout: float) -> None:
    """PostgreSQL: run the migrations in one transaction, record the SQL, then roll it back.

    Its DDL is transactional, so the database is left exactly as it was; the rehearsal
    takes the same locks as the real run, for as long as it lasts.
    """
    with opened(where, busy_timeout=busy_timeout) as database:
        if not SchemaMigrator.from_database(database).transactional_ddl:  # e.g. CockroachDB
            raise MigrationError(f"--dry-run needs transactional DDL, which {type(database).__name__} "
                                 "lacks: its rolled-back rehearsal could leave schema changes behind")
        runner = MigrationRunner(database, extra_dirs=extra(migrations_dir))
        runner.migrator.rehearsal = True
        try:
            with database.atomic():
                lock_database(database)  # as the real run does: a busy database fails here
                report.pending = [m.name for m in runner.pending()]
                if not report.pending:
                    return
                report.other_tables = other_tables(database)
                with capturing(plan_statement(report)):
                    runner.up()
                raise _Rehearsed
        except _Rehearsed:
            pass
        record_result(runner, report)


def rehearse(path: Path | None, report: MigrateReport, progress: Progress, migrations_dir: Dir) -> None:
    """Run the migrations on an in-memory copy and record the SQL; the file is not touched."""
    if path is None:
        raise MigrationError("--dry-run of a server database: use rehearse_in_transaction")
    memory = peewee.SqliteDatabase(":memory:", pragmas=[("foreign_keys", 1)])
    memory.connect()
    try:
        if report.created:
            pass  # a new database: rehearse on an empty one
        else:
            with translate_errors(path), closing(sqlite3.connect(
                    readonly_sqlite_uri(path), uri=True)) as source:
                source.backup(memory.connection())

        with capturing(plan_statement(report)), translate_errors(path):
            run_pending(memory, report, progress, migrations_dir)
    finally:
        memory.close()


# -- rollback ---------------------------------------------------------------------------------

def rollback(db: str | os.PathLike | None = None, force: bool = False,
             busy_timeout: float = DEFAULT_BUSY_TIMEOUT, migrations_dir: Dir = None) -> RollbackReport:
    """Revert the latest migration after a backup; refuses to destroy rows it did not create."""
    where = location(db)
    start = time.monotonic()
    if is_server(where):
        return rollback_postgres(where, force, busy_timeout, migrations_dir, start)
    check_writable(sqlite_path(where))  # before a backup that would be wasted
    with opened(where, readonly=True) as database:
        check_rollback_possible(database, where, force, migrations_dir)
    saved = backup(where, busy_timeout=busy_timeout)
    with opened(where, busy_timeout=busy_timeout) as database:
        runner = MigrationRunner(database, extra_dirs=extra(migrations_dir))
        runner.migrator.force = force
        reverted = runner.down()
    return RollbackReport(where, reverted, saved, time.monotonic() - start)


def rollback_postgres(where: str, force: bool, busy_timeout: float, migrations_dir: Dir,
                      start: float) -> RollbackReport:
    """One transaction: take the lock, check, back up, revert (see `apply_postgres`)."""
    with opened(where, busy_timeout=busy_timeout) as database, database.atomic():
        runner = locked_runner(database, migrations_dir)
        runner.migrator.force = force
        check_rollback_possible(database, where, force, migrations_dir)
        saved = backup_postgres(where, busy_timeout=busy_timeout, locked=database)
        reverted = runner.down()
    return RollbackReport(redact(where), reverted, saved, time.monotonic() - start)


def check_rollback_possible(database: peewee.Database, where: str, force: bool,
                            migrations_dir: Dir) -> None:
    """Refuse early, before the backup, when the rollback could not go ahead."""
    runner = MigrationRunner(database, extra_dirs=extra(migrations_dir))
    applied = [m for m in runner.status() if m.applied]
    if not applied:
        raise MigrationError(f"{redact(where)}: no applied migration to roll back")
    if force or applied[-1].idx != 1:
        return  # only migration 1 owns threads and messages
    threads, messages = foreign_rows(database)
    if threads or messages:
        raise MigrationError(
            f"refusing to roll back: {threads} threads and {messages} messages were not "
            "created by the migration and would be destroyed (use --force to destroy them)")


# -- diff, makemigration ----------------------------------------------------------------------

def load_models(spec: str | None) -> list:
    """`module:ATTR` or `module` (its models) on the current folder's path; default: ours."""
    if not spec:
        return list(MODELS)
    try:
        models, _ = _resolve_models(spec)  # playhouse's own loader for `pwmigrate diff`
    except (PeeweeMigrationError, ImportError) as exc:
        raise MigrationError(f"cannot load models {spec!r}: {exc}") from None
    return models


def diff(db: str | os.PathLike | None = None, models: str | None = None,
         busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> list[str]:
    """What differs between the models and the database, one line each (empty: in sync)."""
    with opened(location(db), readonly=True, busy_timeout=busy_timeout) as database:
        return schema_drift(database, load_models(models))


def makemigration(name: str, db: str | os.PathLike | None = None, models: str | None = None,
                  migrations_dir: Dir = None,
                  busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> NewMigration:
    """Write the next numbered script from the diff; `.path` is None when already in sync."""
    with opened(location(db), readonly=True, busy_timeout=busy_timeout) as database:
        return make_migration(database, load_models(models), name, migrations_dir)
