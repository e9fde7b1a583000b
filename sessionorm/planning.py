"""Planning and applying migrations for the commands: `migrate`, its dry runs, `rollback`,
`backfill`, and the backups taken under a migration's write lock.

`commands.py` turns arguments into a `Target` and calls these; what is pending is decided here
only through the runner (`runner.runner_for`: the shipped scripts plus the project's own
folder), under the write lock, and every database is opened through `opening.opened`. The
runner asks the scripts what they do; nothing here knows a migration by its number.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import peewee

from .backends import backend_for, backend_of, opened
from .errors import MigrationError
from .migration_options import BackfillResult, MigrationOptions
from .models import OWN_TABLES
from .progress import Progress
from .runner import MigrationRunner, runner_for
from .sql_log import capturing
from .store import SessionStore
from .target import Target


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
    indexed: int = 0  # messages written before the search index, indexed now (migration 7)


@dataclass
class RollbackReport:
    database: str
    reverted: list[str]
    backup: Path | None
    seconds: float


# -- backups ----------------------------------------------------------------------------------


def backup(target: Target, dest: str | os.PathLike | None = None, progress: Progress = None) -> Path:
    """A checked online copy of `target` (PostgreSQL: a pg_dump archive); see `commands.backup`."""
    return backend_for(target).backup(target, dest, progress)


def backup_under_lock(target: Target, database: peewee.Database, progress: Progress = None) -> Path:
    """A backup while `database`'s open transaction holds the migration's write lock: the state
    the migration starts from (`Backend.backup`)."""
    return backend_for(target).backup(target, progress=progress, locked=database)


# -- migrate ----------------------------------------------------------------------------------


def migrate(target: Target, dry_run: bool, take_backup: bool, progress: Progress) -> MigrateReport:
    """`commands.migrate` on a parsed `Target`: apply, or rehearse under `dry_run`."""
    exists = backend_for(target).exists(target)
    report = MigrateReport(database=str(target), dry_run=dry_run, created=not exists)
    start = time.monotonic()
    if dry_run:
        rehearse(target, report, progress)
    else:
        apply(target, report, take_backup and exists, progress)
    report.seconds = time.monotonic() - start
    return report


def apply(target: Target, report: MigrateReport, take_backup: bool, progress: Progress) -> None:
    backend_for(target).check_writable(target)  # before anything opens it
    if not report.created:
        # read-only, before the read-write open rewrites a rollback-journal file's header
        refuse_unadoptable(target)
    with naming_backup(lambda: report.backup), opened(target, create=True) as database:

        def take(names: list[str]) -> None:
            report.backup = backup_under_lock(target, database, progress)
            report.backup_checked = backend_for(target).backup_checked

        run_pending(database, report, progress, target, take if take_backup else None)
        # the messages already there go into the search index (migration 7) in batches, each its
        # own write transaction: the app can write in between, and a killed build resumes here
        report.indexed = backend_of(database).search.catch_up(progress)


@contextlib.contextmanager
def naming_backup(taken: Callable[[], Path | None]) -> Iterator[None]:
    """An error raised after the backup was written says where that backup is: it holds the
    state the failed step started from."""
    try:
        yield
    except Exception as exc:
        path = taken()
        if path is not None and exc.args and isinstance(exc.args[0], str):
            exc.args = (f"{exc.args[0]} (the backup taken before it failed: {path})", *exc.args[1:])
        raise


def refuse_unadoptable(target: Target) -> None:
    """Another program's tables, or thread tables of another shape: refuse before anything.

    Read-only, before the read-write open (which rewrites a rollback-journal file's header);
    the runner checks again under the write lock.
    """
    with opened(target, readonly=True) as database:
        runner = runner_for(target, database)
        pending = runner.pending()
        runner.refuse_foreign_tables([m.load() for m in pending])  # another program's tables


def run_pending(
    database: peewee.Database,
    report: MigrateReport,
    progress: Progress,
    target: Target,
    before: Callable[[list[str]], None] | None = None,
    options: MigrationOptions | None = None,
) -> None:
    """Apply what is pending; `before(names)` runs with the write lock held, nothing written yet."""
    runner = runner_for(target, database, options)

    def tell(seconds: float) -> None:
        if progress is not None:
            progress(f"applying {', '.join(report.pending)}: {seconds:.0f} s")

    def first(names: list[str]) -> None:
        report.pending = names
        report.other_tables = other_tables(database)
        if before is not None:
            before(names)
        tell(0)

    backend = backend_of(database)
    with backend.bulk_pragmas(), backend.reporting(tell if progress else None):
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


def plan_statement(report: MigrateReport) -> Callable[[str, tuple], None]:
    """A `capturing` sink that keeps the statements that change something, with their parameters."""

    def keep(sql: str, params: tuple) -> None:
        if not sql.lstrip().upper().startswith(("SELECT", "PRAGMA", "SAVEPOINT", "RELEASE")):
            report.statements.append(sql if not params else f"{sql}  -- {list(params)!r}")

    return keep


def rehearse(target: Target, report: MigrateReport, progress: Progress) -> None:
    """Run the migrations where the backend rehearses (`Backend.rehearsal`: a temporary copy of
    a SQLite file, a rolled-back transaction on PostgreSQL) and record the SQL."""
    with backend_for(target).rehearsal(target, report.created) as rehearsal:
        # a rehearsal inside a transaction holds it, and the migration lock, for the runner
        options = MigrationOptions(rehearsal=rehearsal.in_transaction())
        with capturing(plan_statement(report)):
            run_pending(rehearsal, report, progress, target, options=options)


# -- rollback ---------------------------------------------------------------------------------


def roll_back(target: Target, force: bool) -> RollbackReport:
    """`commands.rollback` on a parsed `Target`: refuse early, then revert under the lock."""
    start = time.monotonic()
    backend_for(target).check_writable(target)  # before a backup that would be wasted
    options = MigrationOptions(force=force)
    with opened(target, readonly=True) as database:  # refuse early, before the lock and backup
        runner = runner_for(target, database, options)
        if not any(m.applied for m in runner.status()):
            raise MigrationError(f"{target}: no applied migration to roll back")
        runner.check_down()  # the latest script's own check
    saved: list[Path] = []
    with naming_backup(lambda: saved[0] if saved else None), opened(target) as database:
        runner = runner_for(target, database, options)
        reverted = runner.down(before=lambda names: saved.append(backup_under_lock(target, database)))
    return RollbackReport(str(target), reverted, saved[0] if saved else None, time.monotonic() - start)


# -- what needs a migrated database ------------------------------------------------------------


def refuse_pending(target: Target) -> None:
    """`MigrationError` naming the pending migrations (the project's own included), if any."""
    with opened(target, readonly=True) as database:
        pending = runner_for(target, database).pending()
    if pending:
        raise MigrationError(
            f"{target} has pending migrations "
            f"({', '.join(m.name for m in pending)}); run `sessionorm migrate` first"
        )


def backfill(target: Target) -> BackfillResult:
    """Every applied script's `backfill` (the project's own too), in one write transaction."""
    backend_for(target).check_writable(target)  # before anything reads it
    refuse_pending(target)
    # keep_journal_mode: a backfill with nothing to do changes nothing, not even the journal mode
    with opened(target, keep_journal_mode=True) as database:
        store = SessionStore.on_database(database, str(target), target=target)
        return store.migrate_session_thread_ids()
