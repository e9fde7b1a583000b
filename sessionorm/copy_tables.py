"""What `sessionorm copy` carries: each table of the source, reflected from SQLite or PostgreSQL.

A `Table` (columns with their kind, primary key, foreign keys, indexes) is read from either
database through a `Side`; what cannot be carried is named (`carry_problems`), and the DDL
of a table sessionorm's migrations do not make is written for the target.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import peewee

from .declared_types import affinity, without_cast
from .errors import MigrationError
from .identifiers import q
from .models import RECORD_TABLES
from .target import Target

SESSIONS = "sessions"
# Created by the migrations on the target; the source's columns no model names (e.g. the
# orchestrator app's) are added to them, and any other difference refuses the copy.
BY_MIGRATIONS = ("threads", "thread_messages", "migrations", "migration_checksums",
                 *RECORD_TABLES)
HISTORY = ("migrations", "migration_checksums")  # the target's own rows make way for the source's
FIRST = (SESSIONS, *BY_MIGRATIONS)  # load order of sessionorm's tables
INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
LITERAL = re.compile(r"^(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?|NULL|TRUE|FALSE)$", re.I)


class CopyError(MigrationError):
    """The copy was refused or failed; the target was left as it was (absent or empty)."""


# -- what a table is -------------------------------------------------------------------------

@dataclass
class Column:
    name: str
    declared: str  # the type as the source declares it
    kind: str  # text, integer, boolean, real, blob: how values are carried and checksummed
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
    problems: list[str] = field(default_factory=list)  # why it cannot be carried

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


KINDS = {"INTEGER": "integer", "TEXT": "text", "BLOB": "blob", "REAL": "real"}  # by affinity


def sqlite_kind(declared: str) -> str | None:
    """How a SQLite column's values are carried, from its declared type (SQLite's affinity rules,
    plus BOOLEAN: 0/1 in SQLite, boolean in PostgreSQL)."""
    if "BOOL" in declared.upper():
        return "boolean"
    if not declared:
        return None  # no type declared: a value's type is not the column's
    return KINDS.get(affinity(declared))  # NUMERIC affinity: neither


PG_KINDS = {"text": "text", "varchar": "text", "bpchar": "text", "int2": "integer",
            "int4": "integer", "int8": "integer", "bool": "boolean", "float4": "real",
            "float8": "real", "bytea": "blob"}


SQLITE_TYPES = {"text": "TEXT", "integer": "INTEGER", "boolean": "BOOLEAN", "real": "REAL",
                "blob": "BLOB"}


# Across dialects; INTEGER becomes bigint: SQLite integers are 64-bit.
PG_TYPES = {"text": "TEXT", "integer": "BIGINT", "boolean": "BOOLEAN", "real": "DOUBLE PRECISION",
            "blob": "BYTEA"}


# -- reading the source ----------------------------------------------------------------------

class Side:
    """One database, reached through peewee (the runner) and its raw driver connection."""

    def __init__(self, target: Target, db: peewee.Database) -> None:
        self.target, self.db = target, db
        self.is_pg = isinstance(db, peewee.PostgresqlDatabase)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return list(self.db.execute_sql(sql, params).fetchall())

    def table_names(self) -> list[str]:
        if self.is_pg:
            return [r[0] for r in self.rows(
                "SELECT relname FROM pg_catalog.pg_class WHERE relkind IN ('r', 'p')"
                " AND relnamespace = current_schema()::regnamespace ORDER BY 1")]
        return [r[0] for r in self.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name")]

    def other_objects(self) -> list[str]:
        """Views and triggers: not carried, so a source that has them is refused."""
        if self.is_pg:
            return [f"{kind} {name}" for kind, name in self.rows(
                "SELECT CASE relkind WHEN 'S' THEN 'sequence' ELSE 'view' END, relname"
                " FROM pg_catalog.pg_class WHERE relkind IN ('v', 'm', 'S')"
                " AND relnamespace = current_schema()::regnamespace"
                " UNION ALL SELECT 'trigger', t.tgname FROM pg_catalog.pg_trigger t"
                " JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                " AND c.relnamespace = current_schema()::regnamespace ORDER BY 1, 2")]
        return [f"{kind} {name}" for kind, name in self.rows(
            "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger') ORDER BY 1, 2")]

    def table(self, name: str) -> Table:
        return self.pg_table(name) if self.is_pg else self.sqlite_table(name)

    def sqlite_table(self, name: str) -> Table:
        sql = self.rows("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))[0][0]
        table = self.sqlite_columns(name)
        table.foreign_keys = self.sqlite_foreign_keys(name)
        self.add_sqlite_indexes(table)
        table.problems += sqlite_ddl_problems(name, sql or "")
        return table

    def sqlite_columns(self, name: str) -> Table:
        """The table's columns and primary key; a generated or hidden column is a problem."""
        columns, pk, problems = [], [], []
        for _cid, col, declared, notnull, default, pk_pos, hidden in self.rows(
                f"PRAGMA table_xinfo({q(name)})"):
            if hidden:
                problems.append(f"column {col} is generated or hidden")
                continue
            columns.append(Column(col, declared or "", sqlite_kind(declared or "") or "", bool(notnull),
                                  default))
            if pk_pos:
                pk.append((pk_pos, col))
        return Table(name, columns, tuple(c for _, c in sorted(pk)), problems=problems)

    def sqlite_foreign_keys(self, name: str) -> list[ForeignKey]:
        fks: dict[int, list[tuple]] = {}
        for fid, _seq, parent, src, dst, on_update, on_delete, _match in self.rows(
                f"PRAGMA foreign_key_list({q(name)})"):
            fks.setdefault(fid, []).append((parent, src, dst, on_update, on_delete))
        found = []
        for parts in fks.values():
            parent = parts[0][0]
            dests = [p[2] for p in parts]
            if any(d is None for d in dests):  # REFERENCES parent: its primary key
                dests = self.sqlite_primary_key(parent)
            found.append(ForeignKey(tuple(p[1] for p in parts), parent, tuple(dests),
                                    parts[0][4], parts[0][3]))
        return found

    def sqlite_primary_key(self, name: str) -> list[str]:
        return [r[1] for r in sorted((r for r in self.rows(f"PRAGMA table_info({q(name)})") if r[5]),
                                     key=lambda r: r[5])]

    def add_sqlite_indexes(self, table: Table) -> None:
        """The table's UNIQUE constraints and indexes; one copy cannot make again is a problem."""
        for _seq, index, unique, origin, partial in self.rows(f"PRAGMA index_list({q(table.name)})"):
            if origin == "pk":
                continue
            keys = [r for r in self.rows(f"PRAGMA index_xinfo({q(index)})") if r[5]]
            if partial or not plain_sqlite_index(keys):
                table.problems.append(f"index {index} is partial, on an expression, descending "
                                      "or with a collation")
                continue
            cols = tuple(r[2] for r in keys)
            if origin == "u":
                table.uniques.append(cols)
            else:
                table.indexes.append((index, cols, bool(unique)))

    def pg_table(self, name: str) -> Table:
        oid = self.rows("SELECT oid FROM pg_catalog.pg_class WHERE relname = %s"
                        " AND relnamespace = current_schema()::regnamespace", (name,))[0][0]
        table, by_num = self.pg_columns(name, oid)
        self.add_pg_constraints(table, oid, by_num)
        self.add_pg_indexes(table, oid, by_num)
        return table

    def pg_columns(self, name: str, oid: int) -> tuple[Table, dict[int, str]]:
        """The table (its columns; an identity or generated one is a problem) and column number -> name."""
        columns, problems, by_num = [], [], {}
        for num, col, typname, declared, notnull, default, identity, generated in self.rows(
                "SELECT a.attnum, a.attname, t.typname, format_type(a.atttypid, a.atttypmod),"
                " a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated"
                " FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
                " LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (oid,)):
            by_num[num] = col
            if identity or generated:
                problems.append(f"column {col} is an identity or generated column")
            columns.append(Column(col, declared, PG_KINDS.get(typname, ""), notnull, default))
        return Table(name, columns, (), problems=problems), by_num

    def add_pg_constraints(self, table: Table, oid: int, by_num: dict[int, str]) -> None:
        """Primary key, UNIQUE and foreign keys; a CHECK (on a table of another program) or any
        other kind of constraint is a problem."""
        for kind, conname, keys, parent, parent_keys, upd, dele in self.rows(
                "SELECT c.contype, c.conname, c.conkey, p.relname, c.confkey, c.confupdtype,"
                " c.confdeltype FROM pg_catalog.pg_constraint c LEFT JOIN pg_catalog.pg_class p"
                " ON p.oid = c.confrelid WHERE c.conrelid = %s ORDER BY c.conname", (oid,)):
            cols = tuple(by_num[k] for k in keys or ())
            if kind == "p":
                table.primary_key = cols
            elif kind == "u":
                table.uniques.append(cols)
            elif kind == "f":
                table.foreign_keys.append(ForeignKey(cols, parent, self.pg_key_names(parent, parent_keys),
                                                     FK_ACTIONS[dele], FK_ACTIONS[upd]))
            elif kind == "c" and table.name not in BY_MIGRATIONS:
                table.problems.append(f"it has a CHECK constraint ({conname})")
            elif kind not in ("c", "n"):
                table.problems.append(f"it has a constraint of kind {kind!r} ({conname})")

    def pg_key_names(self, table: str, numbers: list[int]) -> tuple[str, ...]:
        """The names of `table`'s columns numbered `numbers`, in that order."""
        return tuple(r[0] for r in self.rows(
            "SELECT attname FROM pg_catalog.pg_attribute a JOIN unnest(%s::int2[])"
            " WITH ORDINALITY k(num, pos) ON a.attnum = k.num"
            " WHERE a.attrelid = %s::regclass ORDER BY k.pos", (numbers, q(table))))

    def add_pg_indexes(self, table: Table, oid: int, by_num: dict[int, str]) -> None:
        """The indexes no constraint owns; a partial or expression index is a problem."""
        for index, unique, keys, expression, partial in self.rows(
                "SELECT i.relname, x.indisunique, x.indkey::int2[], x.indexprs IS NOT NULL,"
                " x.indpred IS NOT NULL FROM pg_catalog.pg_index x"
                " JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s"
                " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c"
                " WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid) ORDER BY 1", (oid,)):
            if expression or partial or 0 in keys:
                table.problems.append(f"index {index} is partial or on an expression")
                continue
            table.indexes.append((index, tuple(by_num[k] for k in keys), unique))


def plain_sqlite_index(keys: list[tuple]) -> bool:
    """Whether an index's key columns (PRAGMA index_xinfo rows) are all plain: no expression,
    ascending, binary collation."""
    return not any(r[1] < 0 or r[3] or r[4] != "BINARY" for r in keys)


def sqlite_ddl_problems(name: str, sql: str) -> list[str]:
    """What a table's CREATE statement holds that copy does not carry."""
    problems = []
    if re.search(r"\bCHECK\s*\(", sql, re.I) and name not in BY_MIGRATIONS:
        problems.append("it has a CHECK constraint")
    if re.match(r"\s*CREATE\s+VIRTUAL\b", sql, re.I):
        problems.append("it is a virtual table")
    if re.search(r"\)\s*(?:STRICT|WITHOUT\s+ROWID)\b", sql, re.I):
        problems.append("it is STRICT or WITHOUT ROWID")
    return problems


def carry_problems(table: Table, to_pg: bool, same: bool) -> list[str]:
    """Why `table` cannot be carried to the target (empty: it can)."""
    problems = list(table.problems)
    if not table.primary_key:
        problems.append("it has no primary key (rows are copied in primary-key order)")
    for column in table.columns:
        if not column.kind:
            problems.append(f"column {column.name} has type {column.declared or '(none)'}, "
                            "which sessionorm does not carry")
        if column.default is not None and not same and default_sql(column, to_pg) is None:
            problems.append(f"column {column.name} has the default {column.default}, "
                            "which is not a constant")
    return problems


def default_sql(column: Column, to_pg: bool) -> str | None:
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
        return ("TRUE" if value else "FALSE") if to_pg else ("1" if value else "0")
    return text


def column_sql(c: Column, to_pg: bool, same: bool) -> str:
    """A column's definition in the target's dialect: same declared type within one dialect,
    else mapped."""
    declared = c.declared if same else (PG_TYPES if to_pg else SQLITE_TYPES)[c.kind]
    text = f"{q(c.name)} {declared}" + (" NOT NULL" if c.notnull else "")
    if c.default is not None:
        text += f" DEFAULT {c.default if same else default_sql(c, to_pg)}"
    return text


def create_table_sql(table: Table, to_pg: bool, same: bool) -> str:
    """CREATE TABLE in the target's dialect."""
    parts = [column_sql(c, to_pg, same) for c in table.columns]
    parts.append(f"PRIMARY KEY ({', '.join(map(q, table.primary_key))})")
    parts += [f"UNIQUE ({', '.join(map(q, cols))})" for cols in table.uniques]
    for fk in table.foreign_keys:
        parts.append(f"FOREIGN KEY ({', '.join(map(q, fk.columns))}) REFERENCES {q(fk.parent)}"
                     f" ({', '.join(map(q, fk.parent_columns))}) ON DELETE {fk.on_delete}"
                     f" ON UPDATE {fk.on_update}")
    return f"CREATE TABLE {q(table.name)} (\n  " + ",\n  ".join(parts) + ")"


def load_order(tables: dict[str, Table]) -> list[str]:
    """sessionorm's tables first, then the others with every parent before its children."""
    order = [t for t in FIRST if t in tables]
    rest = sorted(t for t in tables if t not in order)
    while rest:
        ready = [t for t in rest if all(fk.parent in order or fk.parent == t or fk.parent not in tables
                                        for fk in tables[t].foreign_keys)]
        if not ready:
            raise CopyError(f"refusing to copy: the foreign keys of {', '.join(rest)} form a cycle; "
                            "nothing was written")
        order += ready
        rest = [t for t in rest if t not in ready]
    return order


def index_sql(table: str, name: str, columns: tuple[str, ...], unique: bool) -> str:
    return (f"CREATE {'UNIQUE ' if unique else ''}INDEX {q(name)} ON {q(table)}"
            f" ({', '.join(map(q, columns))})")


def pg_types(side: Side, name: str) -> dict[str, str]:
    """Column name -> PostgreSQL type name (`int4`, `text`, …), in column order."""
    return dict(side.rows(
        "SELECT a.attname, t.typname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t"
        " ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum", (q(name),)))
