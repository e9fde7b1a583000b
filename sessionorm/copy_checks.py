"""What `sessionorm copy` proves: per table, an order-independent checksum on both sides, and
the values the target could not hold as they are, named before or as they fail.

A row's checksum is the first 64 bits of the md5 of its canonical text (`canon_sql` on
PostgreSQL, its twin `canon_function` in Python); a table's is their sum.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .copy_tables import BATCH, INT_RANGES, Column, CopyError, Side, Table, q

Progress = Callable[[str], None] | None  # receives one-line progress messages


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


def refuse_nul(src: Side, table: Table, types: dict[str, str]) -> None:
    """`CopyError` naming the first row of `table` (in key order) with a NUL in a text column."""
    texts = [i for i, c in enumerate(table.columns) if c.kind == "text"]
    select = (f"SELECT {', '.join(map(q, table.names))} FROM {q(table.name)}"
              f" ORDER BY {', '.join(map(q, table.primary_key))}")
    cursor = src.db.connection().execute(select)
    while batch := cursor.fetchmany(BATCH):
        for row in batch:
            for i in texts:
                if isinstance(row[i], str) and "\x00" in row[i]:
                    refuse_value(table, row, table.names[i], types)


def source_checksums(src: Side, tables: dict[str, Table], report: CopyReport) -> None:
    """Each copied table's checksum, read again from the source's same snapshot."""
    for result in report.tables:
        rows, result.checksum = checksum(src, tables[result.name])
        if rows != result.rows:  # cannot happen inside one read transaction
            raise CopyError(f"{result.name}: {rows} rows on the second reading of the source, "
                            f"{result.rows} on the first")


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
    process = subprocess.Popen([sys.executable, "-c", "from sessionorm.copy_checks import helper; helper()"],
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
