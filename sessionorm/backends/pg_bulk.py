"""PostgreSQL's bulk copy out (binary `COPY … TO STDOUT`) and its rows hashed on the server."""

from __future__ import annotations

from collections.abc import Iterator

import peewee

from ..identifiers import q
from .catalog import BATCH, Table


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


def copy_out(db: peewee.Database, select: str, types: list[str]) -> Iterator[list[tuple]]:
    """`COPY (select) TO STDOUT` in binary, in batches: values come back as the types they are."""
    with db.connection().cursor().copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)") as out:
        out.set_types(types)
        batch = []
        for row in out.rows():
            batch.append(row)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
