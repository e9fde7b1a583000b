"""Models vs live database: `playhouse.schema_diff.diff_models` plus what it cannot see.

diff_models compares column names only, and indexes by columns and uniqueness (a second
index of one shape looks like one to drop); this adds column types (by SQLite affinity),
NOT NULL, defaults, the UNIQUE(threadId, idx) constraint, the ON DELETE CASCADE foreign
keys, and indexes compared by shape (see `indexes`). Columns and indexes that the
orchestrator itself keeps on `sessions` are not drift; what is harmless is a note.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import peewee
from playhouse.schema_diff import IndexDiff, SchemaDiff, diff_models

from .backends import backend_of
from .indexes import IndexComparison, NamedIndex, compare_indexes
from .models import MODELS
from .table_shapes import ORCHESTRATOR_TABLE, column_differences, constraint_differences

# Columns of `sessions` that some orchestrator layouts never had: their absence is a note.
OPTIONAL_SESSION_COLUMNS = (
    "followUpPrompts",
    "scriptCommand",
    "modelOverride",
    "lastRun",
    "notes",
    "contextIncluded",
)


@dataclass
class Drift:
    """Differences that need a migration (`problems`) and harmless ones (`notes`)."""

    problems: list[str]
    notes: list[str]


def index_diff(index: NamedIndex) -> IndexDiff:
    """playhouse's form of an index, its declared name kept for `template`.

    Partial and expression indexes get no columns, as in `diff_models`: `template` then
    leaves a TODO rather than create a plain index in their place.
    """
    plain = index.shape.where is None and index.shape.columns is not None
    return IndexDiff(
        index.shape.table,
        index.name,
        index.shape.columns if plain else None,
        index.shape.unique if plain else None,
    )


def index_diffs(comparison: IndexComparison) -> tuple[list[IndexDiff], list[IndexDiff]]:
    """The shape comparison as playhouse's (add, drop) lists."""
    return (
        [index_diff(i) for i in comparison.missing],
        [index_diff(i) for i in comparison.extra if i.shape.table != ORCHESTRATOR_TABLE],
    )


def structural_diff(db: peewee.Database, models: Iterable[type[peewee.Model]] = MODELS) -> SchemaDiff:
    """diff_models with indexes compared by shape, without the orchestrator's own extras.

    Duplicate indexes and the optional `sessions` columns a layout lacks are not in it
    (see `notes`).
    """
    diff = diff_models(db, list(models))
    add, drop = index_diffs(compare_indexes(db, models, constraint_indexes(db)))
    add_columns = [f for f in diff.add_columns if not optional_session_column(f)]
    return SchemaDiff(
        diff.create_tables, add_columns, renamed_away(diff.drop_columns, add_columns), add, drop
    )


def renamed_away(
    drop_columns: list[tuple[str, str]], add_columns: list[peewee.Field]
) -> list[tuple[str, str]]:
    """Of the columns no model names, those of a table whose model gains a column: likely a
    rename in the models. Any other is another program's (the orchestrator app adds its own
    on every start): a note, never proposed for dropping."""
    gaining = {f.model._meta.table_name for f in add_columns}
    return [(t, c) for t, c in drop_columns if t in gaining and t != ORCHESTRATOR_TABLE]


def unknown_columns(
    db: peewee.Database, models: Iterable[type[peewee.Model]] = MODELS
) -> list[tuple[str, str]]:
    """Columns of the models' tables that no model names and that are not proposed for dropping."""
    diff = diff_models(db, list(models))
    dropped = set(renamed_away(diff.drop_columns, diff.add_columns))
    return [(t, c) for t, c in diff.drop_columns if (t, c) not in dropped and t != ORCHESTRATOR_TABLE]


def optional_session_column(field: peewee.Field) -> bool:
    return (
        field.model._meta.table_name == ORCHESTRATOR_TABLE and field.column_name in OPTIONAL_SESSION_COLUMNS
    )


def notes(db: peewee.Database, models: Iterable[type[peewee.Model]] = MODELS) -> list[str]:
    """Harmless differences: duplicate indexes, optional legacy columns a layout lacks."""
    lines = [
        f"sessions has no column {f.column_name} (optional in the orchestrator's layouts)"
        for f in diff_models(db, list(models)).add_columns
        if optional_session_column(f)
    ]
    lines += [
        f"duplicate index {dup.name} on {dup.shape}: the same index as {kept.name}"
        for dup, kept in compare_indexes(db, models, constraint_indexes(db)).duplicates
    ]
    lines += [
        f"{t} has a column {c} that sessionorm does not know (kept; another program's)"
        for t, c in unknown_columns(db, models)
    ]
    return lines


def describe(diff: SchemaDiff) -> list[str]:
    """One line per difference, flagging destructive steps."""
    lines = [f"create table {m._meta.table_name}" for m in diff.create_tables]
    lines += [f"add column {f.model._meta.table_name}.{f.column_name}" for f in diff.add_columns]
    lines += [f"drop column {t}.{c}  [destructive]" for t, c in diff.drop_columns]
    lines += [(i._replace(name=None) if i.columns else i).display("add") for i in diff.add_indexes]
    lines += [i.display("drop") for i in diff.drop_indexes]
    return lines


def schema_drift(db: peewee.Database, models: Iterable[type[peewee.Model]] = MODELS) -> list[str]:
    """Every difference between the models and the database that needs a change, one line each."""
    return (
        describe(structural_diff(db, models))
        + [str(c) for c in column_differences(db, models)]
        + constraint_differences(db, models)
    )


def drift(db: peewee.Database, models: Iterable[type[peewee.Model]] = MODELS) -> Drift:
    """`schema_drift` as problems, plus the harmless differences as notes."""
    return Drift(schema_drift(db, models), notes(db, models))


def constraint_indexes(db: peewee.Database) -> frozenset[str]:
    """Indexes the catalog lists for UNIQUE and primary key constraints (not indexes of their own)."""
    return backend_of(db).catalog.constraint_indexes()
