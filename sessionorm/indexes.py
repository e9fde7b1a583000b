"""Indexes compared by shape -- table, columns in order, uniqueness, predicate -- never by name.

The orchestrator creates the contract's indexes under its own names on every start, so a
name says nothing about whether an index is there: two indexes of one shape are the same
index twice (a duplicate), and an index is missing only when no index has its shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import peewee

# The orchestrator's names (its start-up runs CREATE INDEX IF NOT EXISTS with exactly these)
# and one of sessionorm's own, for a session's threads newest updated first.
CONTRACT_INDEXES: dict[tuple[str, tuple[str, ...]], str] = {
    ("threads", ("sessionId",)): "idx_threads_session_id",
    ("threads", ("status",)): "idx_threads_status",
    ("threads", ("createdAt",)): "idx_threads_created_at",
    ("threads", ("updatedAt",)): "idx_threads_updated_at",
    ("thread_messages", ("threadId",)): "idx_thread_messages_thread_id",
    ("thread_messages", ("role",)): "idx_thread_messages_role",
    ("thread_messages", ("createdAt",)): "idx_thread_messages_created_at",
    ("thread_messages", ("idx",)): "idx_thread_messages_idx",
    ("threads", ("sessionId", "updatedAt")): "idx_threads_session_id_updated_at",
}

WHERE = re.compile(r"\)\s*WHERE\s+(.+?)\s*;?\s*$", re.I | re.S)
LITERAL = re.compile(r"('(?:[^']|'')*')")


@dataclass(frozen=True)
class Shape:
    """What an index is. `columns` None: an expression index, known by its name only."""

    table: str
    columns: tuple[str, ...] | None
    unique: bool = False
    where: str | None = None
    expression: str | None = None  # an expression index's name

    def __str__(self) -> str:
        inside = ", ".join(self.columns) if self.columns is not None else self.expression
        text = f"{self.table} ({inside})" + (" unique" if self.unique else "")
        return text + (f" where {self.where}" if self.where else "")


@dataclass(frozen=True)
class NamedIndex:
    name: str
    shape: Shape


def normalise_predicate(sql: str | None) -> str | None:
    """The WHERE clause of an index's DDL, spelled the same way by SQLite and PostgreSQL.

    Quotes, `::type` casts, enclosing parentheses, case and spacing outside string
    literals do not change what a predicate means, so they are dropped.
    """
    match = WHERE.search(sql or "")
    if not match:
        return None
    parts = LITERAL.split(match.group(1))
    text = "".join(
        p if i % 2 else re.sub(r"\s+", " ", re.sub(r'::[\w ]+?(?=[\s)]|$)|"', "", p)).lower()
        for i, p in enumerate(parts)
    ).strip()
    while text.startswith("(") and text.endswith(")") and balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def balanced(text: str) -> bool:
    """Whether parentheses in `text` (outside literals) never close more than they open."""
    depth = 0
    for i, part in enumerate(LITERAL.split(text)):
        if i % 2:
            continue
        for char in part:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                return False
    return depth == 0


def live_indexes(db: peewee.Database, table: str, skip: frozenset[str] = frozenset()) -> list[NamedIndex]:
    """The indexes of `table` in the database, without those of its primary key and constraints
    (`skip`: the indexes a catalog lists for constraints, `Catalog.constraint_indexes`)."""
    found = []
    for index in db.get_indexes(table):
        name = index.name
        if (
            name in skip
            or name == "PRIMARY"
            or name.endswith("_pkey")
            or name.startswith("sqlite_autoindex_")
            or index.sql is None
        ):
            continue
        listed = tuple(index.columns)
        columns: tuple[str, ...] | None
        # SQLite reports an expression column as None, PostgreSQL as its text
        if any(c is None or not re.fullmatch(r'"?[\w]+"?', c) for c in listed):
            columns, expression = None, name
        else:
            columns, expression = tuple(c.strip('"') for c in listed), None
        found.append(
            NamedIndex(
                name, Shape(table, columns, bool(index.unique), normalise_predicate(index.sql), expression)
            )
        )
    return found


def model_indexes(db: peewee.Database, model: type[peewee.Model]) -> list[NamedIndex]:
    """The indexes `model` declares, with the names it gives them."""
    table = model._meta.table_name
    found = []
    for index in model._meta.fields_to_index():
        if not isinstance(index, peewee.Index):
            continue  # raw SQL declarations are out of scope, as in playhouse.schema_diff
        # peewee keeps an Index's parts private (pinned by tests/test_peewee_internals.py)
        parts = vars(index)
        columns: tuple[str, ...] | None
        if all(isinstance(p, peewee.Field) for p in parts["_expressions"]):
            columns, expression = tuple(p.column_name for p in parts["_expressions"]), None
        else:
            columns, expression = None, parts["_name"]
        where = None
        if parts["_where"] is not None:
            sql, _ = db.get_sql_context().sql(peewee.ValueLiterals(index)).query()
            where = normalise_predicate(sql)
        found.append(
            NamedIndex(parts["_name"], Shape(table, columns, bool(parts["_unique"]), where, expression))
        )
    return found


@dataclass
class IndexComparison:
    """Models' indexes against the database's, by shape."""

    missing: list[NamedIndex] = field(default_factory=list)  # declared, no index of that shape
    extra: list[NamedIndex] = field(default_factory=list)  # a shape no model declares
    duplicates: list[tuple[NamedIndex, NamedIndex]] = field(default_factory=list)  # (dup, kept)


def keeper(group: list[NamedIndex], preferred: str | None) -> NamedIndex:
    """Of indexes sharing one shape, the one that stays: the declared name, else the first."""
    for index in group:
        if index.name == preferred:
            return index
    return sorted(group, key=lambda i: i.name)[0]


def compare_indexes(
    db: peewee.Database,
    models: Iterable[type[peewee.Model]],
    skip: frozenset[str],
    tables: set[str] | None = None,
) -> IndexComparison:
    """Pair the models' indexes with the database's by shape; tables missing are skipped.

    `skip`: indexes that back constraints (`Catalog.constraint_indexes`), not indexes of their
    own: `drift` checks UNIQUE("threadId", idx) as a constraint.
    """
    tables = set(db.get_tables()) if tables is None else tables
    result = IndexComparison()
    seen: set[str] = set()
    for model in models:
        table = model._meta.table_name
        if table not in tables or table in seen:
            continue
        seen.add(table)
        declared = {i.shape: i.name for i in model_indexes(db, model)}
        groups: dict[Shape, list[NamedIndex]] = {}
        for index in live_indexes(db, table, skip):
            groups.setdefault(index.shape, []).append(index)
        for shape, name in sorted(declared.items(), key=str):
            if shape not in groups:
                result.missing.append(NamedIndex(name, shape))
        for shape, group in sorted(groups.items(), key=str):
            kept = keeper(group, declared.get(shape))
            if shape not in declared:
                result.extra.append(kept)
            result.duplicates += [(i, kept) for i in group if i is not kept]
    return result
