"""`sessionorm` command line: thin wrappers over `sessionorm.commands`.

Errors are one line on stderr and a non-zero exit; a traceback only under --verbose.
No command prompts, so scripts can run them with stdin closed.
"""
from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from . import commands
from .database import DEFAULT_BUSY_TIMEOUT, redact, scrub
from .errors import SessionormError
from .sql_log import capturing, timed_printer


class Group(click.Group):
    """Turns any error below into one clear line, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # the edge of the program: nothing may escape as a traceback
            url = ctx.meta.get("db")
            if ctx.meta.get("verbose"):
                click.echo(scrub(traceback.format_exc(), url), err=True, nl=False)
            text = str(exc) if isinstance(exc, SessionormError) else f"{type(exc).__name__}: {exc}"
            # One line: a driver's DETAIL, HINT and query context go under --verbose.
            line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            click.echo(f"error: {scrub(line, url)}", err=True)
            ctx.exit(1)


def database_options(fn: Callable) -> Callable:
    """--db-path / --db-url / --busy-timeout / --verbose, accepted by every command."""

    @click.option("--db-path", type=click.Path(dir_okay=True), envvar="AMPSM_DB_PATH",
                  help="SQLite file (default: $AMPSM_DB_PATH or ~/.config/ampsm/sessions.sqlite).")
    @click.option("--db-url", envvar="SESSIONORM_DB_URL",
                  help="Database URL instead of a path (sqlite:///…, postgresql://…).")
    @click.option("--busy-timeout", type=float, default=DEFAULT_BUSY_TIMEOUT, show_default=True,
                  help="Seconds to wait for another writer's lock.")
    @click.option("--migrations-dir", type=click.Path(file_okay=False),
                  envvar="SESSIONORM_MIGRATIONS_DIR",
                  help="Your own migration scripts, run after the shipped ones.")
    @click.option("-v", "--verbose", is_flag=True, help="Show SQL, timings and tracebacks.")
    @functools.wraps(fn)
    def wrapper(db_path: str | None, db_url: str | None, busy_timeout: float, verbose: bool,
                migrations_dir: str | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.meta["verbose"] = verbose
        if db_path and db_url:
            raise click.UsageError("give --db-path or --db-url, not both")
        db = db_url or db_path or str(commands.default_path())
        ctx.meta["db"] = db  # its passwords are scrubbed from every error
        kwargs.update(db=db, busy_timeout=busy_timeout, migrations_dir=migrations_dir)
        if verbose:
            with capturing(timed_printer(lambda line: click.echo(line, err=True))):
                return fn(**kwargs)
        return fn(**kwargs)

    return wrapper


class ProgressLine:
    """One line on stderr, rewritten in place while a long step runs (terminals only)."""

    def __init__(self) -> None:
        self.used = False

    def __call__(self, text: str) -> None:
        self.used = True
        click.echo(f"\r  {text} …", err=True, nl=False)

    def done(self) -> None:
        if self.used:
            click.echo("", err=True)


def progress_printer() -> ProgressLine | None:
    return ProgressLine() if sys.stderr.isatty() else None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sessionorm")
def cli() -> None:
    """Store agent sessions, threads and messages; upgrade legacy orchestrator databases."""


@cli.command()
@database_options
@click.option("--backup", "take_backup", is_flag=True, help="Back the database up first.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def migrate(db: str, busy_timeout: float, migrations_dir: str | None, take_backup: bool,
            dry_run: bool) -> None:
    """Apply pending migrations (creates the database if the path does not exist)."""
    progress = progress_printer()
    try:
        report = commands.migrate(db, dry_run=dry_run, backup=take_backup, busy_timeout=busy_timeout,
                                  progress=progress, migrations_dir=migrations_dir)
    finally:
        if progress:
            progress.done()
    if dry_run:
        print_plan(report)
        return
    if report.created:
        click.echo(f"created new database {db}")
    if report.other_tables:
        click.echo(f"note: {redact(db)} had no sessions table; the orchestrator's tables were added "
                   f"next to its {len(report.other_tables)} other table(s): "
                   f"{', '.join(report.other_tables)}")
    if report.backup:
        click.echo(f"backup: {report.backup} (checked: {report.backup_checked})")
    if not report.pending:
        click.echo(f"{redact(db)}: up to date, nothing to migrate")
        return
    for name in report.applied:
        click.echo(f"applied {name}")
    if report.migrated is not None:
        click.echo(f"threads created: {report.migrated}; sessions skipped (already migrated): "
                   f"{report.skipped}")
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
        click.echo(f"note: no sessions table; the orchestrator's tables would be added next to "
                   f"{len(report.other_tables)} other table(s): {', '.join(report.other_tables)}")
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
    for m in rows:
        when = m.applied.isoformat() if hasattr(m.applied, "isoformat") else m.applied
        mark = "applied " if m.applied else "pending "
        click.echo(f"{mark} {m.name}" + (f"  {when}" if m.applied else ""))
    if any(not m.applied for m in rows):
        click.get_current_context().exit(1)


MODELS_OPTION = click.option(
    "--models", metavar="MODULE[:ATTR]",
    help="Models to compare with (default: sessionorm's own), importable from this folder.")


@cli.command()
@database_options
@MODELS_OPTION
def verify(db: str, busy_timeout: float, migrations_dir: str | None, models: str | None) -> None:
    """Check schema, indexes, migration rows, integrity and foreign keys; exit 1 on problems."""
    report = commands.verify(db, migrations_dir, models, busy_timeout=busy_timeout)
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    if not report.ok:
        click.echo(f"{redact(db)}: {len(report.problems)} problem(s)")
        click.get_current_context().exit(1)
    click.echo(f"{redact(db)}: ok ({', '.join(report.checks)})")


@cli.command()
@database_options
@click.option("--force", is_flag=True,
              help="Also destroy threads and messages the migration did not create.")
def rollback(db: str, busy_timeout: float, migrations_dir: str | None, force: bool) -> None:
    """Back up, then revert the latest migration in one transaction."""
    report = commands.rollback(db, force=force, busy_timeout=busy_timeout,
                               migrations_dir=migrations_dir)
    click.echo(f"backup: {report.backup}")
    for name in report.reverted:
        click.echo(f"reverted {name}")
    click.echo(f"done in {report.seconds:.2f} s")


@cli.command()
@database_options
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Backup file (default: <db>.backup-YYYY-MM-DD-HHMMSS).")
def backup(db: str, busy_timeout: float, migrations_dir: str | None, output: str | None) -> None:
    """Write a checked online backup of the database."""
    path = commands.backup(db, output, busy_timeout=busy_timeout)
    click.echo(f"backup: {path}")


@cli.command()
@database_options
@MODELS_OPTION
def diff(db: str, busy_timeout: float, migrations_dir: str | None, models: str | None) -> None:
    """Print what differs between the models and the database; exit 1 on drift."""
    lines = commands.diff(db, models, busy_timeout=busy_timeout)
    for line in lines:
        click.echo(line)
    if lines:
        click.get_current_context().exit(1)
    click.echo(f"{redact(db)}: in sync with the models")


@cli.command()
@click.argument("name")
@database_options
@MODELS_OPTION
def makemigration(name: str, db: str, busy_timeout: float, migrations_dir: str | None,
                  models: str | None) -> None:
    """Write the next numbered migration script from the diff (review it before migrating)."""
    made = commands.makemigration(name, db, models, migrations_dir, busy_timeout=busy_timeout)
    if made.path is None:
        click.echo("models and database are in sync: nothing to write")
        return
    click.echo(f"wrote {made.path}")
    for line in made.destructive:
        click.echo(f"destructive: {line}")
    for line in made.todos:
        click.echo(f"todo: {line}")
    click.echo("review it, then: sessionorm migrate --dry-run, then sessionorm migrate --backup")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sessionorm")


if __name__ == "__main__":  # pragma: no cover
    main()
