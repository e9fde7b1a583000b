"""One plain function per command: the Python API and the CLI are the same thing.

Each function turns its arguments into a `Target` and calls the module that does the work
(`planning` for migrating, rolling back and backing up; `verification`, `drift`, `transfer`,
`thread_restore`, `scaffold`); every database is opened through `backends.opened`, and every
runner built by `runner.runner_for`, with the project's own scripts.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from playhouse.migrations import Migration

from . import planning, pruning, restoring
from .agent_memory import AgentMemory, AgentSessionInfo
from .backends import backend_for, opened
from .copy.checks import CopyReport
from .copy.transfer import copy_database
from .drift import Drift
from .drift import drift as schema_drift_report
from .errors import DatabaseDamagedError, MigrationError
from .exercise import Step
from .exercise import exercise as exercise_store
from .exporting import ExportReport, export_database
from .importing import ImportReport, import_file
from .migration_options import BackfillResult
from .model_loading import load_models
from .models import Session, Thread, ThreadMessage
from .moments import parse_moment
from .planning import MigrateReport, RollbackReport
from .progress import Progress
from .pruning import PruneReport
from .restoring import DatabaseRestoreReport
from .runner import runner_for
from .scaffold import NewMigration, make_migration
from .store import SearchHit, SessionStore
from .target import Target
from .thread_restore import RestoreReport
from .thread_restore import restore_threads as restore_lost_threads
from .verification import VerifyReport, damaged_report, verify_database

Dir = str | os.PathLike | None
DB = str | os.PathLike | Target | None  # a path, a URL, a parsed Target, or None: the default


# -- search, agent memory --------------------------------------------------------------------


def search(
    query: str,
    db: DB = None,
    *,
    session: str | None = None,
    thread: str | None = None,
    role: str | None = None,
    limit: int = 20,
    busy_timeout: float | None = None,
) -> list[tuple[SearchHit, str]]:
    """The messages matching `query`, best first, each with its session's id (`SessionStore.search`);
    nothing is written."""
    with SessionStore(Target.of(db, busy_timeout), readonly=True) as store:
        hits = store.search(query, session=session, thread=thread, role=role, limit=limit)
        sessions: dict[str, str] = {}
        for hit in hits:
            thread_id = hit.message.thread_id
            if thread_id not in sessions:
                sessions[thread_id] = store.get_thread(thread_id).session_id
        return [(hit, sessions[hit.message.thread_id]) for hit in hits]


def agent_sessions(db: DB = None, busy_timeout: float | None = None) -> list[AgentSessionInfo]:
    """The agent sessions kept in `db` (`sessionorm.agents.SessionormSession`), the latest
    written first, with item counts, last activity and metadata; nothing is written."""
    with SessionStore(Target.of(db, busy_timeout), readonly=True) as store:
        return store.agent_sessions()


def agent_conversation(
    session_id: str, db: DB = None, last: int | None = None, busy_timeout: float | None = None
) -> tuple[AgentSessionInfo, list[ThreadMessage]]:
    """One agent session and its thread's messages as the orchestrator shows them (the latest
    `last`); `NotFoundError` for an unknown agent session."""
    with SessionStore(Target.of(db, busy_timeout), readonly=True) as store:
        info = AgentMemory(store).session(session_id)
        return info, store.get_thread_messages(info.thread_id, last=last)  # rows hold their values


# -- browse ---------------------------------------------------------------------------------


def sessions(
    db: DB = None,
    *,
    status: str | None = None,
    repo_root: str | None = None,
    since: str | dt.datetime | None = None,
    limit: int | None = None,
    busy_timeout: float | None = None,
) -> list[Session]:
    """Sessions, newest created first, each with `.thread_count`, `.message_count` and
    `.last_activity`; `since` is a datetime, a date or an age (`30d`); nothing is written."""
    moment = parse_moment(since) if isinstance(since, str) else since
    with SessionStore(Target.of(db, busy_timeout), readonly=True) as store:
        return store.list_sessions(
            status=status, repo_root=repo_root, since=moment, limit=limit, activity=True
        )


def threads(
    session_id: str, db: DB = None, busy_timeout: float | None = None
) -> tuple[Session, list[Thread]]:
    """A session and its threads, newest updated first, each with `.message_count`;
    `NotFoundError` for an unknown session; nothing is written."""
    with SessionStore(Target.of(db, busy_timeout), readonly=True) as store:
        return store.get_session(session_id), store.get_session_threads(session_id)


def transcript(
    thread_id: str, db: DB = None, last: int | None = None, busy_timeout: float | None = None
) -> tuple[Thread, Session, list[ThreadMessage]]:
    """A thread, its session and its messages in order (the latest `last`); `NotFoundError`
    for an unknown thread; nothing is written."""
    with SessionStore(Target.of(db, busy_timeout), readonly=True) as store:
        thread = store.get_thread(thread_id)
        return thread, store.get_session(thread.session_id), store.get_thread_messages(thread_id, last=last)


# -- status, verify, backup -------------------------------------------------------------------


def status(db: DB = None, migrations_dir: Dir = None, busy_timeout: float | None = None) -> list[Migration]:
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
        return runner_for(target, database).status()


def verify(
    db: DB = None,
    migrations_dir: Dir = None,
    models: str | None = None,
    exercise: bool = False,
    busy_timeout: float | None = None,
    progress: Progress = None,
) -> VerifyReport:
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
    try:
        with opened(target, readonly=True) as database:
            report = verify_database(database, runner_for(target, database), load_models(models), progress)
    except DatabaseDamagedError as exc:  # so damaged that not even its schema reads: an answer
        return damaged_report(target, exc)
    if exercise:
        report.checks.append("exercise")
        try:
            report.exercise = exercise_database(target)
        except MigrationError as exc:  # no thread tables yet
            report.exercise = [("find the store's tables", False, str(exc))]
        report.problems += [
            f"verify --exercise: {what} failed: {detail}"
            for what, passed, detail in report.exercise
            if not passed
        ]
    return report


def exercise_database(db: DB = None, busy_timeout: float | None = None) -> list[Step]:
    """Create a thread, append and read 3 messages, delete it, check migration 1's row; roll back.

    SQLite files keep their journal mode (a rollback-journal file keeps every byte).
    """
    target = Target.of(db, busy_timeout)
    with opened(target, keep_journal_mode=True) as database:
        store = SessionStore.on_database(database, str(target), target=target)
        return exercise_store(store, runner_for(target, database), str(target))


def backfill(db: DB = None, busy_timeout: float | None = None, migrations_dir: Dir = None) -> BackfillResult:
    """Give sessions with a legacy threadId and no thread theirs (the data step of migration 1).

    For sessions created after the migration; `SessionStore.migrate_session_thread_ids()`.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        busy_timeout: seconds to wait for another writer's lock.
        migrations_dir: your own migration scripts: their `backfill(db)` runs too.

    Returns:
        A `BackfillResult`: threads `migrated` now, sessions `skipped` (already had theirs).

    Raises:
        MigrationError: migrations are pending; DatabaseBusyError, DatabaseOpenError.
    """
    return planning.backfill(Target.of(db, busy_timeout, migrations_dir))


def restore_threads(
    backup_db: DB, db: DB = None, dry_run: bool = False, busy_timeout: float | None = None
) -> RestoreReport:
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
    planning.refuse_pending(target)
    report = RestoreReport(str(target), str(source), dry_run=dry_run)
    with opened(source, readonly=True) as backup_database, opened(target, readonly=dry_run) as database:
        restore_lost_threads(backup_database, database, report)
    return report


def backup(
    db: DB = None,
    dest: str | os.PathLike | None = None,
    busy_timeout: float | None = None,
    progress: Progress = None,
) -> Path:
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
    return planning.backup(Target.of(db, busy_timeout), dest, progress)


def backup_checked(db: DB = None) -> str:
    """How `backup` checks its copy of `db`, in words."""
    return backend_for(Target.of(db)).backup_checked


# -- migrate ----------------------------------------------------------------------------------


def migrate(
    db: DB = None,
    dry_run: bool = False,
    backup: bool = False,
    busy_timeout: float | None = None,
    progress: Progress = None,
    migrations_dir: Dir = None,
) -> MigrateReport:
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
    return planning.migrate(Target.of(db, busy_timeout, migrations_dir), dry_run, backup, progress)


# -- rollback ---------------------------------------------------------------------------------


def rollback(
    db: DB = None, force: bool = False, busy_timeout: float | None = None, migrations_dir: Dir = None
) -> RollbackReport:
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
    return planning.roll_back(Target.of(db, busy_timeout, migrations_dir), force)


# -- copy -------------------------------------------------------------------------------------


def copy(
    source: DB,
    target: str | os.PathLike | Target,
    migrations_dir: Dir = None,
    busy_timeout: float | None = None,
    progress: Progress = None,
) -> CopyReport:
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
    return copy_database(src, dst, progress)


# -- diff, makemigration ----------------------------------------------------------------------


def diff(db: DB = None, models: str | None = None, busy_timeout: float | None = None) -> list[str]:
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


def drift(db: DB = None, models: str | None = None, busy_timeout: float | None = None) -> Drift:
    """`diff` plus notes: harmless differences (duplicate indexes, optional legacy columns)."""
    with opened(Target.of(db, busy_timeout), readonly=True) as database:
        return schema_drift_report(database, load_models(models))


def makemigration(
    name: str,
    db: DB = None,
    models: str | None = None,
    migrations_dir: Dir = None,
    busy_timeout: float | None = None,
) -> NewMigration:
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
        shipped = [m.name for m in runner_for(target, database, own_scripts=False).pending()]
        if shipped:
            raise MigrationError(
                f"refusing to write a migration: {target} has shipped migrations "
                f"pending ({', '.join(shipped)}); run `sessionorm migrate` first, "
                "so that yours starts where they end (nothing was written)"
            )
        return make_migration(database, load_models(models), name, target.migrations_dir)


# -- export, import ---------------------------------------------------------------------------


def export_sessions(
    db: DB = None,
    output: str | os.PathLike | TextIO | None = None,
    *,
    sessions: Iterable[str] = (),
    since: str | dt.datetime | None = None,
    format: str = "jsonl",
    force: bool = False,
    busy_timeout: float | None = None,
    progress: Progress = None,
    migrations_dir: Dir = None,
) -> ExportReport:
    """Write sessions with their threads and messages as JSONL or markdown, from one snapshot.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        output: a file path (it appears only once complete; never overwritten unless
            `force`), a text stream, or None for stdout.
        sessions: only these session ids (default: every session).
        since: only sessions created at or after it: an age (`30d`) or a date / ISO-8601 time.
        format: `jsonl` (README, "Export and import": every column, the exact agent items;
            `import_sessions` reads it) or `markdown` (one transcript per session).
        force: replace an existing `output` file.
        busy_timeout: seconds to wait for another connection's lock.
        progress: called with one-line progress messages (rows so far, rate).
        migrations_dir: your own migration scripts (none may be pending).

    Returns:
        An `ExportReport`: sessions, threads, messages, agent sessions and items, path, seconds.

    Raises:
        NotFoundError: an unknown session id; ValidationError: a bad format, time, or an
        existing output file; MigrationError: pending migrations; nothing was written.
    """
    target = Target.of(db, busy_timeout, migrations_dir)
    return export_database(
        target, output, session_ids=sessions, since=since, format=format, force=force, progress=progress
    )


def import_sessions(
    file: str | os.PathLike,
    db: DB = None,
    busy_timeout: float | None = None,
    progress: Progress = None,
    migrations_dir: Dir = None,
) -> ImportReport:
    """Import a JSONL export into a migrated database (SQLite or PostgreSQL), all or nothing.

    Args:
        file: a file `export_sessions` wrote in the JSONL format.
        db: a SQLite path, a database URL, or None for the default database.
        busy_timeout: seconds to wait for another writer's lock.
        progress: called with one-line progress messages (lines so far, rate).
        migrations_dir: your own migration scripts (none may be pending).

    Returns:
        An `ImportReport`: rows written per kind, rows `skipped` (present and identical), seconds.

    Raises:
        ImportRefusedError: not an export, a bad or cut line, a column the database lacks, NUL
        in text PostgreSQL cannot hold, or rows present with other content (named); nothing
        was written. MigrationError: pending migrations; DatabaseOpenError, DatabaseBusyError.
    """
    return import_file(Target.of(db, busy_timeout, migrations_dir), file, progress)


# -- prune ------------------------------------------------------------------------------------


def prune(
    db: DB = None,
    older_than: str = "90d",
    status: str | None = None,
    dry_run: bool = False,
    backup: bool = False,
    vacuum: bool = False,
    busy_timeout: float | None = None,
) -> PruneReport:
    """Delete the sessions last active before `older_than`, with every row of theirs, in one
    transaction; running sessions are never deleted.

    A session's last activity is the latest of its `createdAt` and `lastRun`, its threads'
    `updatedAt` and its messages' `createdAt`.

    Args:
        db: a SQLite path, a database URL, or None for the default database.
        older_than: an age (`90d`, `12h`, `2w`) or a date or ISO-8601 time.
        status: only sessions of this status (a running status is refused).
        dry_run: list what would be deleted, from one snapshot, and change nothing.
        backup: back up under the write lock first, when there is something to delete.
        vacuum: afterwards give the room back (SQLite: VACUUM; PostgreSQL: VACUUM of the
            tables written) and report the bytes freed.
        busy_timeout: seconds to wait for another writer's lock.

    Returns:
        A `PruneReport`: the `sessions` (id, name, status, last activity, threads, messages),
        rows per table, the running sessions kept, the backup and the bytes freed.

    Raises:
        ValidationError: a bad age or a running status; MigrationError: migrations are
        pending; ValidationError too when another program's rows reference a session;
        BackupError, DatabaseBusyError, DatabaseOpenError.
    """
    return pruning.prune(
        Target.of(db, busy_timeout), older_than, parse_moment(older_than), status, dry_run, backup, vacuum
    )


# -- restore ----------------------------------------------------------------------------------


def restore(
    backup: str | os.PathLike,
    db: DB = None,
    busy_timeout: float | None = None,
    progress: Progress = None,
) -> DatabaseRestoreReport:
    """Replace the whole database with a checked backup, atomically, keeping the replaced one.

    The backup is checked first (integrity; a `sessions` and a `migrations` table). SQLite: one
    write transaction on the live file (refused while another process writes), the replaced
    content kept as `<db>.backup-YYYY-MM-DD-HHMMSS`. PostgreSQL: the `pg_dump` archive restored
    into a new database, checked, then renamed into place in one transaction, the replaced one
    kept as `<db>_replaced_<stamp>` (refused while another process is connected).

    Args:
        backup: a SQLite backup file, or a `pg_dump --format=custom` archive (`sessionorm backup`).
        db: a SQLite path, a database URL, or None for the default database.
        busy_timeout: seconds to wait for another writer's lock.
        progress: called with one-line progress messages.

    Returns:
        A `DatabaseRestoreReport`: the `kept` database, rows per table, migrations `pending`
        (a backup older than the code: run `sessionorm migrate`).

    Raises:
        BackupError: the backup is missing, damaged or not sessionorm's (nothing changed);
        DatabaseBusyError: another process writes or is connected (nothing changed);
        MigrationError, DatabaseOpenError.
    """
    return restoring.restore(backup, Target.of(db, busy_timeout), progress)
