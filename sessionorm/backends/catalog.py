"""What a database holds, as read from its catalog: tables with their columns (and the kind of
their values), keys, foreign keys, indexes and CHECK constraints.

One reflection for both engines (`SqliteCatalog`, `PostgresCatalog`): `drift` and `verify`
ask it about constraints, and `copy` reads whole tables through it. It only describes; what
a caller can or cannot do with a table is the caller's judgement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import peewee

from ..identifiers import q

BATCH = 5_000  # rows per fetch, executemany or COPY batch: a few MB, whatever the table's size
INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}  # PostgreSQL's integer types


@dataclass
class Column:
    name: str
    declared: str  # the type as the database declares it
    kind: str  # text, integer, boolean, real, blob ("": none of them): how values are carried
    notnull: bool
    default: str | None


@dataclass
class ForeignKey:
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    on_delete: str
    on_update: str


@dataclass
class Table:
    name: str
    columns: list[Column]
    primary_key: tuple[str, ...]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    uniques: list[tuple[str, ...]] = field(default_factory=list)  # table constraints
    indexes: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)  # name, cols, unique
    checks: list[str] = field(default_factory=list)  # CHECK constraints by name ("" if unnamed)
    problems: list[str] = field(default_factory=list)  # what no plain table definition can say

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


class Catalog:
    """The catalog of one open database."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return list(self.db.execute_sql(sql, params).fetchall())

    def table_names(self) -> list[str]:
        """The tables, by name."""
        raise NotImplementedError

    def other_objects(self) -> list[str]:
        """Views, triggers (and sequences): `kind name` each."""
        raise NotImplementedError

    def tables_elsewhere(self) -> list[str]:
        """Tables outside the schema the database is used in, as `schema.table` (a SQLite file
        has one schema)."""
        return []

    def table(self, name: str) -> Table:
        raise NotImplementedError

    def non_tables(self, names: list[str]) -> list[tuple[str, str]]:
        """(kind, name) of each object named one of `names` that is not a plain table."""
        raise NotImplementedError

    def check_texts(self, table: str) -> list[str]:
        """Texts in which `table`'s CHECK constraints are written."""
        raise NotImplementedError

    def on_delete(self, table: str, column: str) -> str | None:
        """The ON DELETE action of the foreign key on `table.column` (None: there is none)."""
        raise NotImplementedError

    def constraint_indexes(self) -> frozenset[str]:
        """Indexes that back a UNIQUE or primary key constraint and are listed as indexes."""
        return frozenset()

    def column_types(self, table: str) -> dict[str, str]:
        """Column name -> the type name a binary bulk load needs (empty: values go as they are)."""
        return {}

    def count_rows(self, only: Iterable[str] | None = None) -> dict[str, int]:
        """Row counts of every table (or of those of `only` that exist), by name."""
        names = self.table_names()
        if only is not None:
            present = set(names)
            names = [t for t in only if t in present]
        return count_rows(self.db.execute_sql, names)


def count_rows(execute: Callable[[str], Any], tables: Iterable[str]) -> dict[str, int]:
    """`{table: rows}`, each counted with `execute` (a peewee database's or a raw connection's)."""
    return {t: execute(f"SELECT count(*) FROM {q(t)}").fetchone()[0] for t in tables}
