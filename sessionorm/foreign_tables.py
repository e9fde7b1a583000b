"""Tables that sessionorm would adopt must be the orchestrator's, not another program's.

A database may already hold a `sessions`, `threads`, `thread_messages` or `migrations` table
of its own: migration 1 creates its tables only if they are missing, and the runner reads
`migrations` as the orchestrator's history. One that does not fit is refused, naming the
table and the column or constraint, before anything is written or backed up.
"""

from __future__ import annotations

from collections.abc import Sequence

import peewee

from .backends import backend_of
from .declared_types import affinity
from .errors import MigrationError
from .models import Session
from .table_shapes import column_differences, constraint_differences, existing, expected_affinities


def required_fields(model: type[peewee.Model]) -> list[peewee.Field]:
    """The columns a table must have: of `sessions`, those sessionorm writes or migrates
    (legacy layouts may lack the optional others), of the other tables, all."""
    fields = model._meta.sorted_fields
    if issubclass(model, Session):
        return [f for f in fields if not f.null or f is Session.thread_id]
    # a nullable column a later migration adds (e.g. the app's threads.ampMode) may be missing
    return [f for f in fields if not f.null or f.primary_key]


def misfit(db: peewee.Database, model: type[peewee.Model]) -> str | None:
    """What of `model`'s existing table does not fit the model (None: it fits)."""
    table = model._meta.table_name
    columns = {c.name: c for c in db.get_columns(table)}
    for field in required_fields(model):
        column = columns.get(field.column_name)
        if column is None:
            return f'it has no column "{field.column_name}"'
        if affinity(column.data_type) not in expected_affinities(field):
            return f'its column "{field.column_name}" is {column.data_type}, not {field.field_type}'
    key = model._meta.primary_key.column_name  # type: ignore[union-attr]
    if db.get_primary_keys(table) != [key]:
        return f'its primary key is not ("{key}")'
    foreign = {(fk.column, fk.dest_table, fk.dest_column) for fk in db.get_foreign_keys(table)}
    for field in model._meta.sorted_fields:
        if isinstance(field, peewee.ForeignKeyField):
            parent = field.rel_model._meta.table_name
            if (field.column_name, parent, field.rel_field.column_name) not in foreign:
                return (
                    f'it has no foreign key ("{field.column_name}") referencing '
                    f'{parent} ("{field.rel_field.column_name}")'
                )
    uniques = {tuple(i.columns) for i in db.get_indexes(table) if i.unique}
    for unique in unique_constraints(model):
        if unique not in uniques:
            return "it has no UNIQUE (" + ", ".join(f'"{c}"' for c in unique) + ")"
    return None


def unique_constraints(model: type[peewee.Model]) -> list[tuple[str, ...]]:
    """The column tuples of the model's table-level UNIQUE constraints."""
    found = []
    for constraint in model._meta.constraints or ():
        text = getattr(constraint, "sql", "")
        if text.upper().startswith("UNIQUE"):
            inside = text[text.index("(") + 1 : text.rindex(")")]
            found.append(tuple(c.strip().strip('"') for c in inside.split(",")))
    return found


def refuse_foreign_tables(db: peewee.Database, models: Sequence[type[peewee.Model]]) -> None:
    """Raise `MigrationError` naming the first of `models`' existing tables that does not fit,
    or an object of another kind (a view, a foreign table, …) under one of their names."""
    others = backend_of(db).catalog.non_tables([model._meta.table_name for model in models])
    if others:
        kind, name = others[0]
        raise MigrationError(
            f"refusing to migrate: {name} is a {kind}, not a table (rename it or use another "
            "database; nothing was changed)"
        )
    tables = set(db.get_tables())
    for model in models:
        table = model._meta.table_name
        if table in tables:
            problem = misfit(db, model)
            if problem:
                raise MigrationError(
                    f"refusing to migrate: the existing table {table} is not the orchestrator's: "
                    f"{problem} (rename it or use another database; nothing was changed)"
                )


def shape_differences(db: peewee.Database, models: Sequence[type[peewee.Model]]) -> list[str]:
    """How the existing tables of `models` differ from them.

    Columns (names, types, NOT NULL, defaults), foreign keys with their cascades and UNIQUE
    constraints; indexes are not part of it (migrations add missing ones).
    """
    lines = []
    for model, table in existing(db, models):
        live = {c.name for c in db.get_columns(table)}
        wanted = {f.column_name for f in model._meta.sorted_fields}
        # A nullable column a later migration adds (e.g. the app's threads.ampMode) is no misfit;
        # a column nobody knows is another program's, kept as it is.
        needed = {f.column_name for f in model._meta.sorted_fields if not f.null}
        lacking = sorted((wanted & needed) - live)
        lines += [f"{table} lacks column {c}" for c in lacking]
        if lacking:  # then a column nobody knows may be the missing one renamed
            lines += [f"{table} has a column {c} the contract does not" for c in sorted(live - wanted)]
    lines += [str(c) for c in column_differences(db, models)]
    return lines + constraint_differences(db, models)


def refuse_foreign_shape(db: peewee.Database, models: Sequence[type[peewee.Model]]) -> None:
    """Raise `MigrationError` naming every difference when tables a migration adopts
    (e.g. threads the orchestrator created first) are not the models' tables."""
    differences = shape_differences(db, models) if models else []
    if differences:
        tables = " and ".join(m._meta.table_name for m in models)
        raise MigrationError(
            f"refusing to adopt the existing {tables} tables: they differ from sessionorm's ("
            + "; ".join(differences)
            + "); rename or fix them first"
        )
