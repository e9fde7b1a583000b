"""Models vs live database: `playhouse.schema_diff.diff_models` plus what it cannot see.

diff_models compares names only; this adds column types (by SQLite affinity), NOT NULL,
defaults, the UNIQUE(threadId, idx) constraint and the ON DELETE CASCADE foreign keys.
Columns and indexes that the orchestrator itself keeps on `sessions` are not drift.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import peewee
from playhouse.schema_diff import SchemaDiff, diff_models

from .models import MODELS, Session, ThreadMessage

ORCHESTRATOR_TABLE = Session._meta.table_name  # legacy layouts carry extra columns here
# Beyond the contract's indexes, for speed only: the TypeScript tool never created it, and a
# database it migrated must still verify, so its absence is not drift.
OPTIONAL_INDEXES = {("threads", ("sessionId", "updatedAt"), False)}


def affinity(declared: str) -> str:
    """SQLite's type affinity of a declared type (section 3.1 of the datatype docs)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not t or "BLOB" in t:
        return "BLOB"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def expected_affinities(field: peewee.Field) -> set[str]:
    if isinstance(field, peewee.BooleanField):
        return {"NUMERIC", "INTEGER"}  # BOOLEAN in legacy DDL, INTEGER from peewee
    if isinstance(field, peewee.ForeignKeyField):
        return expected_affinities(field.rel_field)
    return {affinity(field.field_type if field.field_type != "AUTO" else "INTEGER")}


def normalise_default(value: str | None) -> str | None:
    if value is None:
        return None
    return re.sub(r"::[\w ]+$", "", value.strip())  # PostgreSQL: 'active'::text


def expected_default(field: peewee.Field) -> str | None:
    """The DEFAULT a field declares for the database (a Python-side `default=` is not one)."""
    for constraint in field.constraints or ():
        match = re.match(r"\s*DEFAULT\s+(.+)$", getattr(constraint, "sql", ""), re.I | re.S)
        if match:
            return match.group(1).strip()
    return None


def relevant(diff: SchemaDiff, constraint_indexes: frozenset[str] = frozenset()) -> SchemaDiff:
    """Drop what the orchestrator keeps on its own table, and constraints' own indexes, from a diff."""
    return SchemaDiff(
        diff.create_tables, diff.add_columns,
        [(t, c) for t, c in diff.drop_columns if t != ORCHESTRATOR_TABLE],
        [i for i in diff.add_indexes if (i.table, i.columns, i.unique) not in OPTIONAL_INDEXES],
        [i for i in diff.drop_indexes
         if i.table != ORCHESTRATOR_TABLE and i.name not in constraint_indexes])


def constraint_indexes(db: peewee.Database) -> frozenset[str]:
    """Indexes that back a UNIQUE constraint (PostgreSQL lists them; SQLite's are hidden).

    diff_models skips SQLite's `sqlite_autoindex_*` but not PostgreSQL's `<table>_<cols>_key`,
    so UNIQUE("threadId", idx) would otherwise look like an index to drop.
    """
    if not isinstance(db, peewee.PostgresqlDatabase):
        return frozenset()
    rows = db.execute_sql(
        "SELECT i.relname FROM pg_catalog.pg_constraint c"
        " JOIN pg_catalog.pg_class i ON i.oid = c.conindid"
        " WHERE c.contype IN ('u', 'p', 'x')"
        " AND c.connamespace = current_schema()::regnamespace").fetchall()
    return frozenset(r[0] for r in rows)


def structural_diff(db: peewee.Database, models=MODELS) -> SchemaDiff:
    """diff_models without the orchestrator's own extras."""
    return relevant(diff_models(db, list(models)), constraint_indexes(db))


def describe(diff: SchemaDiff) -> list[str]:
    """One line per difference, flagging destructive steps."""
    lines = [f"create table {m._meta.table_name}" for m in diff.create_tables]
    lines += [f"add column {f.model._meta.table_name}.{f.column_name}" for f in diff.add_columns]
    lines += [f"drop column {t}.{c}  [destructive]" for t, c in diff.drop_columns]
    lines += [i.display("add") for i in diff.add_indexes]
    lines += [i.display("drop") for i in diff.drop_indexes]
    return lines


@dataclass(frozen=True)
class ColumnChange:
    """A column present on both sides that differs in `kind`: type, null or default."""

    kind: str
    table: str
    field: peewee.Field
    have: object
    want: object

    def __str__(self) -> str:
        where = f"{self.table}.{self.field.column_name}"
        if self.kind == "type":
            return f"change type {where}: database {self.have or 'none'}, model {self.want}"
        if self.kind == "null":
            return (f"change {where}: database {'NULL' if self.have else 'NOT NULL'}, "
                    f"model {'NULL' if self.want else 'NOT NULL'}")
        return f"change default {where}: database {self.have}, model {self.want}"


def existing(db: peewee.Database, models) -> list[tuple[type[peewee.Model], str]]:
    """(model, table name) for each model whose table the database has."""
    tables = set(db.get_tables())
    return [(m, m._meta.table_name) for m in models if m._meta.table_name in tables]


def column_differences(db: peewee.Database, models=MODELS) -> list[ColumnChange]:
    """Type, NOT NULL and default differences of columns present on both sides."""
    changes = []
    for model, table in existing(db, models):
        live = {c.name: c for c in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            column = live.get(field.column_name)
            if column is None:
                continue
            if affinity(column.data_type) not in expected_affinities(field):
                changes.append(ColumnChange("type", table, field, column.data_type, field.field_type))
            # The orchestrator's layouts differ in NOT NULL (`final` relaxed ampPrompt).
            if not field.primary_key and column.null != field.null and table != ORCHESTRATOR_TABLE:
                changes.append(ColumnChange("null", table, field, column.null, field.null))
            want, have = expected_default(field), normalise_default(column.default)
            if want != have and not (want is None and table == ORCHESTRATOR_TABLE):
                changes.append(ColumnChange("default", table, field, have, want))
    return changes


def constraint_differences(db: peewee.Database, models=MODELS) -> list[str]:
    """The UNIQUE and cascading foreign keys that diff_models does not look at."""
    lines = []
    for model, table in existing(db, models):
        live = {fk.column: fk for fk in db.get_foreign_keys(table)}
        for field in model._meta.sorted_fields:
            if isinstance(field, peewee.ForeignKeyField):
                fk = live.get(field.column_name)
                on_delete = fk and db_on_delete(db, table, field.column_name)
                if fk is None or fk.dest_table != field.rel_model._meta.table_name:
                    lines.append(f"missing foreign key {table}.{field.column_name}")
                elif on_delete != "CASCADE":
                    lines.append(f"foreign key {table}.{field.column_name} is not ON DELETE CASCADE")
    for _, table in existing(db, [ThreadMessage]):
        uniques = {tuple(i.columns) for i in db.get_indexes(table) if i.unique}
        if ("threadId", "idx") not in uniques:
            lines.append(f'missing UNIQUE ("threadId", idx) on {table}')
    return lines


def db_on_delete(db: peewee.Database, table: str, column: str) -> str | None:
    if isinstance(db, peewee.SqliteDatabase):
        for row in db.execute_sql(f'PRAGMA foreign_key_list("{table}")').fetchall():
            if row[3] == column:
                return row[6]
        return None
    row = db.execute_sql(
        "SELECT rc.delete_rule FROM information_schema.referential_constraints rc"
        " JOIN information_schema.key_column_usage k ON k.constraint_name = rc.constraint_name"
        " WHERE k.table_name = %s AND k.column_name = %s", (table, column)).fetchone()
    return row[0] if row else None


def schema_drift(db: peewee.Database, models=MODELS) -> list[str]:
    """Every difference between the models and the database, one line each."""
    return (describe(structural_diff(db, models))
            + [str(c) for c in column_differences(db, models)] + constraint_differences(db, models))
