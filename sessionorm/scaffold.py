"""Write the next numbered migration script from the models-vs-database diff.

`playhouse.migrations.template` renders the diff (indexes compared by shape, so a duplicate
is never proposed for dropping, and a missing one is created under its declared name);
this adds what `diff_models` cannot see (NOT NULL and default changes, runnable; type
changes and likely renames, as TODOs) and flags destructive steps in the script and in
the report.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import peewee
from playhouse.migrate import make_index_name
from playhouse.migrations import template
from playhouse.schema_diff import SchemaDiff

from .drift import structural_diff
from .errors import MigrationError
from .runner import MigrationRunner
from .table_shapes import ColumnChange, column_differences, constant_default_sql


@dataclass
class NewMigration:
    path: Path | None
    destructive: list[str] = field(default_factory=list)
    todos: list[str] = field(default_factory=list)


def column_change_code(change: ColumnChange) -> tuple[list[str], list[str], str | None]:
    """(up lines, down lines, TODO) for one column change."""
    table, column = change.table, change.field.column_name
    if change.kind == "null":
        op, undo = ("drop_not_null", "add_not_null") if change.want else ("add_not_null", "drop_not_null")
        return (
            [f"migrator.migrate(migrator.{op}({table!r}, {column!r}))"],
            [f"migrator.migrate(migrator.{undo}({table!r}, {column!r}))"],
            None,
        )
    if change.kind == "default":
        if change.want is not None:
            up = f"migrator.migrate(migrator.add_column_default({table!r}, {column!r}, SQL({change.want!r})))"
        else:
            up = f"migrator.migrate(migrator.drop_column_default({table!r}, {column!r}))"
        return [up], [], f"{table}.{column}: restore the old default ({change.have}) in down() by hand"
    return (
        [],
        [],
        (
            f"{table}.{column}: type differs (database {change.have}, model {change.want}); "
            "decide the cast, e.g. migrator.alter_column_type(...)"
        ),
    )


def likely_renames(diff: SchemaDiff) -> list[str]:
    """A table that gains one column and loses one: probably a rename, not drop + add."""
    added = Counter(f.model._meta.table_name for f in diff.add_columns)
    dropped = Counter(t for t, _ in diff.drop_columns)
    todos = []
    for table in sorted(set(added) & set(dropped)):
        if added[table] == dropped[table] == 1:
            new = next(f.column_name for f in diff.add_columns if f.model._meta.table_name == table)
            old = next(c for t, c in diff.drop_columns if t == table)
            todos.append(
                f"{table}: {old} -> {new} looks like a rename; if so, replace the drop and "
                f"add with migrator.rename_column({table!r}, {old!r}, {new!r}) to keep the data"
            )
    return todos


def drop_named_indexes(body: str, diff: SchemaDiff) -> str:
    """Make down() drop each added index by the name up() gives it.

    playhouse's `template` creates an index under its declared name but drops
    `<table>_<columns>` in down(), which fails for a named index (the orchestrator's). An
    index of a column `up()` adds with `index=True` is made by the migrator's `add_column`,
    which names it `<table>_<column>` whatever the model declares: down() keeps that name.
    """
    made_by_add_column = {
        (f.model._meta.table_name, (f.column_name,), bool(f.unique))
        for f in diff.add_columns
        if f.index or f.unique
    }
    for idx in diff.add_indexes:
        if idx.columns is None:
            continue  # partial or expression: a TODO, no code
        if (idx.table, tuple(idx.columns), bool(idx.unique)) in made_by_add_column:
            continue
        default = make_index_name(idx.table, idx.columns)
        if idx.name and idx.name != default:
            body = body.replace(
                f"migrator.drop_index({idx.table!r}, {default!r})",
                f"migrator.drop_index({idx.table!r}, {idx.name!r})",
            )
    return body


def insert_into(body: str, function: str, lines: list[str]) -> str:
    """Append `lines` to the body of `def function(migrator, db):` in a rendered template."""
    if not lines:
        return body
    pattern = re.compile(rf"(def {function}\(migrator, db\):\n)((?:    .*\n|\n)*?)(?=\n\ndef |\Z)")
    match = pattern.search(body)
    if match is None:  # peewee's template no longer renders `def function(migrator, db):`
        raise MigrationError(f"cannot add to {function}(): peewee's migration template changed")
    block = match.group(2)
    if block.strip() == "pass":
        block = ""
    block = block.rstrip("\n") + ("\n" if block.strip() else "") + "".join(f"    {x}\n" for x in lines)
    return body[: match.start(2)] + block + body[match.end(2) :]


def render(db: peewee.Database, models: Iterable[type[peewee.Model]], name: str) -> tuple[str, NewMigration]:
    """The script body and what it flags, or an empty body when in sync."""
    diff = structural_diff(db, models)
    changes = column_differences(db, models)
    report = NewMigration(path=None)
    if not diff and not changes:
        return "", report
    body = drop_named_indexes(template(diff), diff)
    up, down = [], []
    for change in changes:
        u, d, todo = column_change_code(change)
        up += u
        down += d
        if todo:
            report.todos.append(todo)
    report.todos += likely_renames(diff)
    report.destructive = [
        f"drop column {t}.{c} (its data is lost; down() cannot restore it)" for t, c in diff.drop_columns
    ]
    body = insert_into(insert_into(body, "up", up), "down", down)
    body = with_sql_defaults(body, diff)
    header = [f'"""{name}"""']
    header += [f"# DESTRUCTIVE: {line}" for line in report.destructive]
    header += [f"# TODO: {todo}" for todo in report.todos]
    text = "\n".join(header) + "\n" + body
    # every flag in the file, peewee's template's own TODOs included, for the summary
    report.destructive = re.findall(r"^# DESTRUCTIVE: (.*)$", text, re.M)
    report.todos = re.findall(r"^# TODO: (.*)$", text, re.M)
    return text, report


def with_sql_defaults(body: str, diff: SchemaDiff) -> str:
    """Give added NOT NULL columns with a constant default that default in SQL too.

    peewee's template writes `IntegerField(default=0)`: the migrator fills existing rows
    from it, but the column gets no SQL DEFAULT, so inserts that omit it would fail.
    """
    for added in diff.add_columns:
        sql = constant_default_sql(added)
        if sql is None:
            continue
        start = (
            f"migrator.migrate(migrator.add_column({added.model._meta.table_name!r}, {added.column_name!r}, "
        )
        lines = body.splitlines(keepends=True)
        for n, line in enumerate(lines):
            if line.lstrip().startswith(start) and line.rstrip().endswith(")))"):
                head, tail = line.rstrip().rsplit(")))", 1)
                lines[n] = f"{head}, constraints=[SQL({f'DEFAULT {sql}'!r})])))" + tail + "\n"
        body = "".join(lines)
    return body


def make_migration(
    db: peewee.Database,
    models: Iterable[type[peewee.Model]],
    name: str,
    directory: str | os.PathLike | None = None,
) -> NewMigration:
    """Write `NNNN_<name>.py` numbered after every known script; `path` None when in sync.

    Into `directory`, else `./migrations` (created if missing): never into the installed
    package, whose scripts every database on the machine would then find pending.
    """
    if not re.fullmatch(r"[A-Za-z][\w -]*", name):
        raise MigrationError(f"bad migration name {name!r}: use letters, digits, '_', '-' or spaces")
    target = Path(directory) if directory else Path.cwd() / "migrations"
    runner = MigrationRunner(db, extra_dirs=[target])
    body, report = render(db, models, name)
    if not body:
        return report
    target.mkdir(parents=True, exist_ok=True)
    number = max((m.idx for m in runner.migrations()), default=0) + 1
    slug = re.sub(r"[^\w]+", "_", name.strip()).strip("_").lower()
    path = target / f"{number:04d}_{slug}.py"
    with open(path, "x") as fh:  # never overwrite
        fh.write(body)
    report.path = path
    return report
