"""What `sessionorm copy` carries: each table of the source, as its backend's catalog reflects it.

A `Table` (columns with their kind, primary key, foreign keys, indexes) is read from either
database through a `Side`; what cannot be carried is named (`carry_problems`), and the DDL
of a table sessionorm's migrations do not make is written for the target's backend.
"""

from __future__ import annotations

import re

import peewee

from ..backends import Backend, backend_of
from ..backends.catalog import INT_RANGES, Column, ForeignKey, Table
from ..declared_types import without_cast
from ..errors import MigrationError
from ..identifiers import q
from ..models import AGENT_TABLES, RECORD_TABLES
from ..target import Target

__all__ = [
    "INT_RANGES",
    "Column",
    "CopyError",
    "ForeignKey",
    "Side",
    "Table",
    "carry_problems",
    "create_table_sql",
    "load_order",
]

SESSIONS = "sessions"
# Created by the migrations on the target; the source's columns no model names (e.g. the
# orchestrator app's) are added to them, and any other difference refuses the copy.
BY_MIGRATIONS = (
    "threads",
    "thread_messages",
    "migrations",
    "migration_checksums",
    *RECORD_TABLES,
    *AGENT_TABLES,
)
HISTORY = ("migrations", "migration_checksums")  # the target's own rows make way for the source's
FIRST = (SESSIONS, *BY_MIGRATIONS)  # load order of sessionorm's tables
LITERAL = re.compile(r"^(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?|NULL|TRUE|FALSE)$", re.I)


class CopyError(MigrationError):
    """The copy was refused or failed; the target was left as it was (absent or empty)."""


# -- the two sides ---------------------------------------------------------------------------


class Side:
    """One database of a copy: its target, the open peewee database, its backend and catalog."""

    def __init__(self, target: Target, db: peewee.Database) -> None:
        self.target, self.db = target, db
        self.backend = backend_of(db)
        self.catalog = self.backend.catalog

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.catalog.rows(sql, params)

    def table_names(self) -> list[str]:
        return self.catalog.table_names()

    def other_objects(self) -> list[str]:
        """Views and triggers: not carried, so a source that has them is refused."""
        return self.catalog.other_objects()

    def table(self, name: str) -> Table:
        return self.catalog.table(name)


def carry_problems(table: Table, to: type[Backend], same: bool) -> list[str]:
    """Why `table` cannot be carried to a database of the backend `to` (empty: it can)."""
    problems = list(table.problems)
    if table.name not in BY_MIGRATIONS:  # the migrations make theirs on the target
        problems += [
            f"it has a CHECK constraint ({name})" if name else "it has a CHECK constraint"
            for name in table.checks
        ]
    if not table.primary_key:
        problems.append("it has no primary key (rows are copied in primary-key order)")
    for column in table.columns:
        if not column.kind:
            problems.append(
                f"column {column.name} has type {column.declared or '(none)'}, "
                "which sessionorm does not carry"
            )
        if column.default is not None and not same and default_sql(column, to) is None:
            problems.append(f"column {column.name} has the default {column.default}, which is not a constant")
    return problems


def default_sql(column: Column, to: type[Backend]) -> str | None:
    """The column's default in the target's dialect: constants only (None: not a constant)."""
    text = without_cast(column.default or "").strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if not LITERAL.match(text):
        return None
    if column.kind == "boolean":
        truth = {"0": False, "1": True, "false": False, "true": True, "'0'": False, "'1'": True}
        value = truth.get(text.lower())
        if value is None:
            return None
        return to.copy_booleans[value]
    return text


def column_sql(c: Column, to: type[Backend], same: bool) -> str:
    """A column's definition for the backend `to`: the same declared type within one engine,
    else `to.copy_types`'."""
    declared = c.declared if same else to.copy_types[c.kind]
    text = f"{q(c.name)} {declared}" + (" NOT NULL" if c.notnull else "")
    if c.default is not None:
        text += f" DEFAULT {c.default if same else default_sql(c, to)}"
    return text


def create_table_sql(table: Table, to: type[Backend], same: bool) -> str:
    """CREATE TABLE for the backend `to`."""
    parts = [column_sql(c, to, same) for c in table.columns]
    parts.append(f"PRIMARY KEY ({', '.join(map(q, table.primary_key))})")
    parts += [f"UNIQUE ({', '.join(map(q, cols))})" for cols in table.uniques]
    for fk in table.foreign_keys:
        parts.append(
            f"FOREIGN KEY ({', '.join(map(q, fk.columns))}) REFERENCES {q(fk.parent)}"
            f" ({', '.join(map(q, fk.parent_columns))}) ON DELETE {fk.on_delete}"
            f" ON UPDATE {fk.on_update}"
        )
    return f"CREATE TABLE {q(table.name)} (\n  " + ",\n  ".join(parts) + ")"


def load_order(tables: dict[str, Table]) -> list[str]:
    """sessionorm's tables first, then the others with every parent before its children."""
    order = [t for t in FIRST if t in tables]
    rest = sorted(t for t in tables if t not in order)
    while rest:
        ready = [
            t
            for t in rest
            if all(
                fk.parent in order or fk.parent == t or fk.parent not in tables
                for fk in tables[t].foreign_keys
            )
        ]
        if not ready:
            raise CopyError(
                f"refusing to copy: the foreign keys of {', '.join(rest)} form a cycle; nothing was written"
            )
        order += ready
        rest = [t for t in rest if t not in ready]
    return order


def index_sql(table: str, name: str, columns: tuple[str, ...], unique: bool) -> str:
    return f"CREATE {'UNIQUE ' if unique else ''}INDEX {q(name)} ON {q(table)} ({', '.join(map(q, columns))})"
