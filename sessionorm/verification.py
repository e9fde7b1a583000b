"""`verify`: is this database what the migrations and models say it should be?

Problems (lost data, missing indexes, integrity, edited scripts) make it fail; notes
(harmless differences, work a command can do) are printed and pass.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import peewee

from .backends import backend_for, backend_of
from .database import first_line, is_corrupt
from .drift import drift
from .errors import DatabaseDamagedError
from .legacy_threads import HAS_THREAD_ID, NOT_YET_MIGRATED, NOT_YET_MIGRATED_PG
from .models import AGENT_TABLES, MODELS, SEARCH_TABLES
from .runner import MigrationRunner, record_name, runner_for
from .target import Target
from .thread_record import (
    LOST_SHOWN,
    RECORD,
    RENAMES,
    SHOWN,
    app_duplicates_line,
    bare_ids_line,
    data_counts_sql,
    late_line,
    lost_line,
    twice_line,
    unmatched_line,
)


@dataclass
class VerifyReport:
    """`ok` when `problems` is empty; each problem and each note is one line.

    `exercise` holds the checklist of `verify --exercise`: (step, passed, detail).
    """

    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exercise: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def migration_problems(runner: MigrationRunner) -> list[str]:
    problems = []
    scripts = {m.idx: m for m in runner.migrations()}
    for migration in runner.status():
        if migration.path is None:
            problems.append(f"migration {migration.name} is recorded but has no script")
        elif not migration.applied:
            problems.append(f"migration {migration.name} is not applied")
    if runner.History.table_exists():
        for version, name in runner.History.select(runner.History.version, runner.History.name).tuples():
            script = scripts.get(version)
            if script is not None and name != record_name(script):
                problems.append(
                    f"migrations row {version} is named {name!r}, expected {record_name(script)!r}"
                )
    for version, recorded in runner.checksums().items():
        script = scripts.get(version)
        if script is not None and recorded not in runner.accepted_sha256(script):
            problems.append(
                f"migration script {script.path} was edited after it was applied (sha256 differs)"
            )
    return problems


def not_yet_migrated(db: peewee.Database) -> str:
    """The data step's "still to migrate" condition in the shape the planner keeps linear."""
    return NOT_YET_MIGRATED_PG if backend_of(db).hash_anti_joins else NOT_YET_MIGRATED


def data_check(db: peewee.Database, runner: MigrationRunner) -> tuple[list[str], list[str]]:
    """(problems, notes) about migrated threads, from the record of them (`thread_record`).

    Before the migration that makes the thread tables (the runner's `adopter("threads")`)
    has run, the sessions it would give a thread are counted; before the record exists (a
    migration is pending, which `migrations` names), nothing is judged.
    """
    tables = set(db.get_tables())
    if not {"sessions", "threads", "thread_messages"} <= tables:
        return [], []
    with backend_of(db).linear_plans():  # PostgreSQL: hash anti-joins, statistics or not
        if RECORD not in tables:
            if runner.is_recorded(runner.adopter("threads")):
                return [], []  # migrated, not yet recorded: `migrations` names what is pending
            missing = db.execute_sql(
                f"SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID} AND {not_yet_migrated(db)}"
            ).fetchone()[0]
            return (
                [f"{missing} sessions with a legacy threadId have no migrated thread"] if missing else []
            ), []

        lost, twice, app_duplicates, late, unmatched, since, bare_ids = db.execute_sql(
            data_counts_sql(bare_ids=RENAMES in tables)
        ).fetchone()
        shown = [row[0] for row in db.execute_sql(LOST_SHOWN.format(shown=SHOWN))] if lost else []
    notes = [unmatched_line(unmatched, since)] if unmatched else []
    found = [(late_line, late), (twice_line, twice), (app_duplicates_line, app_duplicates)]
    notes += [line(n) for line, n in [*found, (bare_ids_line, bare_ids)] if n]
    return ([lost_line(lost, shown)] if lost else []), notes


# Agent sessions whose thread is in another orchestrator session than the one they name.
AGENT_THREAD_ELSEWHERE = (
    f'SELECT count(*) FROM {AGENT_TABLES[0]} a JOIN threads t ON t.id = a."threadId"'
    ' WHERE t."sessionId" <> a."sessionId"'
)


def recorded_maker(runner: MigrationRunner, table: str) -> str | None:
    """The name of the applied script that made `table` (None while it is pending: then
    `migrations` names it, and a missing table is no problem of its own)."""
    maker = runner.adopter(table)
    return maker.name if maker is not None and runner.is_recorded(maker) else None


def agent_problems(db: peewee.Database, runner: MigrationRunner) -> list[str]:
    """The agent tables (`agent_memory`): present once the script that makes them is recorded,
    and each agent session's thread in its own orchestrator session."""
    tables = set(db.get_tables())
    missing = [table for table in AGENT_TABLES if table not in tables]
    if missing:
        maker = recorded_maker(runner, AGENT_TABLES[0])
        return [f"table {table} is missing (migration {maker} made it)" for table in missing] if maker else []
    elsewhere = db.execute_sql(AGENT_THREAD_ELSEWHERE).fetchone()[0]
    if not elsewhere:
        return []
    if elsewhere == 1:
        return ["1 agent session's thread belongs to another session"]
    return [f"{elsewhere} agent sessions' threads belong to other sessions"]


def search_check(db: peewee.Database, runner: MigrationRunner) -> tuple[list[str], list[str]]:
    """The search index (migration 7): present once its script is recorded, agreeing with the
    messages, nothing stale; messages not indexed yet are a note."""
    search = backend_of(db).search
    if not search.present():
        maker = recorded_maker(runner, SEARCH_TABLES[1])
        return ([f"the search index is missing (migration {maker} made it)"] if maker else []), []
    return search.check()


def data_checks(db: peewee.Database, runner: MigrationRunner) -> tuple[list[str], list[str]]:
    """(problems, notes) about the data: migrated threads, agent sessions, the search index."""
    problems, notes = data_check(db, runner)
    found, noted = search_check(db, runner)
    return problems + agent_problems(db, runner) + found, notes + noted


def verify_database(
    db: peewee.Database,
    runner: MigrationRunner | None = None,
    models: Iterable[type[peewee.Model]] = MODELS,
    progress: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Run every check; nothing is written.

    A damaged file is an answer, not a crash: a check that cannot read what it needs
    (SQLITE_CORRUPT) becomes a problem, and the other checks, integrity_check's own list
    included, still run. `progress` hears each step as it starts, then its seconds.
    """
    runner = runner or runner_for(None, db)  # the shipped scripts alone
    report = VerifyReport()
    backend = backend_of(db)

    def schema() -> tuple[list[str], list[str]]:
        found = drift(db, models)
        return found.problems, found.notes

    for name, check in (
        ("migrations", lambda: (migration_problems(runner), [])),
        ("schema", schema),
        ("integrity", lambda: (backend.integrity_problems(), [])),
        ("data", lambda: data_checks(db, runner)),
    ):
        report.checks.append(name)
        tell = None if progress is None else (lambda s, n=name: progress(f"verify: {n}: {s:.0f} s"))
        if tell:
            tell(0)
        try:
            with backend.reporting(tell):
                problems, notes = check()
        except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
            if not is_corrupt(exc):
                raise
            problems, notes = [f"{name} could not be checked: {first_line(exc)}"], []
        report.problems.extend(problems)
        report.notes.extend(notes)
    return report


def damaged_report(target: Target, error: DatabaseDamagedError) -> VerifyReport:
    """`verify`'s answer for a file too damaged to open: the damage, and what the engine's own
    check finds (as much as it can read), as problems."""
    report = VerifyReport(checks=["integrity"])
    report.problems.append(error.reason or str(error))
    report.problems += [f"integrity_check: {line}" for line in backend_for(target).damage(target)]
    return report
