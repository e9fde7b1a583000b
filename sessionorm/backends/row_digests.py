"""A copy's proof when PostgreSQL is one side: SHA-256 of the rows as binary `COPY` bytes.

- Into PostgreSQL (`hashing_writer`): every buffer psycopg sends is hashed, and the table read
  back with `COPY … TO STDOUT (FORMAT BINARY)` in the same transaction must hash the same.
- From PostgreSQL into SQLite (`RowDigest`, `sqlite_rows_digest`): every row the server sends
  is hashed as it arrives; the SQLite target's rows, encoded again in the same binary format
  with the same types, must hash the same, chunk by chunk.

Binary `COPY` writes each value as its length and the bytes of the type's send function, so
equal digests mean equal rows, byte for byte, in the same order. Hashing the bytes that
travel anyway costs one pass of SHA-256 (the CPU's SHA instructions), where reading the
source again and making each row canonical in Python cost more than the copy itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..identifiers import q
from .catalog import BATCH
from .sqlite_files import reader

SIGNATURE = 19  # bytes: PGCOPY\n\377\r\n\0, 32-bit flags, 32-bit header extension length
CHUNK_ROWS = 4 * BATCH  # rows per digest chunk: a SQLite target is checked in two halves at once


def digest_value(digest: hashlib._Hash) -> int:
    """A digest as the report shows it: its first 64 bits, as a signed integer."""
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


class RowDigest:
    """Rows' bytes hashed in chunks of `CHUNK_ROWS`; `finish()` gives the chunks' digests
    (`chunks_value` makes them one number)."""

    def __init__(self) -> None:
        self.rows = 0
        self.chunks: list[bytes] = []
        self._sha = hashlib.sha256()

    def add(self, data: Any) -> None:
        self._sha.update(data)
        self.rows += 1
        if not self.rows % CHUNK_ROWS:
            self.chunks.append(self._sha.digest())
            self._sha = hashlib.sha256()

    def finish(self) -> list[bytes]:
        if self.rows % CHUNK_ROWS:
            self.chunks.append(self._sha.digest())
            self._sha = hashlib.sha256()
        return self.chunks


def chunks_value(chunks: list[bytes]) -> int:
    """The chunks' digests, in order, as one number (`digest_value` of their SHA-256)."""
    return digest_value(hashlib.sha256(b"".join(chunks)))


def binary_formatter(pg_types: Sequence[str]) -> tuple[Any, Any]:
    """psycopg's row encoder for binary `COPY` (its C version) and a transformer for these
    PostgreSQL types: `encode(row, transformer, out)` appends a row's bytes to `out`."""
    import psycopg
    from psycopg._copy_base import format_row_binary  # psycopg's own encoder; pinned by a test

    tx = psycopg.adapt.Transformer()
    oids = [psycopg.adapters.types[name].oid for name in pg_types]
    tx.set_dumper_types(oids, psycopg.pq.Format.BINARY)
    return format_row_binary, tx


def sqlite_rows_digest(
    con: Any, table: str, names: Sequence[str], pg_types: Sequence[str], first: int | None, last: int | None
) -> tuple[int, list[bytes]]:
    """(rows, chunk digests) of a SQLite table's rows with `first <= rowid <= last` (None: no
    bound), in rowid order, encoded as PostgreSQL's binary `COPY` sends them with `pg_types`.

    With a bound, `first - 1` is a multiple of `CHUNK_ROWS` and the rowids are the rows'
    positions (1, 2, …), as in a table the copy has just loaded.
    """
    bounds = ([f"rowid >= {int(first)}"] if first is not None else []) + (
        [f"rowid <= {int(last)}"] if last is not None else []
    )
    where = " AND ".join(bounds) or "1"
    cursor = con.execute(f"SELECT {', '.join(map(q, names))} FROM {q(table)} WHERE {where} ORDER BY rowid")
    encode, tx = binary_formatter(pg_types)
    chunks, sha, out, rows = [], hashlib.sha256(), bytearray(), 0
    while batch := cursor.fetchmany(BATCH):  # BATCH rows each but the last: chunks end on one
        for row in batch:
            encode(row, tx, out)
        sha.update(out)
        out.clear()
        rows += len(batch)
        if rows % CHUNK_ROWS == 0:
            chunks.append(sha.digest())
            sha = hashlib.sha256()
    if rows % CHUNK_ROWS:
        chunks.append(sha.digest())
    return rows, chunks


def first_part_digest(
    path: str, table: str, names: Sequence[str], pg_types: Sequence[str], last: int
) -> tuple[int, list[bytes]]:
    """The checksum helper's job: `sqlite_rows_digest` up to `last`, on its own connection."""
    with reader(Path(path)) as con:
        return sqlite_rows_digest(con, table, names, pg_types, 1, last)


def hashing_writer(cursor: Any) -> Any:
    """psycopg's writer to the connection (`LibpqWriter`), also hashing every buffer it sends
    into its `sha`. psycopg is imported here, when a copy runs: it is an optional dependency."""
    from psycopg.copy import LibpqWriter

    class HashingWriter(LibpqWriter):
        def __init__(self, cursor: Any) -> None:
            super().__init__(cursor)
            self.sha = hashlib.sha256()

        def write(self, data: Any) -> None:
            self.sha.update(data)
            super().write(data)

    return HashingWriter(cursor)


def read_back_digest(connection: Any, table: str, names: Sequence[str]) -> tuple[int, int]:
    """(rows, digest value) of a PostgreSQL table as `COPY … TO STDOUT (FORMAT BINARY)` sends it:
    in the order its rows were loaded, in a table loaded in this transaction."""
    sha, messages = hashlib.sha256(), 0
    with connection.cursor().copy(
        f"COPY {q(table)} ({', '.join(map(q, names))}) TO STDOUT (FORMAT BINARY)"
    ) as out:
        for data in out:  # one row a message; the header comes with the first, the trailer alone
            sha.update(data)
            messages += 1
    return messages - 1, digest_value(sha)
