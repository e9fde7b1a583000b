"""`sessionorm` command line: thin wrappers over `sessionorm.commands`.

Exit codes: 0 clean; 1 an answer that is not clean (pending, problems, drift); 2 usage
errors and operational failures, printed as one line on stderr (a traceback only under
--verbose). No command prompts, so scripts can run them with stdin closed; a closed stdout
(`… | head -1`) is ignored quietly and the command keeps its exit code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import click

from . import commands
from .backends.search import CLOSE, OPEN
from .database import DEFAULT_BUSY_TIMEOUT, scrub
from .documents import dumps
from .errors import SessionormError, ValidationError
from .models import ROLES
from .moments import parse_moment
from .pruning import check_status as check_prune_status
from .sql_log import TimedPrinter, capturing
from .store import SearchHit
from .target import Target
from .validation import check_busy_timeout

FAILED = 2  # usage errors and operational failures; 1 is an answer that is not clean
INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class Group(click.Group):
    """Turns any error below into one clear line, exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:  # Ctrl-C: the transaction was rolled back; click would say "Aborted!"
            click.echo("error: interrupted", err=True)
            ctx.exit(INTERRUPTED)
        except Exception as exc:  # the edge of the program: nothing may escape as a traceback
            urls = ctx.meta.get("urls", ())  # their passwords never reach the terminal
            if ctx.meta.get("verbose"):
                click.echo(scrub(traceback.format_exc(), *urls), err=True, nl=False)
            text = str(exc) if isinstance(exc, SessionormError) else f"{type(exc).__name__}: {exc}"
            # One line: a driver's DETAIL, HINT and query context go under --verbose.
            line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            line = scrub(line, *urls)
            click.echo(f"error: {line}", err=True)
            if ctx.meta.get("json"):  # a script reading stdout gets a document too
                emit({"error": line, "exit": FAILED})
            if ctx.meta.get("verbose"):
                for line in getattr(exc, "details", ()):  # e.g. every integrity_check line
                    click.echo(f"  {scrub(str(line), *urls)}", err=True)
            ctx.exit(FAILED)


class Seconds(click.ParamType):
    """A finite number of seconds >= 0."""

    name = "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{str(value)[:80]!r} is not a number of seconds", param, ctx)
        try:
            return check_busy_timeout(seconds)  # the API's own rule
        except ValidationError:
            self.fail(f"{value!r} is not a finite number of seconds >= 0", param, ctx)


def wants_json() -> bool:
    """Whether the command runs under `--json`: one JSON document on stdout, no other output."""
    return bool(click.get_current_context().meta.get("json"))


def emit(value: Any) -> None:
    """Print `value` as the command's one JSON document (`documents.document`)."""
    click.echo(dumps(value))


JSON_OPTION = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document on stdout: the report's fields (see README); exit codes unchanged.",
)


def json_output(fn: Callable) -> Callable:
    """`--json` on a command: noted in `ctx.meta["json"]` (`wants_json()`), not passed on."""

    @JSON_OPTION
    @functools.wraps(fn)
    def wrapper(as_json: bool, **kwargs: Any) -> Any:
        click.get_current_context().meta["json"] = as_json
        return fn(**kwargs)

    return wrapper


def chosen_database(db_path: str | None, db_url: str | None) -> Target:
    """Where the database is: --db-path / --db-url, $SESSIONORM_DB_URL, $AMPSM_DB_PATH, the default.

    An environment default never conflicts with an explicit option.
    """
    for value, option in ((db_path, "--db-path"), (db_url, "--db-url")):
        if value is not None and not value.strip():
            raise click.UsageError(
                f"{option} is empty (an unset variable?): name the database, or leave the option out"
            )
    if db_path is not None and db_url is not None:
        raise click.UsageError("give --db-path or --db-url, not both")
    if db_url is not None:
        return Target.from_url(db_url)
    if db_path is not None:
        return Target.from_path(db_path)
    try:
        return Target.default()
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None


def database_options(fn: Callable) -> Callable:
    """--db-path / --db-url / --busy-timeout / --migrations-dir / --verbose / --json, on every command."""

    @click.option(
        "--db-path",
        type=click.Path(dir_okay=True),
        help="SQLite file. Default, in order: $SESSIONORM_DB_URL, $AMPSM_DB_PATH, "
        "~/.config/ampsm/sessions.sqlite.",
    )
    @click.option(
        "--db-url",
        help="Database URL instead of a path (sqlite:///file.db, postgresql://…); "
        "wins over the environment like --db-path.",
    )
    @click.option(
        "--busy-timeout",
        type=Seconds(),
        default=None,
        help=f"Seconds to wait for another writer's lock (default {DEFAULT_BUSY_TIMEOUT:g}, "
        "or a SQLite URL's ?timeout=).",
    )
    @click.option(
        "--migrations-dir",
        type=click.Path(file_okay=False),
        envvar="SESSIONORM_MIGRATIONS_DIR",
        help="Your own migration scripts, run after the shipped ones (default: $SESSIONORM_MIGRATIONS_DIR).",
    )
    @click.option("-v", "--verbose", is_flag=True, help="Show SQL, timings and tracebacks.")
    @json_output
    @functools.wraps(fn)
    def wrapper(
        db_path: str | None,
        db_url: str | None,
        busy_timeout: float | None,
        verbose: bool,
        migrations_dir: str | None,
        **kwargs: Any,
    ) -> Any:
        ctx = click.get_current_context()
        ctx.meta["verbose"] = verbose
        # makemigration writes there (creating it); for the others a missing folder is a typo
        if migrations_dir and ctx.info_name != "makemigration" and not os.path.isdir(migrations_dir):
            raise click.BadParameter(f"no folder {migrations_dir!r}", param_hint="--migrations-dir")
        ctx.meta["urls"] = [db_url or os.environ.get("SESSIONORM_DB_URL")]  # scrubbed from errors
        db = Target.of(chosen_database(db_path, db_url), busy_timeout, migrations_dir)
        kwargs.update(db=db, busy_timeout=busy_timeout, migrations_dir=migrations_dir)
        if verbose:
            printer = TimedPrinter(lambda line: click.echo(line, err=True))
            try:
                with capturing(printer):
                    return fn(**kwargs)
            finally:
                printer.flush()
        return fn(**kwargs)

    return wrapper


class ProgressLine:
    """One line on stderr, rewritten in place while a long step runs (terminals only)."""

    def __init__(self) -> None:
        self.used = False
        self.width = 0  # of the line shown, so a shorter one clears its tail

    def __call__(self, text: str) -> None:
        self.used = True
        line = f"  {text} …"
        click.echo(f"\r{line.ljust(self.width)}", err=True, nl=False)
        self.width = len(line)

    def done(self) -> None:
        if self.used:
            click.echo("", err=True)


def progress_printer() -> ProgressLine | None:
    return ProgressLine() if sys.stderr.isatty() else None


@contextlib.contextmanager
def showing_progress() -> Iterator[ProgressLine | None]:
    """A progress line on a terminal (None elsewhere), ended before the command's output."""
    progress = progress_printer()
    try:
        yield progress
    finally:
        if progress:
            progress.done()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sessionorm")
def cli() -> None:
    """Store agent sessions, threads and messages; upgrade legacy orchestrator databases.

    \b
    The database, in order: --db-path / --db-url; $SESSIONORM_DB_URL; $AMPSM_DB_PATH;
    ~/.config/ampsm/sessions.sqlite. Your own migrations: --migrations-dir, else
    $SESSIONORM_MIGRATIONS_DIR.
    Exit codes: 0 clean; 1 pending / problems / drift; 2 usage errors and failures.
    """


@cli.command()
@database_options
@click.option("--backup", "take_backup", is_flag=True, help="Back the database up first.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def migrate(
    db: str, busy_timeout: float, migrations_dir: str | None, take_backup: bool, dry_run: bool
) -> None:
    """Apply pending migrations (creates the database if the path does not exist)."""
    progress = progress_printer()
    try:
        report = commands.migrate(
            db,
            dry_run=dry_run,
            backup=take_backup,
            busy_timeout=busy_timeout,
            progress=progress,
            migrations_dir=migrations_dir,
        )
    finally:
        if progress:
            progress.done()
    if wants_json():
        emit(report)
        return
    if dry_run:
        print_plan(report)
        return
    if report.created:
        click.echo(f"created new database {db}")
    if report.other_tables:
        click.echo(
            f"note: {db} had no sessions table; the orchestrator's tables were added "
            f"next to its {len(report.other_tables)} other table(s): "
            f"{', '.join(report.other_tables)}"
        )
    if report.backup:
        click.echo(f"backup: {report.backup} (checked: {report.backup_checked})")
    if report.indexed:
        click.echo(f"search index: {report.indexed:,} messages indexed")
    if not report.pending:
        click.echo(f"{db}: up to date, nothing to migrate")
        return
    for name in report.applied:
        click.echo(f"applied {name}")
    if report.migrated is not None:
        click.echo(
            f"threads created: {report.migrated}; sessions skipped (already migrated): {report.skipped}"
        )
    click.echo(f"done: {len(report.applied)} migration(s) in {report.seconds:.2f} s")


def print_plan(report: commands.MigrateReport) -> None:
    click.echo(f"dry run: nothing will be written to {report.database}")
    if report.created:
        click.echo("the database does not exist; migrate would create it")
    if not report.pending:
        click.echo("up to date, nothing to migrate")
        return
    for name in report.pending:
        click.echo(f"pending: {name}")
    if report.other_tables:
        click.echo(
            f"note: no sessions table; the orchestrator's tables would be added next to "
            f"{len(report.other_tables)} other table(s): {', '.join(report.other_tables)}"
        )
    if report.migrated is not None:
        click.echo(f"would migrate {report.migrated} sessions, skip {report.skipped}")
    click.echo("SQL:")
    for sql in report.statements:
        click.echo(f"  {sql};")


@cli.command()
@database_options
def status(db: str, busy_timeout: float, migrations_dir: str | None) -> None:
    """List applied and pending migrations; exit 1 while any is pending."""
    rows = commands.status(db, migrations_dir, busy_timeout=busy_timeout)
    if wants_json():
        emit(rows)
    else:
        for m in rows:
            when = m.applied.isoformat() if hasattr(m.applied, "isoformat") else m.applied
            mark = "applied " if m.applied else "pending "
            click.echo(f"{mark} {m.name}" + (f"  {when}" if m.applied else ""))
    if any(not m.applied for m in rows):
        click.get_current_context().exit(1)


MODELS_OPTION = click.option(
    "--models",
    metavar="MODULE[:ATTR]",
    help="Models to compare with, importable from this folder (default: $SESSIONORM_MODELS, "
    "else sessionorm's own).",
)


@cli.command()
@database_options
@MODELS_OPTION
@click.option(
    "--exercise",
    is_flag=True,
    help="Also run the store's thread functions in a transaction that is rolled back.",
)
def verify(
    db: str, busy_timeout: float, migrations_dir: str | None, models: str | None, exercise: bool
) -> None:
    """Check schema, indexes, migration rows, integrity and foreign keys; exit 1 on problems.

    Notes (duplicate indexes, optional columns a layout lacks, sessions waiting for
    `backfill`) are printed and do not fail.
    """
    with showing_progress() as progress:
        report = commands.verify(
            db, migrations_dir, models, exercise=exercise, busy_timeout=busy_timeout, progress=progress
        )
    if wants_json():
        emit(report)
        if not report.ok:
            click.get_current_context().exit(1)
        return
    if exercise:
        click.echo("exercise (rolled back afterwards):")
        for what, passed, detail in report.exercise:
            click.echo(f"  [{'ok' if passed else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    if not report.ok:
        click.echo(f"{db}: {len(report.problems)} problem(s)")
        click.get_current_context().exit(1)
    click.echo(f"{db}: ok ({', '.join(report.checks)})")


@cli.command()
@database_options
@click.argument("query")
@click.option("--session", "session_id", help="Only this session's messages.")
@click.option("--thread", "thread_id", help="Only this thread's messages.")
@click.option("--role", type=click.Choice(ROLES), help="Only messages of this role.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many hits."
)
def search(
    db: str,
    busy_timeout: float,
    migrations_dir: str | None,
    query: str,
    session_id: str | None,
    thread_id: str | None,
    role: str | None,
    limit: int,
) -> None:
    """Search every message: words, "a phrase", OR, -excluded; exit 1 when nothing matches.

    One hit per line, best first: session, thread, when, role, and the match in context
    (highlighted on a terminal).
    """
    hits = commands.search(
        query, db, session=session_id, thread=thread_id, role=role, limit=limit, busy_timeout=busy_timeout
    )
    if wants_json():
        emit([hit_document(hit, session) for hit, session in hits])
    else:
        color = sys.stdout.isatty()
        for hit, session in hits:
            m = hit.message
            snippet = " ".join(hit.snippet.split())
            if color:
                snippet = snippet.replace(OPEN, "\x1b[1;33m").replace(CLOSE, "\x1b[0m")
            click.echo(f"{session}  {m.thread_id}  {shown_time(m.created_at)}  {m.role}: {snippet}")
    if not hits:
        click.get_current_context().exit(1)


def hit_document(hit: SearchHit, session: str) -> dict[str, Any]:
    m = hit.message
    return {
        "session": session,
        "thread": m.thread_id,
        "message": m.id,
        "idx": m.idx,
        "role": m.role,
        "created_at": shown_time(m.created_at),
        "snippet": hit.snippet,
        "rank": hit.rank,
    }


@cli.command()
@database_options
@click.argument("session_id", required=False)
@click.option("--last", type=click.IntRange(min=1), help="Only the latest N messages.")
def agents(
    db: str, busy_timeout: float, migrations_dir: str | None, session_id: str | None, last: int | None
) -> None:
    """List the agent sessions (sessionorm.agents), or print one's conversation as the app shows it.

    A session per line: its id, items, last activity, its orchestrator session and thread. With
    SESSION_ID: that session's messages, oldest first (`--last N`: the latest N).
    """
    if session_id is None:
        infos = commands.agent_sessions(db, busy_timeout=busy_timeout)
        if wants_json():
            emit(infos)
            return
        for info in infos:
            click.echo(
                f"{info.session_id}\t{info.item_count} items\tlast {shown_time(info.last_activity)}"
                f"\tsession {info.orchestrator_session_id}\tthread {info.thread_id}"
            )
        return
    info, messages = commands.agent_conversation(session_id, db, last=last, busy_timeout=busy_timeout)
    if wants_json():
        emit({"session": info, "messages": messages})
        return
    click.echo(f"agent session {info.session_id}: {info.item_count} items, thread {info.thread_id}")
    for message in messages:
        lines = message.content.splitlines() or [""]
        click.echo(f"[{message.idx}] {message.role} {shown_time(message.created_at)}: {lines[0]}")
        for line in lines[1:]:
            click.echo(f"    {line}")


@cli.command()
@database_options
@click.option("--status", help="Only sessions with this status (e.g. idle, running, done).")
@click.option("--repo", "repo_root", metavar="PATH", help="Only sessions of this repository root.")
@click.option("--since", metavar="WHEN", help="Only sessions created since: an age (30d, 12h) or a date.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many sessions.")
def sessions(
    db: str,
    busy_timeout: float,
    migrations_dir: str | None,
    status: str | None,
    repo_root: str | None,
    since: str | None,
    limit: int | None,
) -> None:
    """List sessions, newest first, with their threads, messages and last activity."""
    found = commands.sessions(
        db, status=status, repo_root=repo_root, since=since, limit=limit, busy_timeout=busy_timeout
    )
    if wants_json():
        emit(found)
        return
    if not found:
        click.echo("no sessions", err=True)
        return
    click.echo(f"{'SESSION':<36}  {'STATUS':<14} {'THREADS':>7} {'MESSAGES':>8}  {'LAST ACTIVITY':<20}  NAME")
    for s in found:
        click.echo(
            f"{s.id:<36}  {one_line(s.status):<14} {s.thread_count:>7} {s.message_count:>8}"
            f"  {shown_time(s.last_activity):<20}  {one_line(s.name)}"
        )


@cli.command()
@database_options
@click.argument("session_id", metavar="SESSION")
def threads(db: str, busy_timeout: float, migrations_dir: str | None, session_id: str) -> None:
    """List a session's threads, the latest updated first, with their message counts."""
    session, found = commands.threads(session_id, db, busy_timeout=busy_timeout)
    if wants_json():
        emit({"session": session, "threads": found})
        return
    click.echo(f"session {session.id}: {one_line(session.name)} ({len(found)} threads)")
    if found:
        click.echo(f"{'THREAD':<38}  {'STATUS':<10} {'MESSAGES':>8}  {'UPDATED':<20}  NAME")
    for t in found:
        click.echo(
            f"{t.id:<38}  {one_line(t.status):<10} {t.message_count:>8}  {shown_time(t.updated_at):<20}"
            f"  {one_line(t.name)}"
        )


@cli.command()
@database_options
@click.argument("thread_id", metavar="THREAD")
@click.option("--last", type=click.IntRange(min=1), help="Only the latest N messages.")
def show(db: str, busy_timeout: float, migrations_dir: str | None, thread_id: str, last: int | None) -> None:
    """Print a thread's transcript: each message with its role and time, oldest first."""
    thread, session, messages = commands.transcript(thread_id, db, last=last, busy_timeout=busy_timeout)
    if wants_json():
        emit({"thread": thread, "session": session, "messages": messages})
        return
    color = sys.stdout.isatty()
    shown = (
        f"the latest {len(messages)} of " if last is not None and len(messages) < thread.message_count else ""
    )
    click.echo(
        click.style(f"# {one_line(thread.name)}", bold=True) if color else f"# {one_line(thread.name)}"
    )
    click.echo(
        f"thread {thread.id}, session {session.id} ({one_line(session.name)}); "
        f"{shown}{thread.message_count} messages"
    )
    for message in messages:
        click.echo("")
        heading = f"[{message.idx}] {message.role} · {shown_time(message.created_at)}"
        click.echo(click.style(heading, fg=ROLE_COLORS.get(message.role), bold=True) if color else heading)
        content = message.content.translate(CONTROL_PICTURES) if color else message.content
        for line in content.splitlines() or [""]:
            click.echo(f"    {line}" if line else "")


ROLE_COLORS = {"user": "cyan", "assistant": "green", "system": "yellow"}
# On a terminal, a message's control characters (an escape sequence in a model's output) are
# shown as their pictures (␛, ␀), never obeyed; newlines and tabs stay.
CONTROL_PICTURES = {c: 0x2400 + c for c in range(32) if c not in (9, 10)} | {127: 0x2421}


def one_line(value: Any) -> str:
    """A name or status on one line of a listing (newlines and tabs as spaces)."""
    return " ".join(str(value).split()) if value is not None else "-"


def shown_time(value: Any) -> str:
    """A stored timestamp in UTC as the app writes it (text it could not parse: as stored)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S") + "Z"
    return "-" if value is None else str(value)


@cli.command()
@database_options
def backfill(db: str, busy_timeout: float, migrations_dir: str | None) -> None:
    """Give sessions created after the migration with a threadId their thread."""
    result = commands.backfill(db, busy_timeout=busy_timeout)
    if wants_json():
        emit(result)
        return
    click.echo(
        f"threads created: {result.migrated}; sessions skipped (already have theirs): {result.skipped}"
    )


@cli.command("restore-threads")
@database_options
@click.option(
    "--from",
    "source",
    required=True,
    metavar="BACKUP",
    help="The backup to read: a SQLite file (e.g. from `sessionorm backup`) or a URL.",
)
@click.option("--dry-run", is_flag=True, help="List what would come back; change nothing.")
def restore_threads(
    db: str, busy_timeout: float, migrations_dir: str | None, source: str, dry_run: bool
) -> None:
    """Copy back from a backup the threads this database lost, and nothing else.

    Threads the backup holds and the database lacks, whose session is still there, with the
    messages of theirs the database lacks. Every row written since the backup stays.
    """
    click.get_current_context().meta["urls"].append(source)
    report = commands.restore_threads(source, db, dry_run=dry_run, busy_timeout=busy_timeout)
    if wants_json():
        emit(report)
        return
    verb = "would restore" if dry_run else "restored"
    for thread in report.threads:
        click.echo(f"{verb} thread {thread}")
    click.echo(
        f"{verb} {len(report.threads)} threads with {report.messages} messages from {report.backup}"
        if report.threads
        else f"nothing to restore: {report.database} has every thread of {report.backup}"
    )


@cli.command()
@database_options
@click.option("--force", is_flag=True, help="Also destroy threads and messages the migration did not create.")
def rollback(db: str, busy_timeout: float, migrations_dir: str | None, force: bool) -> None:
    """Back up, then revert the latest migration in one transaction."""
    report = commands.rollback(db, force=force, busy_timeout=busy_timeout, migrations_dir=migrations_dir)
    if wants_json():
        emit(report)
        return
    click.echo(f"backup: {report.backup}")
    for name in report.reverted:
        click.echo(f"reverted {name}")
    click.echo(f"done in {report.seconds:.2f} s")


@cli.command()
@database_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Backup file (default: <db>.backup-YYYY-MM-DD-HHMMSS).",
)
def backup(db: str, busy_timeout: float, migrations_dir: str | None, output: str | None) -> None:
    """Write a checked online backup of the database."""
    with showing_progress() as progress:
        path = commands.backup(db, output, busy_timeout=busy_timeout, progress=progress)
    if wants_json():
        emit({"backup": path, "checked": commands.backup_checked(db)})
        return
    click.echo(f"backup: {path}")


@cli.command()
@click.option(
    "--from",
    "source",
    required=True,
    metavar="PATH|URL",
    help="The migrated database to copy: a SQLite file or a URL (sqlite:///…, postgresql://…).",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="PATH|URL",
    help="Where to copy it: a new (or empty) SQLite file, or an empty PostgreSQL database.",
)
@click.option(
    "--busy-timeout",
    type=Seconds(),
    default=None,
    help=f"Seconds to wait for another connection's lock (default {DEFAULT_BUSY_TIMEOUT:g}).",
)
@click.option(
    "--migrations-dir",
    type=click.Path(file_okay=False, exists=True),
    envvar="SESSIONORM_MIGRATIONS_DIR",
    help="Your own migration scripts, applied to the source (default: $SESSIONORM_MIGRATIONS_DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show SQL, timings and tracebacks.")
@json_output
def copy(
    source: str, target: str, busy_timeout: float | None, migrations_dir: str | None, verbose: bool
) -> None:
    """Copy a migrated database, every table, into a new one: SQLite and PostgreSQL either way.

    The copy appears complete or not at all, after row counts and checksums of every table
    were compared on both sides.
    """
    ctx = click.get_current_context()
    ctx.meta["verbose"] = verbose
    ctx.meta["urls"] = [source, target]  # their passwords are scrubbed from errors
    src = Target.of(source, busy_timeout, migrations_dir)
    dst = Target.of(target, busy_timeout, migrations_dir)
    printer = TimedPrinter(lambda line: click.echo(line, err=True)) if verbose else None
    with capturing(printer) if printer else contextlib.nullcontext(), showing_progress() as progress:
        try:
            report = commands.copy(src, dst, migrations_dir, busy_timeout, progress)
        finally:
            if printer:
                printer.flush()
    if wants_json():
        emit(report)
        return
    width = max(len(t.name) for t in report.tables)
    for t in report.tables:
        click.echo(
            f"{t.name:<{width}}  {t.rows:>12,} rows  checksum {t.checksum & (2**64 - 1):016x}  source = copy"
        )
    click.echo(
        f"copied {src} to {dst}: {len(report.tables)} tables, {report.rows:,} rows in "
        f"{report.seconds:.1f} s; row counts and checksums match"
    )


@cli.command()
@database_options
@MODELS_OPTION
def diff(db: str, busy_timeout: float, migrations_dir: str | None, models: str | None) -> None:
    """Print what differs between the models and the database; exit 1 on drift."""
    found = commands.drift(db, models, busy_timeout=busy_timeout)
    if wants_json():
        emit(found)
        if found.problems:
            click.get_current_context().exit(1)
        return
    for line in found.problems:
        click.echo(line)
    for note in found.notes:
        click.echo(f"note: {note}", err=True)
    if found.problems:
        click.get_current_context().exit(1)
    click.echo(f"{db}: in sync with the models")


@cli.command()
@click.argument("name")
@database_options
@MODELS_OPTION
def makemigration(
    name: str, db: str, busy_timeout: float, migrations_dir: str | None, models: str | None
) -> None:
    """Write the next numbered migration script from the diff (review it before migrating)."""
    made = commands.makemigration(name, db, models, migrations_dir, busy_timeout=busy_timeout)
    if wants_json():
        emit(made)
        return
    if made.path is None:
        click.echo("models and database are in sync: nothing to write")
        return
    click.echo(f"wrote {made.path}")
    for line in made.destructive:
        click.echo(f"destructive: {line}")
    for line in made.todos:
        click.echo(f"todo: {line}")
    click.echo("review it, then: sessionorm migrate --dry-run, then sessionorm migrate --backup")


@cli.command("export")
@database_options
@click.option(
    "--session", "session_ids", multiple=True, metavar="ID", help="Only this session (repeat for more)."
)
@click.option(
    "--since", metavar="WHEN", help="Only sessions created since: an age (30d, 12h) or a date/time."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "markdown"]),
    default="jsonl",
    show_default=True,
    help="jsonl: every column, for `sessionorm import`; markdown: one transcript per session.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here (it appears only once complete); default: stdout.",
)
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
def export(
    db: Target,
    busy_timeout: float | None,
    migrations_dir: str | None,
    session_ids: tuple[str, ...],
    since: str | None,
    fmt: str,
    output: str | None,
    force: bool,
) -> None:
    """Export sessions with their threads and messages, streamed from one snapshot.

    JSONL (the default) carries every column and each agent item exactly: `sessionorm import`
    reads it into any migrated database. With --json, -o FILE is required (stdout is then
    the report).
    """
    if wants_json() and output is None:
        raise click.UsageError("--json needs -o FILE: without it, stdout is the export itself")
    if output is None:
        with contextlib.suppress(AttributeError, ValueError):  # a test runner's stream keeps its own
            sys.stdout.reconfigure(encoding="utf-8", newline="\n")  # type: ignore[union-attr]
    with showing_progress() as progress:
        report = commands.export_sessions(
            db,
            output if output is not None else sys.stdout,
            sessions=session_ids,
            since=since,
            format=fmt,
            force=force,
            busy_timeout=busy_timeout,
            progress=progress,
        )
    if wants_json():
        emit(report)
    elif output is not None:
        click.echo(
            f"exported {report.sessions:,} sessions, {report.threads:,} threads, {report.messages:,} "
            f"messages to {output} ({fmt}) in {report.seconds:.1f} s"
        )


@cli.command("import")
@database_options
@click.argument("file", type=click.Path(dir_okay=False))
def import_(db: Target, busy_timeout: float | None, migrations_dir: str | None, file: str) -> None:
    """Import a JSONL export into this (migrated) database, all or nothing.

    Rows present already and identical are skipped; rows present with other content are
    refused, named, and nothing is written.
    """
    with showing_progress() as progress:
        report = commands.import_sessions(
            file, db, busy_timeout=busy_timeout, progress=progress, migrations_dir=migrations_dir
        )
    if wants_json():
        emit(report)
        return
    click.echo(
        f"imported {report.sessions:,} sessions, {report.threads:,} threads, {report.messages:,} "
        f"messages, {report.agent_sessions:,} agent sessions, {report.agent_items:,} agent items; "
        f"skipped {report.skipped:,} rows present and identical; {report.seconds:.1f} s"
    )


@cli.command()
@database_options
@click.option(
    "--older-than",
    required=True,
    metavar="AGE|DATE",
    help="Sessions last active before this: an age (90d, 12h, 2w) or a date / ISO-8601 time.",
)
@click.option(
    "--status", "only_status", metavar="S", help="Only sessions of this status (never a running one)."
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--backup", "take_backup", is_flag=True, help="Back up under the write lock before deleting.")
@click.option("--vacuum", is_flag=True, help="Give the room back afterwards and report the bytes freed.")
def prune(
    db: str,
    busy_timeout: float,
    migrations_dir: str | None,
    older_than: str,
    only_status: str | None,
    dry_run: bool,
    take_backup: bool,
    vacuum: bool,
) -> None:
    """Delete whole sessions last active before --older-than, with their threads, messages
    and the app's rows of them, in one transaction. Running sessions are never deleted.

    A session's last activity is the latest of its createdAt and lastRun, its threads'
    updatedAt and its messages' createdAt.
    """
    try:  # a bad age or a running status: a usage error
        parse_moment(older_than)
        check_prune_status(only_status)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    report = commands.prune(
        db,
        older_than,
        status=only_status,
        dry_run=dry_run,
        backup=take_backup,
        vacuum=vacuum,
        busy_timeout=busy_timeout,
    )
    if wants_json():
        emit(report)
        return
    verb = "would delete" if dry_run else "deleted"
    if dry_run:
        click.echo(f"dry run: nothing will be written to {report.database}")
    if report.backup:
        click.echo(f"backup: {report.backup} (checked: {report.backup_checked})")
    for s in report.sessions:
        click.echo(
            f"{verb} session {s.id}  {s.name!r}  {s.status}  last active {s.last_activity}  "
            f"{s.threads} threads  {s.messages} messages"
        )
    if report.running_kept:
        click.echo(
            f"kept {len(report.running_kept)} old session(s) that are running: "
            f"{', '.join(report.running_kept)}"
        )
    if report.unreadable_kept:
        click.echo(
            f"kept {len(report.unreadable_kept)} session(s) whose last activity is not a time: "
            f"{', '.join(report.unreadable_kept)}"
        )
    if not report.sessions:
        click.echo(f"nothing to prune: no session last active before {report.cutoff.isoformat()}")
    else:
        rows = ", ".join(f"{table} {n:,}" for table, n in report.tables.items())
        click.echo(
            f"{verb} {len(report.sessions)} session(s) last active before {report.cutoff.isoformat()}: {rows}"
        )
    if report.vacuumed:
        click.echo(
            f"vacuum: {report.bytes_freed:,} bytes freed ({report.bytes_before:,} -> {report.bytes_after:,})"
        )


@cli.command()
@database_options
@click.argument("backup_file", metavar="BACKUP", type=click.Path(dir_okay=False))
def restore(db: str, busy_timeout: float, migrations_dir: str | None, backup_file: str) -> None:
    """Replace the whole database with BACKUP (from `sessionorm backup`), keeping the replaced one.

    BACKUP is checked first. SQLite: one write transaction on the live file, refused while
    another process writes. PostgreSQL: restored into a new database, then renamed into
    place, refused while another process is connected. All or nothing.
    """
    with showing_progress() as progress:
        report = commands.restore(backup_file, db, busy_timeout=busy_timeout, progress=progress)
    if wants_json():
        emit(report)
        return
    if report.kept:
        click.echo(f"kept the replaced database as {report.kept}")
    rows = sum(report.tables.values())
    click.echo(f"restored {report.database} from {report.backup}: {len(report.tables)} tables, {rows:,} rows")
    if report.pending:
        click.echo(
            f"note: the backup predates {len(report.pending)} migration(s) ({', '.join(report.pending)}); "
            "run `sessionorm migrate`"
        )


class QuietWhenClosed:
    """stdout that, once its reader has gone (`| head -1`), drops the rest of the output."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        # later writes, and the interpreter's own flush at exit, go to /dev/null
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def standard_streams_open() -> None:
    """Give a closed stdin, stdout or stderr (`>&-`) the null device: otherwise the next file
    opened, the database itself, would get its descriptor, and output would go into it."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def json_error(message: str, code: int) -> None:
    """Under `--json`, an error found before the command ran is a document on stdout too."""
    if "--json" in sys.argv[1:]:
        emit({"error": message, "exit": code})


def main() -> None:
    """Console-script entry point: one line for every error, Ctrl-C is exit 130."""
    standard_streams_open()
    sys.stdout = QuietWhenClosed(sys.stdout)
    try:
        code = cli.main(prog_name="sessionorm", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("error: interrupted", err=True)
        code = INTERRUPTED
    except click.UsageError as exc:  # click shows three lines (usage, hint, error): one
        hint = f" (see sessionorm {exc.ctx.info_name if exc.ctx and exc.ctx.parent else ''} --help)"
        click.echo(f"error: {exc.format_message()}{hint.replace('  ', ' ')}", err=True)
        code = exc.exit_code
        json_error(exc.format_message(), code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        code = exc.exit_code
        json_error(exc.format_message(), code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
