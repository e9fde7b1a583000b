"""PostgreSQL's bulk copy out (binary `COPY … TO STDOUT`) and its rows hashed on the server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import peewee

from ..identifiers import q
from .catalog import BATCH, Table
from .row_digests import SIGNATURE


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


def pg_hash_sql(canon: str) -> str:
    return f"('x' || left(md5({canon}), 16))::bit(64)::bigint"


def copy_out(db: peewee.Database, select: str, types: list[str], digest: Any = None) -> Iterator[list[tuple]]:
    """`COPY (select) TO STDOUT` in binary, in batches: values come back as the types they are.

    `digest` (a `RowDigest`): each row's bytes, as the server sent them, are added to it.
    """
    with db.connection().cursor().copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)") as out:
        out.set_types(types)
        rows = out.rows() if digest is None else hashed_rows(out, digest)
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def hashed_rows(out: Any, digest: Any) -> Iterator[tuple]:
    """The rows of a binary `COPY … TO STDOUT`, each message (one row) added to `digest`
    (without the header the first carries) before psycopg parses it."""
    parse = out.formatter.parse_row  # psycopg's own parser, as `rows()` uses it; pinned by a test
    messages = iter(out)
    for data in messages:  # the first row: after the header
        row = parse(data)
        if row is not None:
            digest.add(memoryview(data)[SIGNATURE:])
            yield row
        break
    add = digest.add
    for data in messages:
        row = parse(data)
        if row is None:  # the trailer
            continue
        add(data)
        yield row
