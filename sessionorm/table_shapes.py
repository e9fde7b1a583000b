"""Existing tables against the models, column by column and constraint by constraint.

What `playhouse.schema_diff.diff_models` cannot see: column types (by SQLite affinity), NOT
NULL, defaults, the UNIQUE(threadId, idx) constraint, the role CHECK and the ON DELETE CASCADE
foreign keys. `foreign_tables` refuses a table to adopt on these differences, before any
migration runs; `drift` reports them for `verify` and `diff`, and `scaffold` writes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import peewee

from .backends import backend_of
from .declared_types import affinity, without_cast
from .models import MODELS, ROLES, Session, ThreadMessage

ORCHESTRATOR_TABLE = Session._meta.table_name  # legacy layouts carry extra columns here


def expected_affinities(field: peewee.Field) -> set[str]:
    if isinstance(field, peewee.BooleanField):
        return {"NUMERIC", "INTEGER"}  # BOOLEAN in legacy DDL, INTEGER from peewee
    if isinstance(field, peewee.ForeignKeyField):
        return expected_affinities(field.rel_field)
    return {affinity(field.field_type if field.field_type != "AUTO" else "INTEGER")}


def normalise_default(value: str | None) -> str | None:
    if value is None:
        return None
    return without_cast(value.strip())


def expected_default(field: peewee.Field) -> str | None:
    """The DEFAULT a field declares for the database (a Python-side `default=` is not one)."""
    for constraint in field.constraints or ():
        match = re.match(r"\s*DEFAULT\s+(.+)$", getattr(constraint, "sql", ""), re.I | re.S)
        if match:
            return match.group(1).strip()
    return None


def constant_default_sql(field: peewee.Field) -> str | None:
    """The SQL DEFAULT that stands for a NOT NULL field's constant Python `default=`.

    `makemigration` gives such a column that SQL default, so that rows inserted by code
    that does not know the column (the store, the orchestrator) still fit.
    """
    value = field.default
    if field.null or value is None or callable(value) or expected_default(field) is not None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return None


def same_default(want: str | None, have: str | None) -> bool:
    return (want or "").lower() == (have or "").lower() if want and have else want == have


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
            return (
                f"change {where}: database {'NULL' if self.have else 'NOT NULL'}, "
                f"model {'NULL' if self.want else 'NOT NULL'}"
            )
        return f"change default {where}: database {self.have}, model {self.want}"


def existing(
    db: peewee.Database, models: Iterable[type[peewee.Model]]
) -> list[tuple[type[peewee.Model], str]]:
    """(model, table name) for each model whose table the database has."""
    tables = set(db.get_tables())
    return [(m, m._meta.table_name) for m in models if m._meta.table_name in tables]


def column_differences(
    db: peewee.Database, models: Iterable[type[peewee.Model]] = MODELS
) -> list[ColumnChange]:
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
            if want is None and same_default(constant_default_sql(field), have):
                continue  # the SQL twin of its Python default, as makemigration writes it
            if not same_default(want, have) and not (want is None and table == ORCHESTRATOR_TABLE):
                changes.append(ColumnChange("default", table, field, have, want))
    return changes


def constraint_differences(db: peewee.Database, models: Iterable[type[peewee.Model]] = MODELS) -> list[str]:
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
        if not has_role_check(db, table):
            lines.append(f"missing CHECK (role IN ('user','assistant','system')) on {table}")
    return lines


# Either spelling: sessionorm's `IN ('user','assistant','system')`, the orchestrator's with
# spaces after the commas; PostgreSQL shows it as `role = ANY (ARRAY['user'::text, …])`.
ROLE_CHECK = re.compile(
    r"""CHECK\s*\(\s*\(?\s*"?role"?\s*(?:IN\s*\(|=\s*ANY\s*\(\s*\(?\s*ARRAY\s*\[)\s*"""
    + r"\s*,\s*".join(rf"'{role}'(?:::\w+(?:\s+\w+)?)?" for role in ROLES)
    + r"\s*[\])]",
    re.I,
)


def has_role_check(db: peewee.Database, table: str) -> bool:
    """Whether `table` keeps its CHECK that role is one of user, assistant, system."""
    return any(ROLE_CHECK.search(text or "") for text in backend_of(db).catalog.check_texts(table))


def db_on_delete(db: peewee.Database, table: str, column: str) -> str | None:
    return backend_of(db).catalog.on_delete(table, column)
