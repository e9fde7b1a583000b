"""Planning and applying migrations for the commands: `migrate`, its dry runs, `rollback`,
`backfill`, and the backups taken under a migration's write lock.

`commands.py` turns arguments into a `Target` and calls these; what is pending is decided here
only through the runner (`runner.runner_for`: the shipped scripts plus the project's own
folder), under the write lock, and every database is opened through `opening.opened`. The
runner asks the scripts what they do; nothing here knows a migration by its number.
"""
from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import peewee
from playhouse.migrate import SchemaMigrator

from .database import check_sqlite_file, check_writable, read_snapshot, translate_errors
from .errors import MigrationError
from .migration_options import BackfillResult, MigrationOptions
from .models import OWN_TABLES
from .opening import opened
from .pg_backup import backup_postgres
from .progress import Progress, reporting
from .runner import MigrationRunner, runner_for
from .safe_migrator import lock_database
from .sql_log import capturing
from .sqlite_backup import backup_sqlite
from .store import SessionStore
from .target import Target

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


# -- backups ----------------------------------------------------------------------------------

def backup(target: Target, dest=None, progress: Progress = None) -> Path:
    """A checked online copy of `target` (PostgreSQL: a pg_dump archive); see `commands.backup`."""
    if target.is_server:
        return backup_postgres(target, dest)
    return backup_sqlite(target.real_path, dest, target.busy_timeout, progress)


def backup_checked(target: Target) -> str:
    """How `backup` checked its copy of `target`, in words."""
    if target.is_server:
        return "pg_restore --list reads it, every table's data is in it"
    return "integrity ok, row counts match"


def backup_under_lock(target: Target, database: peewee.Database, progress: Progress = None) -> Path:
    """A backup while `database`'s open transaction holds the migration's write lock.

    SQLite: another connection reads the last committed state, which the lock holder has
    not changed yet. PostgreSQL: pg_dump's ACCESS SHARE locks are compatible with the lock.
    """
    if target.is_server:
        return backup_postgres(target, locked=database)
    return backup(target, progress=progress)


# -- migrate ----------------------------------------------------------------------------------

def migrate(target: Target, dry_run: bool, take_backup: bool, progress: Progress) -> MigrateReport:
    """`commands.migrate` on a parsed `Target`: apply, or rehearse under `dry_run`."""
    exists = target.is_server or check_sqlite_file(target.real_path, must_exist=False)
    report = MigrateReport(database=str(target), dry_run=dry_run, created=not exists)
    start = time.monotonic()
    if dry_run and target.is_server:
        rehearse_in_transaction(target, report, progress)
    elif dry_run:
        rehearse(target, report, progress)
    else:
        apply(target, report, take_backup and exists, progress)
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


def refuse_unadoptable(target: Target) -> None:
    """Another program's tables, or thread tables of another shape: refuse before anything.

    Read-only, before the read-write open (which rewrites a rollback-journal file's header);
    the runner checks again under the write lock.
    """
    with opened(target, readonly=True) as database:
        runner = runner_for(target, database)
        pending = runner.pending()
        runner.refuse_foreign_tables([m.load() for m in pending])  # another program's tables


def run_pending(database: peewee.Database, report: MigrateReport, progress: Progress,
                target: Target, before: Callable[[list[str]], None] | None = None) -> None:
    """Apply what is pending; `before(names)` runs with the write lock held, nothing written yet."""
    runner = runner_for(target, database)

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
        runner = runner_for(target, database, MigrationOptions(rehearsal=True))
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
        with opened(replace(target, path=copy), create=True) as rehearsal:
            rehearsal.execute_sql("PRAGMA synchronous = 0")  # a throwaway copy needs no durability
            with capturing(plan_statement(report)), translate_errors(path):
                run_pending(rehearsal, report, progress, target)


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

def roll_back(target: Target, force: bool) -> RollbackReport:
    """`commands.rollback` on a parsed `Target`: refuse early, then revert under the lock."""
    start = time.monotonic()
    if not target.is_server:
        check_writable(target.real_path)  # before a backup that would be wasted
    options = MigrationOptions(force=force)
    with opened(target, readonly=True) as database:  # refuse early, before the lock and backup
        runner = runner_for(target, database, options)
        if not any(m.applied for m in runner.status()):
            raise MigrationError(f"{target}: no applied migration to roll back")
        runner.check_down()  # the latest script's own check
    saved: list[Path] = []
    with opened(target) as database:
        runner = runner_for(target, database, options)
        reverted = runner.down(before=lambda names: saved.append(
            backup_under_lock(target, database)))
    return RollbackReport(str(target), reverted, saved[0] if saved else None,
                          time.monotonic() - start)


# -- what needs a migrated database ------------------------------------------------------------

def refuse_pending(target: Target) -> None:
    """`MigrationError` naming the pending migrations (the project's own included), if any."""
    with opened(target, readonly=True) as database:
        pending = runner_for(target, database).pending()
    if pending:
        raise MigrationError(f"{target} has pending migrations "
                             f"({', '.join(m.name for m in pending)}); run `sessionorm migrate` first")


def backfill(target: Target) -> BackfillResult:
    """Every applied script's `backfill` (the project's own too), in one write transaction."""
    refuse_pending(target)
    with opened(target) as database:
        store = SessionStore.on_database(database, str(target), target=target)
        return store.migrate_session_thread_ids()
