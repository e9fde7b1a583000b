"""Rows' canonical text and checksums, as Python computes them (see `copy.checks`).

Standard library only, and nothing of sessionorm's: the checksum helper process (see
`copy.checks.target_checksums`) imports this module to do its half of a table.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

from ..backends.catalog import BATCH
from ..backends.sqlite_files import reader
from ..identifiers import q

CANON = {  # Python's twin of backends.pg_bulk.canon_sql, per kind, for the value `v`
    "text": "f'{{len({v})}}:{{{v}}}'",
    "integer": "str({v})",
    "boolean": "('1' if {v} else '0')",
    "blob": "bytes({v}).hex().upper()",
    "real": "float({v}).hex()",
}


def canon_text_function(kinds: Sequence[str]) -> Callable[[tuple], str]:
    """A function giving a row's canonical text from its first values, of these kinds in order.

    Generated per table (one expression, no loop over columns): it runs once per row of the
    largest tables, and a loop over the columns took twice as long. Only column positions
    and the fixed templates of CANON go into the code, never a name or a value.
    """
    parts = []
    for i, kind in enumerate(kinds):
        value = f"r[{i}]"
        parts.append(f"('-' if {value} is None else {CANON[kind].format(v=value)})")
    code = "lambda r: '|'.join((" + ", ".join(parts) + ",))"
    return eval(code, {"__builtins__": {"len": len, "str": str, "bytes": bytes, "float": float}})


FIRST_8_BYTES = struct.Struct(">q").unpack_from  # the digest's first 8 bytes, a signed 64-bit int


def row_hash(text: str, md5: Callable = hashlib.md5) -> int:
    return FIRST_8_BYTES(md5(text.encode()).digest())[0]


def hash_rows(cursor: sqlite3.Cursor, make: Callable[[tuple], str]) -> tuple[int, int]:
    """(rows, checksum) of what `cursor` returns, each row's canonical text made by `make`."""
    count = total = 0
    while batch := cursor.fetchmany(BATCH):
        count += len(batch)
        total += sum(row_hash(make(r)) for r in batch)
    return count, total


def rowid_checksum(
    con: sqlite3.Connection,
    table: str,
    names: Sequence[str],
    kinds: Sequence[str],
    first: int | None,
    last: int | None,
) -> tuple[int, int]:
    """(rows, checksum) of the rows of a SQLite table with `first <= rowid <= last`."""
    where = (
        " AND ".join(
            ([f"rowid >= {int(first)}"] if first is not None else [])
            + ([f"rowid <= {int(last)}"] if last is not None else [])
        )
        or "1"
    )
    cursor = con.execute(f"SELECT {', '.join(map(q, names))} FROM {q(table)} WHERE {where}")
    return hash_rows(cursor, canon_text_function(kinds))


def first_part_checksum(
    path: str, table: str, names: Sequence[str], kinds: Sequence[str], last: int
) -> tuple[int, int]:
    """The checksum helper's job: `rowid_checksum` up to `last`, on its own read-only connection."""
    with reader(Path(path)) as con:
        return rowid_checksum(con, table, names, kinds, None, last)


def ready() -> None:
    """Nothing: submitted first, so that the helper starts (and imports this) early."""
