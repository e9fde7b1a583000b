"""A copy into PostgreSQL: one transaction that takes the migration lock, makes the schema
through the migrations, drops the loaded tables' keys, streams each table with binary
`COPY … FROM STDIN`, builds the keys again and checks the checksums on the server, and
commits only if every check passes (see `copy.transfer` for the flow both targets share)."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from ..copy.checks import CopyReport, TableCopy, refuse_misfit, refuse_nul, source_checksums, target_checksums
from ..copy.tables import Side, Table, load_order
from ..copy.transfer import Meter, check_target, create_schema, refuse_not_empty, source_batches
from ..identifiers import q
from ..progress import Progress
from ..target import Target
from .opening import opened
from .pg_migrator import lock_database
from .postgresql import PostgresBackend

PG_SORT_MEMORY = "256MB"  # maintenance_work_mem for rebuilding keys and indexes after the load


def copy_to_postgres(
    src: Side, target: Target, tables: dict[str, Table], report: CopyReport, progress: Progress
) -> None:
    """One transaction: schema, keys off, COPY, keys back, checks; committed only if all pass."""
    with opened(target) as db:
        dst = Side(target, db)
        refuse_not_empty(dst)  # before the lock: a clear refusal without waiting
        order = load_order(tables)
        with db.atomic():
            lock_database(db)  # the migration lock: another copy or migrate waits
            refuse_not_empty(dst)
            runner = create_schema(
                dst, tables, order, isinstance(src.backend, PostgresBackend), in_transaction=True
            )
            keys = drop_keys(dst, order)
            # Index builds sort in memory on the server (the client's memory is not involved).
            db.execute_sql(f"SET LOCAL maintenance_work_mem = '{PG_SORT_MEMORY}'")
            later = not isinstance(src.backend, PostgresBackend)  # hashed again while the server works
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
        ([q(t) for t in order],),
    )
    saved += dst.rows(
        "SELECT x.indrelid::regclass::text, quote_ident(i.relname), pg_get_indexdef(x.indexrelid), 'i'"
        " FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = ANY(%s::text[]::regclass[]) AND NOT EXISTS (SELECT 1 FROM"
        " pg_catalog.pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)"
        " ORDER BY 1, 2",
        ([q(t) for t in order],),
    )
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
                f"ADD CONSTRAINT {name} {definition}"
            )
    for n, ((rank, what), adds) in enumerate(sorted(grouped.items())):
        if progress is not None:
            progress(f"copy: keys, indexes and foreign keys: {n}/{len(grouped)} built")
        dst.db.execute_sql(what if rank == 1 else f"ALTER TABLE {what} {', '.join(adds)}")


def load_postgres(
    src: Side, dst: Side, table: Table, report: CopyReport, progress: Progress, hashed: bool = True
) -> None:
    types = dst.catalog.column_types(table.name)
    names = table.names
    meter = Meter(table.name, progress)
    count = total = 0
    cols = ", ".join(map(q, names))
    import psycopg

    # psycopg's default writer: its QueuedLibpqWriter (network writes in a thread) measured
    # 0.6-1.5 s slower at 1,000,000 sessions on two cores, the thread and the GIL contending.
    try:
        with (
            dst.db.connection()
            .cursor()
            .copy(f"COPY {q(table.name)} ({cols}) FROM STDIN (FORMAT BINARY)") as copy
        ):
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
    other.target, other.db = side.target, cast(Any, Connection())
    other.backend, other.catalog = side.backend, side.backend.catalog_class(other.db)
    return other
