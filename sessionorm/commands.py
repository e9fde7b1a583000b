"""One plain function per command: the Python API and the CLI are the same thing."""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrations import Migration, _resolve_models
from playhouse.migrations import MigrationError as PeeweeMigrationError

from .copy_checks import CopyReport
from .database import (
    check_sqlite_file,
    check_writable,
    open_sqlite,
    open_url,
    read_snapshot,
    translate_errors,
)
from .drift import Drift
from .drift import drift as schema_drift_report
from .errors import MigrationError
from .exercise import Step, open_keeping_journal_mode
from .exercise import exercise as exercise_store
from .migration_options import BackfillResult, MigrationOptions
from .models import MODELS, OWN_TABLES
from .opening import opened
from .pg_backup import backup_postgres
from .progress import reporting
from .runner import MigrationRunner
from .safe_migrator import lock_database
from .scaffold import NewMigration, make_migration
from .sql_log import capturing
from .sqlite_backup import backup_sqlite
from .store import SessionStore
from .target import Target
from .thread_restore import RestoreReport
from .thread_restore import restore_threads as restore_lost_threads
from .transfer import copy_database
from .verification import VerifyReport, verify_database

Progress = Callable[[str], None] | None  # receives one-line progress messages
Dir = str | os.PathLike | None
DB = str | os.PathLike | Target | None  # a path, a URL, a parsed Target, or None: the default
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


def extra_dirs(target: Target) -> list[str]:
    """The folder of a project's own migration scripts, run after the shipped ones (if any)."""
    return [str(target.migrations_dir)] if target.migrations_dir else []


# -- status, verify, backup -------------------------------------------------------------------

def status(db: DB = None, migrations_dir: Dir = None,
           busy_timeout: float | None = None) -> list[Migration]:
    """Every migration, applied (with its time) or pending; never creates a database.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        migrations_dir: a folder of your own migration scripts, run after the shipped ones.
        busy_timeout: seconds to wait for another connection's lock.

    Returns:
        One `Migration(idx, name, path, applied)` per script or history row, in order;
        `applied` is a datetime, or None while pending.

    Raises:
        DatabaseOpenError: no database there, or not one; DatabaseBusyError: locked too long.
    """
    target = Target.of(db, busy_timeout, migrations_dir)
    with opened(target, readonly=True) as database:
        return MigrationRunner(database, extra_dirs=extra_dirs(target)).status()


def verify(db: DB = None, migrations_dir: Dir = None,
           models: str | None = None, exercise: bool = False,
           busy_timeout: float | None = None, progress: Progress = None) -> VerifyReport:
    """Check tables, columns, indexes, migration rows, integrity and foreign keys.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        migrations_dir: your own migration scripts, checked with the shipped ones.
        models: `module:ATTR` naming your models, compared with the database instead of ours.
        exercise: also run the store's thread functions in a transaction rolled back
            afterwards; a failed step is a problem.
        busy_timeout: seconds to wait for another connection's lock.
        progress: called with one-line progress messages (the step, its seconds).

    Returns:
        A `VerifyReport`: `ok`, `problems` (one line each) and harmless `notes`.

    Raises:
        DatabaseOpenError: no database there, or not one; DatabaseBusyError: locked too long.
    """
    target = Target.of(db, busy_timeout, migrations_dir)
    with opened(target, readonly=True) as database:
        runner = MigrationRunner(database, extra_dirs=extra_dirs(target))
        report = verify_database(database, runner, load_models(models), progress)
    if exercise:
        report.checks.append("exercise")
        try:
            report.exercise = exercise_database(target)
        except MigrationError as exc:  # no thread tables yet
            report.exercise = [("find the store's tables", False, str(exc))]
        report.problems += [f"verify --exercise: {what} failed: {detail}"
                            for what, passed, detail in report.exercise if not passed]
    return report


def exercise_database(db: DB = None,
                      busy_timeout: float | None = None) -> list[Step]:
    """Create a thread, append and read 3 messages, delete it, check migration 1's row; roll back.

    SQLite files keep their journal mode (a rollback-journal file keeps every byte).
    """
    target = Target.of(db, busy_timeout)
    if target.is_server:
        database = open_url(target.server_url, target.busy_timeout, create=False)
    else:
        database = open_keeping_journal_mode(target.real_path, target.busy_timeout)
    try:
        return exercise_store(database, str(target))
    finally:
        database.close()


def backfill(db: DB = None,
             busy_timeout: float | None = None) -> BackfillResult:
    """Give sessions with a legacy threadId and no thread theirs (the data step of migration 1).

    For sessions created after the migration; `SessionStore.migrate_session_thread_ids()`.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        busy_timeout: seconds to wait for another writer's lock.

    Returns:
        A `BackfillResult`: threads `migrated` now, sessions `skipped` (already had theirs).

    Raises:
        MigrationError: migrations are pending; DatabaseBusyError, DatabaseOpenError.
    """
    target = Target.of(db, busy_timeout)
    with opened(target, readonly=True) as database:
        pending = MigrationRunner(database).pending()
    if pending:
        raise MigrationError(f"{target} has pending migrations "
                             f"({', '.join(m.name for m in pending)}); run `sessionorm migrate` first")
    with opened(target) as database:
        return SessionStore.on_database(database, str(target)).migrate_session_thread_ids()


def restore_threads(backup_db: DB, db: DB = None, dry_run: bool = False,
                    busy_timeout: float | None = None) -> RestoreReport:
    """Copy back from a backup the threads the database lacks, and nothing else.

    Only threads whose session the database still has, not deleted through sessionorm, with
    the messages of theirs the database lacks; every row written since the backup stays.

    Args:
        backup_db: the backup: a SQLite file (e.g. from `sessionorm backup`) or a URL.
        db: a SQLite path, a database URL, or None for the default database.
        dry_run: list what would come back and change nothing.
        busy_timeout: seconds to wait for another writer's lock.

    Raises:
        MigrationError: migrations are pending, or the backup holds no threads;
        DatabaseOpenError, DatabaseBusyError.
    """
    target = Target.of(db, busy_timeout)
    source = Target.of(backup_db, busy_timeout)
    with opened(target, readonly=True) as database:
        pending = MigrationRunner(database).pending()
    if pending:
        raise MigrationError(f"{target} has pending migrations "
                             f"({', '.join(m.name for m in pending)}); run `sessionorm migrate` first")
    report = RestoreReport(str(target), str(source), dry_run=dry_run)
    with opened(source, readonly=True) as backup_database, \
            opened(target, readonly=dry_run) as database:
        restore_lost_threads(backup_database, database, report)
    return report


def backup(db: DB = None, dest: str | os.PathLike | None = None,
           busy_timeout: float | None = None, progress: Progress = None) -> Path:
    """A checked online copy of the database (PostgreSQL: a pg_dump archive).

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        dest: where to write it (never overwritten); default `<db>.backup-YYYY-MM-DD-HHMMSS`
            next to the real file behind any symlink.
        busy_timeout: seconds to wait for another writer's lock.
        progress: called with the percentage copied so far (SQLite files).

    Returns:
        The backup's path, after its integrity and row counts were checked.

    Raises:
        BackupError: the copy failed its checks, or `dest` exists; DatabaseOpenError,
        DatabaseBusyError.
    """
    target = Target.of(db, busy_timeout)
    if target.is_server:
        return backup_postgres(target.server_url, dest, target.busy_timeout)
    return backup_sqlite(target.real_path, dest, target.busy_timeout, progress)


def backup_checked(target: Target) -> str:
    """How `backup` checked its copy of `target`, in words."""
    if target.is_server:
        return "pg_restore --list reads it, every table's data is in it"
    return "integrity ok, row counts match"


# -- migrate ----------------------------------------------------------------------------------

def migrate(db: DB = None, dry_run: bool = False, backup: bool = False,
            busy_timeout: float | None = None, progress: Progress = None,
            migrations_dir: Dir = None) -> MigrateReport:
    """Apply the pending migrations in one transaction, deciding what is pending under its lock.

    Args:
        db: a SQLite path, a database URL, or None for the default database. A SQLite
            path that does not exist is created.
        dry_run: rehearse on a temporary copy (PostgreSQL: in a transaction rolled back),
            record the plan, and change nothing.
        backup: back up while the write lock is held, before anything is written, and only
            when something is pending.
        busy_timeout: seconds to wait for another writer's lock.
        progress: called with one-line progress messages while a long step runs.
        migrations_dir: your own migration scripts, run after the shipped ones.

    Returns:
        A `MigrateReport`: `pending`, `applied`, `migrated`/`skipped` sessions, `backup`,
        and under `dry_run` the `statements` that would run.

    Raises:
        MigrationError: a migration failed or refused (nothing of it was written);
        BackupError, DatabaseBusyError, DatabaseOpenError.
    """
    target = Target.of(db, busy_timeout, migrations_dir)
    exists = target.is_server or check_sqlite_file(target.real_path, must_exist=False)
    report = MigrateReport(database=str(target), dry_run=dry_run, created=not exists)
    start = time.monotonic()
    if dry_run and target.is_server:
        rehearse_in_transaction(target, report, progress)
    elif dry_run:
        rehearse(target, report, progress)
    else:
        apply(target, report, backup and exists, progress)
    report.seconds = time.monotonic() - start
    return report


def apply(target: Target, report: MigrateReport, take_backup: bool, progress: Progress) -> None:
    if not target.is_server:
        check_writable(target.real_path)  # before anything opens it
    if not report.created:
        # read-only, before the read-write open rewrites a rollback-journal file's header
        refuse_unadoptable(target)
    with opened(target, create=True) as database:
        def take(names: list[str]) -> None:
            report.backup = backup_under_lock(target, database, progress)
            report.backup_checked = backup_checked(target)

        run_pending(database, report, progress, target, take if take_backup else None)


def backup_under_lock(target: Target, database: peewee.Database, progress: Progress = None) -> Path:
    """A backup while `database`'s open transaction holds the migration's write lock.

    SQLite: another connection reads the last committed state, which the lock holder has
    not changed yet. PostgreSQL: pg_dump's ACCESS SHARE locks are compatible with the lock.
    """
    if target.is_server:
        return backup_postgres(target.server_url, busy_timeout=target.busy_timeout, locked=database)
    return backup(target, progress=progress)


def refuse_unadoptable(target: Target) -> None:
    """Another program's tables, or thread tables of another shape: refuse before anything.

    Read-only, before the read-write open (which rewrites a rollback-journal file's header);
    the runner checks again under the write lock.
    """
    with opened(target, readonly=True) as database:
        runner = MigrationRunner(database, extra_dirs=extra_dirs(target))
        pending = runner.pending()
        runner.refuse_foreign_tables([m.load() for m in pending])  # another program's tables


def run_pending(database: peewee.Database, report: MigrateReport, progress: Progress,
                target: Target, before: Callable[[list[str]], None] | None = None) -> None:
    """Apply what is pending; `before(names)` runs with the write lock held, nothing written yet."""
    runner = MigrationRunner(database, extra_dirs=extra_dirs(target))

    def tell(seconds: float) -> None:
        if progress is not None:
            progress(f"applying {', '.join(report.pending)}: {seconds:.0f} s")

    def first(names: list[str]) -> None:
        report.pending = names
        report.other_tables = other_tables(database)
        if before is not None:
            before(names)
        tell(0)

    with bulk_pragmas(database), reporting(database, tell if progress else None):
        report.applied = runner.up(before=first)
    record_result(runner, report)


def other_tables(database: peewee.Database) -> list[str]:
    """Another program's tables, if the database has no `sessions` table (else none)."""
    tables = database.get_tables()
    if "sessions" in tables:
        return []
    return sorted(t for t in tables if t not in OWN_TABLES)


def record_result(runner: MigrationRunner, report: MigrateReport) -> None:
    """The data steps' counts, when a migration that copies legacy threadIds ran."""
    result = BackfillResult.total(list(runner.results.values()))
    if result is not None:
        report.migrated, report.skipped = result.migrated, result.skipped


@contextlib.contextmanager
def bulk_pragmas(database: peewee.Database) -> Iterator[None]:
    """SQLite: a larger page cache for a one-off bulk step, reset afterwards."""
    if not isinstance(database, peewee.SqliteDatabase):
        yield
        return
    saved = [(name, database.pragma(name)) for name, _ in BULK_PRAGMAS]
    for name, value in BULK_PRAGMAS:
        database.pragma(name, value)
    try:
        yield
    finally:
        for name, value in saved:
            database.pragma(name, value)


def plan_statement(report: MigrateReport) -> Callable[[str, tuple], None]:
    """A `capturing` sink that keeps the statements that change something, with their parameters."""

    def keep(sql: str, params: tuple) -> None:
        if not sql.lstrip().upper().startswith(("SELECT", "PRAGMA", "SAVEPOINT", "RELEASE")):
            report.statements.append(sql if not params else f"{sql}  -- {list(params)!r}")

    return keep


def rehearse_in_transaction(target: Target, report: MigrateReport, progress: Progress) -> None:
    """PostgreSQL: run the migrations in one transaction, record the SQL, then roll it back.

    Its DDL is transactional, so the database is left exactly as it was; the rehearsal
    takes the same locks as the real run, for as long as it lasts.
    """
    with opened(target) as database:
        if not SchemaMigrator.from_database(database).transactional_ddl:  # e.g. CockroachDB
            raise MigrationError(f"--dry-run needs transactional DDL, which {type(database).__name__} "
                                 "lacks: its rolled-back rehearsal could leave schema changes behind")
        runner = MigrationRunner(database, extra_dirs=extra_dirs(target),
                                 options=MigrationOptions(rehearsal=True))
        with database.atomic() as transaction:
            lock_database(database)  # as the real run does: a busy database fails here
            report.pending = [m.name for m in runner.pending()]
            if report.pending:
                report.other_tables = other_tables(database)
                with capturing(plan_statement(report)):
                    runner.up()
            transaction.rollback()  # peewee then commits the empty transaction it begins
        record_result(runner, report)


def rehearse(target: Target, report: MigrateReport, progress: Progress) -> None:
    """Run the migrations on a temporary on-disk copy and record the SQL; the file is not touched.

    On disk, not in memory, so that memory stays flat whatever the file's size; the copy
    lives in the system's temporary folder (`$TMPDIR`) and is deleted afterwards.
    """
    path = target.real_path
    with tempfile.TemporaryDirectory(prefix="sessionorm-dry-run-") as scratch:
        copy = Path(scratch) / path.name
        if not report.created:
            copy_for_rehearsal(path, copy, target.busy_timeout)
        rehearsal = open_sqlite(copy, target.busy_timeout)
        try:
            rehearsal.pragma("synchronous", 0)  # a throwaway copy needs no durability
            with capturing(plan_statement(report)), translate_errors(path):
                run_pending(rehearsal, report, progress, target)
        finally:
            rehearsal.close()


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
                "point TMPDIR at a folder with more room")
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            target.close()


# -- rollback ---------------------------------------------------------------------------------

def rollback(db: DB = None, force: bool = False,
             busy_timeout: float | None = None, migrations_dir: Dir = None) -> RollbackReport:
    """Revert the latest migration; a backup is taken under its write lock, before any write.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        force: also destroy threads and messages the migration did not create.
        busy_timeout: seconds to wait for another writer's lock.
        migrations_dir: your own migration scripts (the latest applied one is reverted).

    Returns:
        A `RollbackReport`: `reverted` names and the `backup` path.

    Raises:
        MigrationError: nothing to roll back, or rows it would destroy (without `force`);
        BackupError, DatabaseBusyError, DatabaseOpenError.
    """
    target = Target.of(db, busy_timeout, migrations_dir)
    start = time.monotonic()
    if not target.is_server:
        check_writable(target.real_path)  # before a backup that would be wasted
    options = MigrationOptions(force=force)
    with opened(target, readonly=True) as database:  # refuse early, before the lock and backup
        runner = MigrationRunner(database, extra_dirs=extra_dirs(target), options=options)
        if not any(m.applied for m in runner.status()):
            raise MigrationError(f"{target}: no applied migration to roll back")
        runner.check_down()  # the latest script's own check
    saved: list[Path] = []
    with opened(target) as database:
        runner = MigrationRunner(database, extra_dirs=extra_dirs(target), options=options)
        reverted = runner.down(before=lambda names: saved.append(
            backup_under_lock(target, database)))
    return RollbackReport(str(target), reverted, saved[0] if saved else None,
                          time.monotonic() - start)


# -- copy -------------------------------------------------------------------------------------

def copy(source: DB, target: str | os.PathLike | Target, migrations_dir: Dir = None,
         busy_timeout: float | None = None, progress: Progress = None) -> CopyReport:
    """Copy every table of a migrated database into a new or empty one (SQLite or PostgreSQL).

    Rows stream in primary-key order from one snapshot of the source; the target is created
    through the migrations and appears complete or not at all (PostgreSQL: one transaction;
    SQLite: a temporary file renamed into place), after row counts and checksums of every
    table were compared on both sides.

    Args:
        source: a SQLite path, a database URL, or None for the default database.
        target: a SQLite path (absent or without tables) or a URL of an empty server database.
        migrations_dir: your own migration scripts, applied to the source already.
        busy_timeout: seconds to wait for another connection's lock.
        progress: called with one-line progress messages (table, rows done, rate).

    Returns:
        A `CopyReport`: per table, rows and checksum as read from source and target.

    Raises:
        MigrationError (`CopyError`): the source has pending migrations, the target is not
        empty, or a table or value cannot be carried (named); nothing was written.
        DatabaseOpenError, DatabaseBusyError.
    """
    src = Target.of(source, busy_timeout, migrations_dir)
    dst = Target.of(target, busy_timeout, migrations_dir)
    return copy_database(src, dst, extra_dirs(src), progress)


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


def diff(db: DB = None, models: str | None = None,
         busy_timeout: float | None = None) -> list[str]:
    """What differs between the models and the database, one line each.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        models: `module:ATTR` naming your models (default: sessionorm's own).
        busy_timeout: seconds to wait for another connection's lock.

    Returns:
        One line per difference; empty when in sync. Harmless differences are in `drift()`.

    Raises:
        MigrationError: the models cannot be loaded; DatabaseOpenError, DatabaseBusyError.
    """
    return drift(db, models, busy_timeout).problems


def drift(db: DB = None, models: str | None = None,
          busy_timeout: float | None = None) -> Drift:
    """`diff` plus notes: harmless differences (duplicate indexes, optional legacy columns)."""
    with opened(Target.of(db, busy_timeout), readonly=True) as database:
        return schema_drift_report(database, load_models(models))


def makemigration(name: str, db: DB = None, models: str | None = None,
                  migrations_dir: Dir = None,
                  busy_timeout: float | None = None) -> NewMigration:
    """Write the next numbered migration script from the diff (review it before migrating).

    Args:
        name: what the script does, e.g. "add priority" (letters, digits, '_', '-', spaces).
        db: a SQLite path, a database URL, or None for the default database.
        models: `module:ATTR` naming your models (default: sessionorm's own).
        migrations_dir: where to write it; default `./migrations`, created if missing.
        busy_timeout: seconds to wait for another connection's lock.

    Returns:
        A `NewMigration`: its `path` (None when already in sync), `todos`, `destructive`.

    Raises:
        MigrationError: a bad name, models that cannot be loaded, or shipped migrations still
        pending (the script would repeat what they do); DatabaseOpenError.
    """
    target = Target.of(db, busy_timeout, migrations_dir)
    with opened(target, readonly=True) as database:
        shipped = [m.name for m in MigrationRunner(database).pending()]
        if shipped:
            raise MigrationError(f"refusing to write a migration: {target} has shipped migrations "
                                 f"pending ({', '.join(shipped)}); run `sessionorm migrate` first, "
                                 "so that yours starts where they end (nothing was written)")
        return make_migration(database, load_models(models), name, target.migrations_dir)
