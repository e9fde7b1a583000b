"""`verify`: is this database what the migrations and models say it should be?"""
from __future__ import annotations

from dataclasses import dataclass, field

import peewee

from .drift import schema_drift
from .models import MODELS
from .postgres import linear_plans
from .runner import MigrationRunner, file_sha256, record_name
from .thread_migration import count_plan


@dataclass
class VerifyReport:
    """`ok` when `problems` is empty; each problem is one line."""

    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

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
        for version, name in runner.History.select(runner.History.version,
                                                   runner.History.name).tuples():
            script = scripts.get(version)
            if script is not None and name != record_name(script):
                problems.append(f"migrations row {version} is named {name!r}, "
                                f"expected {record_name(script)!r}")
    for version, recorded in runner.checksums().items():
        script = scripts.get(version)
        if script is not None and file_sha256(script.path) != recorded:
            problems.append(f"migration script {script.path} was edited after it was applied "
                            "(sha256 differs)")
    return problems


def integrity_problems(db: peewee.Database) -> list[str]:
    if isinstance(db, peewee.PostgresqlDatabase):
        return postgres_integrity_problems(db)
    if not isinstance(db, peewee.SqliteDatabase):
        return []
    problems = [f"integrity_check: {r[0]}" for r in db.execute_sql("PRAGMA integrity_check")
                if r[0] != "ok"]
    problems += [f"foreign_key_check: {t} rowid {rowid} references missing {parent}"
                 for t, rowid, parent, _ in db.execute_sql("PRAGMA foreign_key_check")]
    return problems


def postgres_integrity_problems(db: peewee.Database) -> list[str]:
    """PostgreSQL's twin of foreign_key_check: unvalidated constraints and orphan rows.

    Enforced constraints make orphans impossible; they appear only where a constraint was
    added NOT VALID, or triggers were disabled during a bulk load.
    """
    problems = [f"constraint {name} on {table} is NOT VALID (never checked against old rows)"
                for table, name in db.execute_sql(
                    "SELECT conrelid::regclass::text, conname FROM pg_catalog.pg_constraint"
                    " WHERE NOT convalidated AND connamespace = current_schema()::regnamespace"
                    " ORDER BY 1, 2")]
    foreign_keys = [(table, fk) for table in db.get_tables() for fk in db.get_foreign_keys(table)]
    with linear_plans(db):  # one hash anti-join per foreign key, statistics or not
        for table, fk in foreign_keys:
            orphans = db.execute_sql(orphans_sql(table, fk)).fetchone()[0]
            if orphans:
                problems.append(f"foreign key check: {orphans} rows of {table} reference missing "
                                f"{fk.dest_table} ({fk.column} -> {fk.dest_column})")
    return problems


def orphans_sql(table: str, fk: peewee.ForeignKeyMetadata) -> str:
    """Rows of `table` whose foreign key `fk` finds no parent row (an anti-join)."""
    return (f'SELECT count(*) FROM "{table}" c WHERE c."{fk.column}" IS NOT NULL AND NOT EXISTS'
            f' (SELECT 1 FROM "{fk.dest_table}" p WHERE p."{fk.dest_column}" = c."{fk.column}")')


def data_problems(db: peewee.Database) -> list[str]:
    tables = set(db.get_tables())
    if not {"sessions", "threads", "thread_messages"} <= tables:
        return []
    missing = count_plan(db).migrated
    if missing:
        return [f"{missing} sessions with a legacy threadId have no migrated thread"]
    return []


def verify_database(db: peewee.Database, runner: MigrationRunner | None = None,
                    models=MODELS) -> VerifyReport:
    """Run every check; nothing is written."""
    runner = runner or MigrationRunner(db)
    report = VerifyReport()
    for name, check in (("migrations", lambda: migration_problems(runner)),
                        ("schema", lambda: schema_drift(db, models)),
                        ("integrity", lambda: integrity_problems(db)),
                        ("data", lambda: data_problems(db))):
        report.checks.append(name)
        report.problems.extend(check())
    return report
