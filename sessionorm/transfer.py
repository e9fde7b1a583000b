"""`sessionorm copy`: every table of a migrated database into a new one, SQLite or PostgreSQL.

How a copy flows (docs/architecture.md tells it at length):

1. The source is read in one snapshot: a read transaction on SQLite (`read_transaction`), a
   REPEATABLE READ, READ ONLY transaction on PostgreSQL. It must be fully migrated.
2. Its tables are reflected (columns, keys, foreign keys, indexes) and each is either carried
   or refused by name, before anything is written.
3. The target is created through the migrations: `sessions` first in the source's layout
   (migration 1 adopts it, as `migrate` adopts a legacy file's), then the runner, then the
   other tables in foreign-key order. The migrations history is the source's.
4. Rows stream in primary-key order, in batches: `COPY … FROM STDIN` (binary) on PostgreSQL,
   `executemany` on SQLite, into tables whose indexes and foreign keys are put back after
   the load. Each row's checksum is computed as it is read.
5. Row counts and checksums are computed again on the target and compared, and the
   target's migrations and schema are checked, before it becomes visible: PostgreSQL
   commits one transaction; SQLite renames a temporary file into place.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import peewee

from .database import (
    check_sqlite_file,
    open_sqlite,
    open_url,
    real_path,
    translate_errors,
)
from .dialect import Dialect
from .drift import drift
from .errors import DatabaseOpenError, MigrationError
from .migration_options import MigrationOptions
from .models import MODELS
from .progress import reporting
from .runner import MigrationRunner
from .safe_migrator import lock_database
from .sqlite_backup import process_alive
from .target import Target
from .verification import migration_problems

Progress = Callable[[str], None] | None
BATCH = 5_000  # rows per fetch / executemany: a few MB, whatever the table's size
SESSIONS = "sessions"
# Created by the migrations on the target; the source's must have the same columns.
BY_MIGRATIONS = ("threads", "thread_messages", "migrations", "migration_checksums")
HISTORY = ("migrations", "migration_checksums")  # the target's own rows make way for the source's
FIRST = (SESSIONS, *BY_MIGRATIONS)  # load order of sessionorm's tables
# A SQLite bulk load's page cache (KiB, negative): index builds stay in memory, RSS stays flat.
SQLITE_CACHE = -16384
PG_SORT_MEMORY = "256MB"  # maintenance_work_mem for rebuilding keys and indexes after the load
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


@dataclass
class TableCopy:
    """One table's result: rows and checksum as read from the source and from the target."""

    name: str
    rows: int
    checksum: int
    target_rows: int = -1
    target_checksum: int = -1

    @property
    def ok(self) -> bool:
        return (self.rows, self.checksum) == (self.target_rows, self.target_checksum)


@dataclass
class CopyReport:
    """What `copy` did: per table, rows and checksums on both sides (all equal, or it failed)."""

    source: str
    target: str
    tables: list[TableCopy] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def q(name: str) -> str:
    """A quoted identifier (camelCase names must keep their case on PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def sqlite_kind(declared: str) -> str | None:
    """How a SQLite column's values are carried, from its declared type (SQLite's affinity rules,
    plus BOOLEAN: 0/1 in SQLite, boolean in PostgreSQL)."""
    t = declared.upper()
    if "BOOL" in t:
        return "boolean"
    if "INT" in t:
        return "integer"
    if any(x in t for x in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in t:
        return "blob"
    if any(x in t for x in ("REAL", "FLOA", "DOUB")):
        return "real"
    return None  # NUMERIC affinity or none declared: a value's type is not the column's


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
        table = Table(name, columns, tuple(c for _, c in sorted(pk)), problems=problems)
        fks: dict[int, list[tuple]] = {}
        for fid, _seq, parent, src, dst, on_update, on_delete, _match in self.rows(
                f"PRAGMA foreign_key_list({q(name)})"):
            fks.setdefault(fid, []).append((parent, src, dst, on_update, on_delete))
        for parts in fks.values():
            parent = parts[0][0]
            dests = [p[2] for p in parts]
            if any(d is None for d in dests):  # REFERENCES parent: its primary key
                dests = [r[1] for r in sorted((r for r in self.rows(f"PRAGMA table_info({q(parent)})")
                                              if r[5]), key=lambda r: r[5])]
            table.foreign_keys.append(ForeignKey(tuple(p[1] for p in parts), parent, tuple(dests),
                                                 parts[0][4], parts[0][3]))
        for _seq, index, unique, origin, partial in self.rows(f"PRAGMA index_list({q(name)})"):
            if origin == "pk":
                continue
            info = self.rows(f"PRAGMA index_xinfo({q(index)})")
            keys = [r for r in info if r[5]]
            if partial or any(r[1] < 0 for r in keys) or any(r[3] or r[4] != "BINARY" for r in keys):
                table.problems.append(f"index {index} is partial, on an expression, descending "
                                      "or with a collation")
                continue
            cols = tuple(r[2] for r in keys)
            if origin == "u":
                table.uniques.append(cols)
            else:
                table.indexes.append((index, cols, bool(unique)))
        if re.search(r"\bCHECK\s*\(", sql or "", re.I) and name not in BY_MIGRATIONS:
            table.problems.append("it has a CHECK constraint")
        if re.match(r"\s*CREATE\s+VIRTUAL\b", sql or "", re.I):
            table.problems.append("it is a virtual table")
        if re.search(r"\)\s*(?:STRICT|WITHOUT\s+ROWID)\b", sql or "", re.I):
            table.problems.append("it is STRICT or WITHOUT ROWID")
        return table

    def pg_table(self, name: str) -> Table:
        oid = self.rows("SELECT oid FROM pg_catalog.pg_class WHERE relname = %s"
                        " AND relnamespace = current_schema()::regnamespace", (name,))[0][0]
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
        table = Table(name, columns, (), problems=problems)
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
                parent_cols = self.rows(
                    "SELECT attname FROM pg_catalog.pg_attribute a JOIN unnest(%s::int2[])"
                    " WITH ORDINALITY k(num, pos) ON a.attnum = k.num"
                    " WHERE a.attrelid = %s::regclass ORDER BY k.pos", (parent_keys, q(parent)))
                table.foreign_keys.append(ForeignKey(cols, parent, tuple(r[0] for r in parent_cols),
                                                     FK_ACTIONS[dele], FK_ACTIONS[upd]))
            elif kind == "c" and name not in BY_MIGRATIONS:
                table.problems.append(f"it has a CHECK constraint ({conname})")
            elif kind not in ("c", "n"):
                table.problems.append(f"it has a constraint of kind {kind!r} ({conname})")
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
        return table


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
    text = re.sub(r"::[\w ]+$", "", column.default or "").strip()
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


def create_table_sql(table: Table, to_pg: bool, same: bool) -> str:
    """CREATE TABLE in the target's dialect: same declared types within one dialect, else mapped."""
    parts = []
    for c in table.columns:
        declared = c.declared if same else (PG_TYPES if to_pg else SQLITE_TYPES)[c.kind]
        text = f"{q(c.name)} {declared}" + (" NOT NULL" if c.notnull else "")
        if c.default is not None:
            text += f" DEFAULT {c.default if same else default_sql(c, to_pg)}"
        parts.append(text)
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


# -- canonical rows and checksums ------------------------------------------------------------
# A row's checksum is the first 8 bytes of md5(canonical text), as a signed 64-bit integer;
# a table's is the sum over its rows: order-independent. Canonical text: the values joined
# by '|'; NULL is '-', text is `<length in characters>:<text>` (so no value can forge a
# separator), integers in decimal, booleans 0/1, blobs in upper-case hex, reals as
# `float.hex()`. PostgreSQL computes it in SQL (`canon_sql`), on the server; SQLite rows are
# made canonical in Python as they are read (`canon_function`): a chain of `||` in SQLite
# copies the growing string at every step and took twice as long. Real columns have no
# exact text form in PostgreSQL's SQL, so there a table with one is read and made canonical
# in Python too.

def canon_sql(table: Table) -> str | None:
    """PostgreSQL's expression of a row's canonical text (None: the table has a real column)."""
    parts = []
    for c in table.columns:
        col = q(c.name)
        if c.kind == "text":
            parts.append(f"CASE WHEN {col} IS NULL THEN '-' ELSE length({col}) || ':' || {col} END")
        elif c.kind == "integer":
            parts.append(f"coalesce({col}::text, '-')")
        elif c.kind == "boolean":
            parts.append(f"CASE WHEN {col} IS NULL THEN '-' WHEN {col} THEN '1' ELSE '0' END")
        elif c.kind == "blob":
            parts.append(f"coalesce(upper(encode({col}, 'hex')), '-')")
        else:
            return None
    return " || '|' || ".join(parts)


CANON = {  # Python's twin of canon_sql, per kind, for the value `v`
    "text": "f'{{len({v})}}:{{{v}}}'",
    "integer": "str({v})",
    "boolean": "('1' if {v} else '0')",
    "blob": "bytes({v}).hex().upper()",
    "real": "float({v}).hex()",
}


def canon_function(table: Table) -> Callable[[tuple], str]:
    """A function giving a row's canonical text from its first values, in column order.

    Generated per table (one expression, no loop over columns): it runs once per row of the
    largest tables, and a loop over the columns took twice as long. Only column positions
    and the fixed templates of CANON go into the code, never a name or a value.
    """
    parts = []
    for i, column in enumerate(table.columns):
        value = f"r[{i}]"
        parts.append(f"('-' if {value} is None else {CANON[column.kind].format(v=value)})")
    code = "lambda r: '|'.join((" + ", ".join(parts) + ",))"
    return eval(code, {"__builtins__": {"len": len, "str": str, "bytes": bytes, "float": float}})


FIRST_8_BYTES = struct.Struct(">q").unpack_from  # the digest's first 8 bytes, a signed 64-bit int


def row_hash(text: str, md5: Callable = hashlib.md5) -> int:
    return FIRST_8_BYTES(md5(text.encode()).digest())[0]


def pg_hash_sql(canon: str) -> str:
    return f"('x' || left(md5({canon}), 16))::bit(64)::bigint"


def checksum(side: Side, table: Table) -> tuple[int, int]:
    """(rows, checksum) of `table` as stored on `side`."""
    name = q(table.name)
    canon = canon_sql(table) if side.is_pg else None
    if canon is not None:
        count, total = side.rows(f"SELECT count(*), coalesce(sum({pg_hash_sql(canon)}), 0) FROM {name}")[0]
        return count, int(total)
    make = canon_function(table)
    cursor = side.db.execute_sql(f"SELECT {', '.join(map(q, table.names))} FROM {name}")
    count = total = 0
    while batch := cursor.fetchmany(BATCH):
        count += len(batch)
        total += sum(row_hash(make(r)) for r in batch)
    return count, total


# -- values that cannot be carried -----------------------------------------------------------

def bad_value_sql(table: Table, source_pg: bool, target_types: dict[str, str]) -> str | None:
    """SQL naming the first column of a row holding a value the target would change silently.

    From SQLite: a BOOLEAN holding anything but 0/1 (PostgreSQL's boolean would take any true
    value as true), an integer, real or blob column holding another type or a number out of
    the target's range. From PostgreSQL: a NaN (SQLite stores NULL). Text columns, most of
    the data, are not tested here: a TEXT column of SQLite can only hold text or a blob, and
    a blob fails loudly where it is written and is named then (`misfit`); NUL characters
    are found in the canonical text.
    `target_types`: the target's PostgreSQL type names (empty for a SQLite target).
    """
    tests = []
    for c in table.columns:
        col = q(c.name)
        if source_pg and not target_types and c.kind == "real":
            tests.append((c.name, f"{col} = 'NaN'::float8"))
        elif not source_pg and target_types and c.kind == "boolean":
            tests.append((c.name, f"typeof({col}) NOT IN ('integer', 'null') OR {col} NOT IN (0, 1)"))
        elif not source_pg and target_types and c.kind != "text":
            # psycopg's binary int4 wraps a number that does not fit instead of failing
            limit = INT_RANGES.get(target_types.get(c.name, ""), 2**63)
            test = f"typeof({col}) NOT IN ('{SQLITE_STORAGE[c.kind]}', 'null')"
            if c.kind == "integer" and limit < 2**63:
                test += f" OR {col} NOT BETWEEN {-limit} AND {limit - 1}"
            tests.append((c.name, test))
    if not tests:
        return None
    whens = " ".join(f"WHEN {test} THEN '{name.replace(chr(39), chr(39) * 2)}'" for name, test in tests)
    return f"CASE {whens} END"


SQLITE_STORAGE = {"integer": "integer", "boolean": "integer", "real": "real", "blob": "blob"}
PYTHON_TYPES = {"text": str, "integer": int, "boolean": int, "real": float, "blob": bytes}


def misfit(row: tuple, table: Table, target_types: dict[str, str]) -> str | None:
    """The first column of `row` (as read from SQLite) that PostgreSQL cannot hold as it is."""
    for value, column in zip(row, table.columns, strict=False):
        if value is None:
            continue
        if not isinstance(value, PYTHON_TYPES[column.kind]) or isinstance(value, bool):
            return column.name
        if isinstance(value, str) and "\x00" in value:
            return column.name
        limit = INT_RANGES.get(target_types.get(column.name, ""), 2**63)
        if column.kind == "integer" and isinstance(value, int) and not -limit <= value < limit:
            return column.name
        if column.kind == "boolean" and value not in (0, 1):
            return column.name
    return None


def why_not(value: object, column: Column, target_pg: bool, target_type: str) -> str:
    """In words, why `value` cannot be written to the target's column."""
    if target_pg and isinstance(value, str) and "\x00" in value:
        return "it holds a NUL character, which PostgreSQL text cannot store"
    if isinstance(value, int) and column.kind == "integer":
        return f"{value} does not fit the target's {target_type} column"
    if isinstance(value, float):
        return f"{value!r} cannot be stored as it is in SQLite (NaN becomes NULL)"
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    return f"it holds {type(value).__name__} {shown} where the column is {column.declared or column.kind}"


# -- the copy --------------------------------------------------------------------------------

@contextlib.contextmanager
def source_snapshot(target: Target) -> Iterator[Side]:
    """The source inside one read transaction: every table comes from the same snapshot."""
    if target.is_server:
        db = open_url(target.server_url, target.busy_timeout, create=False)
    else:
        db = open_sqlite(target.real_path, target.busy_timeout, create=False, readonly=True)
    try:
        with translate_errors(str(target)), Dialect.of(db).snapshot(target.busy_timeout):
            yield Side(target, db)
    finally:
        db.close()


def migrate_command(target: Target) -> str:
    option = f"--db-url '{target}'" if target.is_server else f"--db-path '{target.path}'"
    return f"sessionorm migrate {option}"


def check_source(side: Side, extra_dirs: list[str]) -> MigrationRunner:
    """Refuse a source that is not fully migrated, naming the command that migrates it."""
    runner = MigrationRunner(side.db, extra_dirs=extra_dirs)
    rows = runner.status()
    pending = [m.name for m in rows if not m.applied]
    if pending or not rows:
        raise CopyError(f"refusing to copy: {side.target} has pending migrations "
                        f"({', '.join(pending) or 'all'}); run `{migrate_command(side.target)}` "
                        "first (nothing was written)")
    unknown = [m.name for m in rows if m.path is None]
    if unknown:
        raise CopyError(f"refusing to copy: {side.target} records migrations without a script here "
                        f"({', '.join(unknown)}); pass their folder with --migrations-dir")
    return runner


def plan_tables(source: Side, to_pg: bool) -> dict[str, Table]:
    """Every source table, reflected; anything that cannot be carried refused by name."""
    same = source.is_pg == to_pg
    objects = source.other_objects()
    if objects:
        raise CopyError(f"refusing to copy {source.target}: it has {', '.join(objects)}, which copy "
                        "does not carry; nothing was written")
    tables = {name: source.table(name) for name in source.table_names()}
    refused = []
    for table in tables.values():
        problems = carry_problems(table, to_pg, same)
        if problems:
            refused.append(f"{table.name} ({'; '.join(problems)})")
    if refused:
        raise CopyError(f"refusing to copy: these tables cannot be carried: {'; '.join(refused)}; "
                        "nothing was written")
    return tables


def copy_database(source: Target, target: Target, extra_dirs: list[str] | None = None,
                  progress: Progress = None) -> CopyReport:
    """Copy every table of `source` into `target` (new or empty); see the module's docstring."""
    start = time.monotonic()
    extra_dirs = extra_dirs or []
    report = CopyReport(str(source), str(target))
    if not target.is_server:
        if not source.is_server and real_path(target.path) == source.real_path:  # type: ignore[arg-type]
            raise CopyError(f"refusing to copy {source} onto itself")
        check_target_path(target)
    with source_snapshot(source) as src:
        check_source(src, extra_dirs)
        tables = plan_tables(src, target.is_server)
        if target.is_server:
            copy_to_postgres(src, target, tables, extra_dirs, report, progress)
        else:
            copy_to_sqlite(src, target, tables, extra_dirs, report, progress)
    report.seconds = time.monotonic() - start
    return report


# -- the target ------------------------------------------------------------------------------

def not_empty(side: Side) -> list[str]:
    names = side.table_names()
    return names + [o for o in side.other_objects() if not o.startswith("trigger")]


def refuse_not_empty(side: Side) -> None:
    found = not_empty(side)
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise CopyError(f"refusing to copy into {side.target}: it is not empty ({shown}); copy into a "
                        "new or empty database (nothing was written)")


def create_schema(dst: Side, tables: dict[str, Table], order: list[str], same: bool,
                  extra_dirs: list[str], in_transaction: bool = False) -> MigrationRunner:
    """`sessions` in the source's layout, the migrations, the other tables; history emptied.

    Migration 1 adopts the `sessions` table made here (as `migrate` adopts a legacy file's)
    and finds it empty; the history rows it writes make way for the source's.
    """
    if SESSIONS in tables:
        dst.db.execute_sql(create_table_sql(tables[SESSIONS], dst.is_pg, same))
        for index, cols, unique in tables[SESSIONS].indexes:
            dst.db.execute_sql(index_sql(SESSIONS, index, cols, unique))
    # PostgreSQL: every migration runs inside the copy's one transaction, which already holds
    # the migration lock -- the dry run's mode -- so the copy commits whole or not at all.
    runner = MigrationRunner(dst.db, extra_dirs=extra_dirs,
                             options=MigrationOptions(rehearsal=in_transaction))
    runner.up()
    for name in HISTORY:
        dst.db.execute_sql(f"DELETE FROM {q(name)}")
    made = set(dst.table_names())
    for name in order:
        table = tables[name]
        if name in BY_MIGRATIONS:
            have = {c.name for c in dst.table(name).columns}
            if have != set(table.names):
                raise CopyError(f"refusing to copy: the source's {name} has the columns "
                                f"{sorted(table.names)}, the migrations make {sorted(have)}")
            live = {(cols, unique) for _, cols, unique in dst.table(name).indexes}
            for index, cols, unique in table.indexes:
                if (cols, unique) not in live:
                    dst.db.execute_sql(index_sql(name, index, cols, unique))
        elif name not in made:
            dst.db.execute_sql(create_table_sql(table, dst.is_pg, same))
            for index, cols, unique in table.indexes:
                dst.db.execute_sql(index_sql(name, index, cols, unique))
    return runner


def index_sql(table: str, name: str, columns: tuple[str, ...], unique: bool) -> str:
    return (f"CREATE {'UNIQUE ' if unique else ''}INDEX {q(name)} ON {q(table)}"
            f" ({', '.join(map(q, columns))})")


def check_target(dst: Side, runner: MigrationRunner, report: CopyReport) -> None:
    """Checksums equal on both sides, the migrations applied and the schema the models'."""
    differ = [f"{t.name}: {t.rows} rows, checksum {t.checksum:x} in the source; {t.target_rows} rows, "
              f"checksum {t.target_checksum:x} in the copy" for t in report.tables if not t.ok]
    if differ:
        raise CopyError(f"the copy differs from the source, so it was discarded: {'; '.join(differ)}")
    problems = migration_problems(runner) + drift(dst.db, MODELS).problems
    if problems:
        raise CopyError(f"the copy fails verify, so it was discarded: {'; '.join(problems)}")


class Meter:
    """Progress of one table: rows done and the rate, about twice a second."""

    def __init__(self, table: str, progress: Progress) -> None:
        self.table, self.progress = table, progress
        self.start = self.last = time.monotonic()
        self.done = 0

    def add(self, rows: int, last: bool = False) -> None:
        self.done += rows
        now = time.monotonic()
        if self.progress is not None and (last or now - self.last >= 0.5):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            self.progress(f"copy: {self.table}: {self.done:,} rows, {rate:,.0f} rows/s")


def source_batches(src: Side, table: Table, target_types: dict[str, str], hashed: bool = True
                   ) -> Iterator[tuple[list[tuple], int]]:
    """The source's rows in primary-key order, in batches, each with the batch's checksum
    (0 when not `hashed`: the caller reads the source's checksum again later).

    Rows come without their checksum and check columns; a value the target cannot hold
    raises `CopyError` naming the table, the row's key and the column.
    """
    names = table.names
    cols = ", ".join(map(q, names))
    order = ", ".join(map(q, table.primary_key))
    canon = canon_sql(table) if src.is_pg else None  # PostgreSQL hashes each row as it sends it
    bad = bad_value_sql(table, src.is_pg, target_types)
    n = len(names)
    make = canon_function(table)
    extra = ([pg_hash_sql(canon)] if canon else []) + ([bad] if bad else [])
    select = f"SELECT {', '.join([cols, *extra])} FROM {q(table.name)} ORDER BY {order}"
    checked = bad is not None
    if src.is_pg:
        rows = pg_copy_out(src, select, table, canon is not None, checked)
    else:
        rows = sqlite_rows(src, select)
    for batch in rows:
        if checked:
            for row in batch:
                if row[-1] is not None:
                    refuse_value(table, row, row[-1], target_types)
        if canon is not None:
            total = sum(r[n] for r in batch)
        elif not hashed:
            total = 0
        else:
            texts = [make(r) for r in batch]
            if target_types and not src.is_pg and any("\x00" in t for t in texts):
                refuse_misfit(table, next(r for r, t in zip(batch, texts, strict=True) if "\x00" in t),
                              target_types)
            total = sum(row_hash(t) for t in texts)
        yield ([r[:n] for r in batch] if len(batch[0]) != n else batch), total


def sqlite_rows(src: Side, select: str) -> Iterator[list[tuple]]:
    cursor = src.db.connection().execute(select)
    while batch := cursor.fetchmany(BATCH):
        yield batch


def pg_copy_out(src: Side, select: str, table: Table, hashed: bool, checked: bool
                ) -> Iterator[list[tuple]]:
    """`COPY (SELECT …) TO STDOUT` in binary: values come back as the types they are."""
    types = [*pg_types(src, table.name).values()]
    types += (["int8"] if hashed else []) + (["text"] if checked else [])
    with src.db.connection().cursor().copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)") as out:
        out.set_types(types)
        batch = []
        for row in out.rows():
            batch.append(row)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def pg_types(side: Side, name: str) -> dict[str, str]:
    """Column name -> PostgreSQL type name (`int4`, `text`, …), in column order."""
    return dict(side.rows(
        "SELECT a.attname, t.typname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t"
        " ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum", (q(name),)))


def refuse_misfit(table: Table, row: tuple, target_types: dict[str, str]) -> None:
    """Raise `CopyError` naming the column of `row` that the target cannot hold, if one is found."""
    column = misfit(row, table, target_types)
    if column is not None:
        refuse_value(table, row, column, target_types)


def refuse_value(table: Table, row: tuple, column: str, target_types: dict[str, str]) -> None:
    names = table.names
    where = ", ".join(f"{k}={row[names.index(k)]!r}" for k in table.primary_key)
    col = table.columns[names.index(column)]
    value = row[names.index(column)]
    why = why_not(value, col, bool(target_types), target_types.get(column, ""))
    raise CopyError(f"cannot copy {table.name} row {where} column {column}: {why}; "
                    "nothing was written (change the value in the source, then copy again)")


def copy_to_postgres(src: Side, target: Target, tables: dict[str, Table], extra_dirs: list[str],
                     report: CopyReport, progress: Progress) -> None:
    """One transaction: schema, keys off, COPY, keys back, checks; committed only if all pass."""
    db = open_url(target.server_url, target.busy_timeout, create=False)
    try:
        with translate_errors(str(target)):
            dst = Side(target, db)
            refuse_not_empty(dst)  # before the lock: a clear refusal without waiting
            order = load_order(tables)
            with db.atomic():
                lock_database(db)  # the migration lock: another copy or migrate waits
                refuse_not_empty(dst)
                runner = create_schema(dst, tables, order, src.is_pg, extra_dirs, in_transaction=True)
                keys = drop_keys(dst, order)
                # Index builds sort in memory on the server (the client's memory is not involved).
                db.execute_sql(f"SET LOCAL maintenance_work_mem = '{PG_SORT_MEMORY}'")
                later = not src.is_pg  # a SQLite source is hashed again while the server works
                for name in order:
                    load_postgres(src, dst, tables[name], report, progress, hashed=not later)
                server = on_this_connection(dst)

                def server_work() -> None:
                    restore_keys(server, keys, progress)
                    server.db.execute_sql("ANALYZE " + ", ".join(q(t) for t in order))
                    target_checksums(server, tables, report, progress)

                with ThreadPoolExecutor(max_workers=1) as pool:
                    work = pool.submit(server_work)  # waits on the server: the GIL is free
                    if later:
                        source_checksums(src, tables, report)
                    work.result()
                check_target(dst, runner, report)
    finally:
        db.close()


def drop_keys(dst: Side, order: list[str]) -> list[tuple[str, str, str, str]]:
    """Drop the loaded tables' keys, foreign keys and indexes; return how to make them again.

    Loading bare tables and building each index once, then validating each foreign key in
    one pass, is much faster than paying for them row by row; they come back with the same
    names and definitions, in the same transaction (as migration 1's bulk load does).
    """
    saved = dst.rows(
        "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid),"
        " c.contype::text FROM pg_catalog.pg_constraint c WHERE c.contype IN ('p', 'u', 'f')"
        " AND c.conrelid = ANY(%s::text[]::regclass[]) ORDER BY c.contype = 'f', 1, 2",
        ([q(t) for t in order],))
    saved += dst.rows(
        "SELECT x.indrelid::regclass::text, quote_ident(i.relname), pg_get_indexdef(x.indexrelid), 'i'"
        " FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = ANY(%s::text[]::regclass[]) AND NOT EXISTS (SELECT 1 FROM"
        " pg_catalog.pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)"
        " ORDER BY 1, 2", ([q(t) for t in order],))
    for table, name, _, kind in sorted(saved, key=lambda s: s[3] != "f"):  # foreign keys first
        if kind == "i":
            dst.db.execute_sql(f"DROP INDEX {name}")
        else:
            dst.db.execute_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    return saved


def restore_keys(dst: Side, saved: list[tuple[str, str, str, str]], progress: Progress) -> None:
    """Keys first, then indexes, then foreign keys (they need the keys they reference)."""
    grouped: dict[tuple[int, str], list[str]] = {}
    for table, name, definition, kind in saved:
        if kind == "i":
            grouped.setdefault((1, definition), [])
        else:
            grouped.setdefault((0 if kind != "f" else 2, table), []).append(
                f"ADD CONSTRAINT {name} {definition}")
    for n, ((rank, what), adds) in enumerate(sorted(grouped.items())):
        if progress is not None:
            progress(f"copy: keys, indexes and foreign keys: {n}/{len(grouped)} built")
        dst.db.execute_sql(what if rank == 1 else f"ALTER TABLE {what} {', '.join(adds)}")


def load_postgres(src: Side, dst: Side, table: Table, report: CopyReport, progress: Progress,
                  hashed: bool = True) -> None:
    types = pg_types(dst, table.name)
    names = table.names
    meter = Meter(table.name, progress)
    count = total = 0
    cols = ", ".join(map(q, names))
    import psycopg

    # psycopg's default writer: its QueuedLibpqWriter (network writes in a thread) measured
    # 0.6-1.5 s slower at 1,000,000 sessions on two cores, the thread and the GIL contending.
    try:
        with dst.db.connection().cursor().copy(
                f"COPY {q(table.name)} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([types[n] for n in names])
            write = copy.write_row
            for batch, checksum_ in source_batches(src, table, types, hashed):
                try:
                    for row in batch:
                        write(row)
                except (TypeError, ValueError, OverflowError, struct.error, psycopg.DataError):
                    # a value the binary format refuses (text in an integer column, a number
                    # too large for int4, ...): name it; the transaction is rolled back
                    refuse_misfit(table, row, types)
                    raise
                count += len(batch)
                total += checksum_
                meter.add(len(batch))
    except psycopg.errors.CharacterNotInRepertoire:
        # the server refused a NUL character in text (22021): name the first row holding one
        refuse_nul(src, table, types)
        raise
    meter.add(0, last=True)
    report.tables.append(TableCopy(table.name, count, total))


def source_checksums(src: Side, tables: dict[str, Table], report: CopyReport) -> None:
    """Each copied table's checksum, read again from the source's same snapshot."""
    for result in report.tables:
        rows, result.checksum = checksum(src, tables[result.name])
        if rows != result.rows:  # cannot happen inside one read transaction
            raise CopyError(f"{result.name}: {rows} rows on the second reading of the source, "
                            f"{result.rows} on the first")


def refuse_nul(src: Side, table: Table, types: dict[str, str]) -> None:
    """`CopyError` naming the first row of `table` (in key order) with a NUL in a text column."""
    texts = [i for i, c in enumerate(table.columns) if c.kind == "text"]
    select = (f"SELECT {', '.join(map(q, table.names))} FROM {q(table.name)}"
              f" ORDER BY {', '.join(map(q, table.primary_key))}")
    for batch in sqlite_rows(src, select):
        for row in batch:
            for i in texts:
                if isinstance(row[i], str) and "\x00" in row[i]:
                    refuse_value(table, row, table.names[i], types)


def on_this_connection(side: Side) -> Side:
    """`side` for another thread, on the same driver connection (so in its transaction).

    peewee keeps one connection per thread: through it, another thread would open a new
    connection, outside the copy's transaction, and see none of its rows.
    """
    conn = side.db.connection()

    class Connection:
        @staticmethod
        def execute_sql(sql: str, params: tuple = ()) -> Any:
            return conn.execute(sql, params or None)  # None: a '%' in the SQL is no placeholder

        @staticmethod
        def connection() -> Any:
            return conn

    other = Side.__new__(Side)
    other.target, other.db, other.is_pg = side.target, cast(Any, Connection()), side.is_pg
    return other


def target_checksums(dst: Side, tables: dict[str, Table], report: CopyReport, progress: Progress) -> None:
    """Each table's rows and checksum, read back from the target.

    A SQLite target's checksums are Python's work (PostgreSQL computes its own, on the
    server): a helper process takes the first half (by rowid) of every large table, on the
    other core, while this one takes the rest.
    """
    helper = None if dst.is_pg else start_helper(dst, [tables[r.name] for r in report.tables])
    halves = helper[1] if helper else {}
    for result in report.tables:
        if progress is not None:
            progress(f"copy: checking {result.name}")
        table = tables[result.name]
        if result.name in halves:
            result.target_rows, result.target_checksum = rowid_checksum(
                dst.db.connection(), table, halves[result.name] + 1, None)
        else:
            result.target_rows, result.target_checksum = checksum(dst, table)
    if helper:
        process, halves = helper
        out, err = process.communicate()
        if process.returncode != 0:
            raise CopyError(f"the checksum helper failed: {err.decode(errors='replace').strip()[-300:]}")
        for result in report.tables:
            if result.name in halves:
                rows, total = json.loads(out)[result.name]
                result.target_rows += rows
                result.target_checksum += total


HELPER_ROWS = 20_000  # a table smaller than this is checked whole, by this process


def start_helper(dst: Side, tables: list[Table]) -> tuple[subprocess.Popen, dict[str, int]] | None:
    """Start the checksum helper on the first half of each large table: (process, table -> last rowid)."""
    halves = {}
    con = dst.db.connection()
    for table in tables:
        low, high = con.execute(f"SELECT min(rowid), max(rowid) FROM {q(table.name)}").fetchone()
        if low is not None and high - low >= HELPER_ROWS:
            halves[table.name] = (low + high) // 2
    if not halves:
        return None
    job = {"path": str(dst.target.path), "tables": [
        {"name": t.name, "kinds": [c.kind for c in t.columns], "names": t.names,
         "last": halves[t.name]} for t in tables if t.name in halves]}
    # this very sessionorm, installed or not
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-c", "from sessionorm.transfer import helper; helper()"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env)
    assert process.stdin is not None
    process.stdin.write(json.dumps(job).encode())
    process.stdin.close()
    process.stdin = None  # communicate() must not flush a closed pipe
    return process, halves


def helper() -> None:
    """The checksum helper process: a JSON job on stdin, {table: [rows, checksum]} on stdout."""
    job = json.load(sys.stdin)
    con = sqlite3.connect(f"file:{urllib.parse.quote(job['path'])}?mode=ro", uri=True)
    results = {}
    for spec in job["tables"]:
        table = Table(spec["name"], [Column(n, "", k, False, None) for n, k in
                                     zip(spec["names"], spec["kinds"], strict=True)], ())
        results[spec["name"]] = rowid_checksum(con, table, None, spec["last"])
    con.close()
    json.dump(results, sys.stdout)


def rowid_checksum(con: sqlite3.Connection, table: Table, first: int | None, last: int | None
                   ) -> tuple[int, int]:
    """(rows, checksum) of the rows of a SQLite table with `first <= rowid <= last`."""
    make = canon_function(table)
    where = " AND ".join(([f"rowid >= {int(first)}"] if first is not None else [])
                         + ([f"rowid <= {int(last)}"] if last is not None else [])) or "1"
    cursor = con.execute(f"SELECT {', '.join(map(q, table.names))} FROM {q(table.name)} WHERE {where}")
    count = total = 0
    while batch := cursor.fetchmany(BATCH):
        count += len(batch)
        total += sum(row_hash(make(r)) for r in batch)
    return count, total


# -- SQLite target ---------------------------------------------------------------------------

PARTIAL = re.compile(r"\.copy-(\d+)(?:-wal|-shm|-journal)?$")


def check_target_path(target: Target) -> None:
    """A SQLite target must not exist, or be empty (no tables); else refuse, writing nothing."""
    path = real_path(target.path)  # type: ignore[arg-type]
    if path.is_dir():
        raise DatabaseOpenError(f"{path} is a directory, not a database file")
    if path.exists() and path.stat().st_size > 0:
        with source_snapshot(Target(path=path, busy_timeout=target.busy_timeout)) as side:
            refuse_not_empty(side)


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.copy-{os.getpid()}")


def remove_stale_partials(path: Path) -> None:
    """The temporary files of copies whose process is gone (killed before it finished)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.copy-*"):
        match = PARTIAL.search(leftover.name)
        if match and not process_alive(int(match.group(1))):
            leftover.unlink(missing_ok=True)


def copy_to_sqlite(src: Side, target: Target, tables: dict[str, Table], extra_dirs: list[str],
                   report: CopyReport, progress: Progress) -> None:
    """Into a temporary file next to the target, checked, then renamed into place."""
    path = real_path(target.path)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    remove_stale_partials(path)
    tmp = partial_path(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    order = load_order(tables)
    try:
        db = open_sqlite(tmp, target.busy_timeout, create=True)
        try:
            with translate_errors(str(target)):
                dst = Side(Target(path=tmp, busy_timeout=target.busy_timeout), db)
                runner = create_schema(dst, tables, order, not src.is_pg, extra_dirs)
                con = db.connection()
                # A file nobody else sees until it is renamed: no journal, no syncs while loading.
                con.execute("PRAGMA foreign_keys = 0")
                con.execute("PRAGMA journal_mode = OFF")
                con.execute("PRAGMA synchronous = OFF")
                con.execute(f"PRAGMA cache_size = {SQLITE_CACHE}")
                indexes = [r[0] for r in con.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]
                for (name,) in con.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                        ).fetchall():
                    con.execute(f"DROP INDEX {q(name)}")
                for name in order:
                    load_sqlite(src, dst, tables[name], report, progress)
                # No foreign_key_check: the rows are the source's, proved equal by the checksums
                # (orphans a SQLite source may hold are copied as they are, and `verify` names them).
                with reporting(db, None if progress is None else
                               lambda s: progress(f"copy: building indexes: {s:.0f} s")):
                    con.execute("BEGIN")
                    for sql in indexes:
                        con.execute(sql)
                    con.execute("COMMIT")
                target_checksums(dst, tables, report, progress)
                check_target(dst, runner, report)
                con.execute("PRAGMA journal_mode = WAL")  # the contract's mode, as migrate leaves it
        finally:
            db.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        put_in_place(tmp, path, existed, target)
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)


def put_in_place(tmp: Path, path: Path, existed: bool, target: Target) -> None:
    """Link the finished copy to its name; an existing (empty) target is checked again, then replaced."""
    if existed:
        check_sqlite_file(path, must_exist=False)
        if path.exists() and path.stat().st_size > 0:
            with source_snapshot(Target(path=path, busy_timeout=target.busy_timeout)) as side:
                refuse_not_empty(side)
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise CopyError(f"refusing to copy into {path}: it appeared while copying; "
                            "nothing was written") from None
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_sqlite(src: Side, dst: Side, table: Table, report: CopyReport, progress: Progress) -> None:
    con = dst.db.connection()
    names = table.names
    insert = (f"INSERT INTO {q(table.name)} ({', '.join(map(q, names))})"
              f" VALUES ({', '.join('?' * len(names))})")
    meter = Meter(table.name, progress)
    count = total = 0
    con.execute("BEGIN")
    for batch, checksum_ in source_batches(src, table, {}):
        con.executemany(insert, batch)
        count += len(batch)
        total += checksum_
        meter.add(len(batch))
    con.execute("COMMIT")
    meter.add(0, last=True)
    report.tables.append(TableCopy(table.name, count, total))
