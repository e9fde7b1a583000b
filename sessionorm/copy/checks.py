"""What `sessionorm copy` proves: per table, rows and a checksum on both sides, and the values
the target could not hold as they are, named before or as they fail.

When PostgreSQL is one side, the checksum is a digest of the rows' binary `COPY` bytes
(`backends.row_digests`). SQLite to SQLite, and where the bytes cannot be had, a row's
checksum is the first 64 bits of the md5 of its canonical text (`canon_sql` on PostgreSQL,
its twin `canon_function` in Python; also the independent reading of `pg_copy.check_samples`);
a table's is their sum, order-independent.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..backends import Backend
from ..identifiers import q
from ..progress import Progress
from .checksums import BATCH, canon_text_function, first_part_checksum, hash_rows, ready, rowid_checksum
from .tables import INT_RANGES, Column, CopyError, Side, Table


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


def canon_function(table: Table) -> Callable[[tuple], str]:
    """A function giving a row's canonical text from its first values, in column order."""
    return canon_text_function([c.kind for c in table.columns])


def checksum(side: Side, table: Table) -> tuple[int, int]:
    """(rows, checksum) of `table` as stored on `side`."""
    name = q(table.name)
    hashed = side.backend.row_hash_sql(table)
    if hashed is not None:  # the server hashes its rows
        count, total = side.rows(f"SELECT count(*), coalesce(sum({hashed}), 0) FROM {name}")[0]
        return count, int(total)
    cursor = side.db.execute_sql(f"SELECT {', '.join(map(q, table.names))} FROM {name}")
    return hash_rows(cursor, canon_function(table))


# -- values that cannot be carried -----------------------------------------------------------


def bad_value_sql(table: Table, source: Backend, target_types: dict[str, str]) -> str | None:
    """SQL naming the first column of a row holding a value the target would change silently
    (`Backend.unfit_value_tests` of the source); None: nothing to test."""
    tests = source.unfit_value_tests(table, target_types)
    if not tests:
        return None
    whens = " ".join(f"WHEN {test} THEN '{name.replace(chr(39), chr(39) * 2)}'" for name, test in tests)
    return f"CASE {whens} END"


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
    raise CopyError(
        f"cannot copy {table.name} row {where} column {column}: {why}; "
        "nothing was written (change the value in the source, then copy again)"
    )


def refuse_nul(src: Side, table: Table, types: dict[str, str]) -> None:
    """`CopyError` naming the first row of `table` (in key order) with a NUL in a text column."""
    texts = [i for i, c in enumerate(table.columns) if c.kind == "text"]
    select = (
        f"SELECT {', '.join(map(q, table.names))} FROM {q(table.name)}"
        f" ORDER BY {', '.join(map(q, table.primary_key))}"
    )
    cursor = src.db.connection().execute(select)
    while batch := cursor.fetchmany(BATCH):
        for row in batch:
            for i in texts:
                if isinstance(row[i], str) and "\x00" in row[i]:
                    refuse_value(table, row, table.names[i], types)


def target_checksums(
    dst: Side,
    tables: dict[str, Table],
    report: CopyReport,
    progress: Progress,
    helper: ChecksumHelper | None = None,
) -> None:
    """Each table's rows and checksum, read back from the target.

    A SQLite target's checksums are Python's work (PostgreSQL computes its own, on the
    server): `helper`, another process, takes the first half (by rowid) of every large
    table, on the other core, while this one takes the rest.
    """
    halves = helper.first_halves(dst, [tables[r.name] for r in report.tables]) if helper else {}
    for result in report.tables:
        if progress is not None:
            progress(f"copy: checking {result.name}")
        table = tables[result.name]
        if result.name in halves:
            last, _ = halves[result.name]
            result.target_rows, result.target_checksum = rowid_checksum(
                dst.db.connection(), table.name, table.names, kinds(table), last + 1, None
            )
        else:
            result.target_rows, result.target_checksum = checksum(dst, table)
    for result in report.tables:
        if result.name in halves:
            rows, total = ChecksumHelper.result(halves[result.name][1])
            result.target_rows += rows
            result.target_checksum += total


def kinds(table: Table) -> list[str]:
    return [c.kind for c in table.columns]


HELPER_ROWS = 20_000  # a table smaller than this is checked whole, by this process


def helper_context() -> multiprocessing.context.BaseContext:
    """`fork` where there is one: `spawn` re-imports the caller's main module, which re-runs a
    script that calls `sessionorm.copy()` without an `if __name__ == "__main__"` guard. The
    forked child opens its own read-only connection, never touches an inherited one, and leaves
    through `os._exit` (multiprocessing's way), so nothing inherited is closed."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class ChecksumHelper:
    """Another process that checksums the first half (by rowid) of each large table of a
    SQLite target, on the other core, while this one checksums the rest.

    Started (`start`) as soon as a large table is loaded, so that it has imported what it
    needs by the time the checks begin (see `helper_context`).
    """

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.unavailable = False  # no process can be started here: this process checks all

    def __enter__(self) -> ChecksumHelper:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def start(self) -> ProcessPoolExecutor | None:
        if self.pool is None and not self.unavailable:
            try:
                pool = ProcessPoolExecutor(max_workers=1, mp_context=helper_context())
                pool.submit(ready)
            except (OSError, ImportError, NotImplementedError):  # e.g. no POSIX semaphores
                self.unavailable = True
            else:
                self.pool = pool
        return self.pool

    def first_halves(self, dst: Side, tables: list[Table]) -> dict[str, tuple[int, Future]]:
        """Hand the helper the first half of each large table: table -> (last rowid, its result)."""
        halves = {}
        con = dst.db.connection()
        for table in tables:
            low, high = con.execute(f"SELECT min(rowid), max(rowid) FROM {q(table.name)}").fetchone()
            if low is not None and high - low >= HELPER_ROWS and (pool := self.start()) is not None:
                last = (low + high) // 2
                halves[table.name] = (
                    last,
                    pool.submit(
                        first_part_checksum, str(dst.target.path), table.name, table.names, kinds(table), last
                    ),
                )
        return halves

    @staticmethod
    def result(future: Future) -> Any:
        try:
            return future.result()
        except Exception as exc:  # the helper's own error, or BrokenProcessPool
            raise CopyError(f"the checksum helper failed: {type(exc).__name__}: {str(exc)[-300:]}") from exc
