"""A copy into PostgreSQL: one transaction that takes the migration lock, makes the schema
through the migrations, drops the loaded tables' keys, streams each table with binary
`COPY … FROM STDIN`, builds the keys again and checks the checksums on the server, and
commits only if every check passes (see `copy.transfer` for the flow both targets share)."""

from __future__ import annotations

import struct

from ..copy.checks import CopyReport, TableCopy, canon_function, refuse_misfit, refuse_nul
from ..copy.tables import CopyError, Side, Table, load_order
from ..copy.transfer import (
    Meter,
    check_target,
    create_schema,
    refuse_differences,
    refuse_not_empty,
    source_batches,
)
from ..identifiers import q
from ..progress import Progress
from ..target import Target
from .opening import opened
from .pg_migrator import lock_database
from .postgresql import PostgresBackend
from .row_digests import digest_value, hashing_writer, read_back_digest

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
            with dst.backend.search.suspended():  # the search index is made after the rows, in one go
                samples = {name: load_postgres(src, dst, tables[name], report, progress) for name in order}
                read_back(dst, tables, report, progress)
                refuse_differences(report)  # before the keys: a missing row would fail them first
                restore_keys(dst, keys, progress)
            db.execute_sql("ANALYZE " + ", ".join(q(t) for t in order))
            check_target(dst, runner, report)
            check_samples(dst, tables, samples)


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


def load_postgres(src: Side, dst: Side, table: Table, report: CopyReport, progress: Progress) -> list[tuple]:
    """Stream `table` in with binary `COPY`, hashing every byte sent (`hashing_writer`); return
    its first rows as the source holds them (`check_samples`)."""
    types = dst.catalog.column_types(table.name)
    names = table.names
    meter = Meter(table.name, progress)
    count = 0
    sample: list[tuple] = []
    cols = ", ".join(map(q, names))
    import psycopg

    # psycopg's default writer, hashing: its QueuedLibpqWriter (network writes in a thread)
    # measured 0.6-1.5 s slower at 1,000,000 sessions on two cores (the GIL contending).
    cursor = dst.db.connection().cursor()
    writer = hashing_writer(cursor)
    try:
        with cursor.copy(f"COPY {q(table.name)} ({cols}) FROM STDIN (FORMAT BINARY)", writer=writer) as copy:
            copy.set_types([types[n] for n in names])
            write = copy.write_row
            for batch, _ in source_batches(src, table, types, hashed=False):
                if not sample:
                    sample = batch[:SAMPLE_ROWS]
                try:
                    for row in batch:
                        write(row)
                except (TypeError, ValueError, OverflowError, struct.error, psycopg.DataError):
                    # a value the binary format refuses (text in an integer column, a number
                    # too large for int4, ...): name it; the transaction is rolled back
                    refuse_misfit(table, row, types)
                    raise
                count += len(batch)
                meter.add(len(batch))
    except psycopg.errors.CharacterNotInRepertoire:
        # the server refused a NUL character in text (22021): name the first row holding one
        refuse_nul(src, table, types)
        raise
    meter.add(0, last=True)
    report.tables.append(TableCopy(table.name, count, digest_value(writer.sha)))
    return sample


def read_back(dst: Side, tables: dict[str, Table], report: CopyReport, progress: Progress) -> None:
    """Each loaded table as the server sends it back, hashed: the bytes sent, stored exactly.

    Before the keys are built, in the transaction that loaded them, the tables' rows are in
    the order they were sent; a scan must start at their first page (no synchronized scans).
    """
    dst.db.execute_sql("SET LOCAL synchronize_seqscans = off")
    for result in report.tables:
        if progress is not None:
            progress(f"copy: checking {result.name}")
        table = tables[result.name]
        result.target_rows, result.target_checksum = read_back_digest(
            dst.db.connection(), table.name, table.names
        )


SAMPLE_ROWS = 1_000  # rows per table whose encoding is checked against an independent reading


def check_samples(dst: Side, tables: dict[str, Table], samples: dict[str, list[tuple]]) -> None:
    """psycopg's binary encoder checked against an independent reading: each table's first
    rows, read back as text (PostgreSQL's output functions, psycopg's text loaders) and made
    canonical, equal the same rows of the source made canonical (see `copy.checks`)."""
    for name, sample in samples.items():
        if not sample:
            continue
        table = tables[name]
        make = canon_function(table)
        keys = [table.names.index(k) for k in table.primary_key]
        wanted = {tuple(row[i] for i in keys): make(row) for row in sample}
        cursor = dst.db.connection().cursor(binary=False)
        cursor.execute(
            f"SELECT {', '.join(map(q, table.names))} FROM {q(name)} LIMIT {len(sample)}"
        )  # the first rows loaded: a plain scan of a table loaded in this transaction
        got = {tuple(row[i] for i in keys): make(row) for row in cursor.fetchall()}
        if got != wanted:
            differ = sorted(k for k in wanted.keys() | got.keys() if wanted.get(k) != got.get(k))
            raise CopyError(
                f"the copy differs from the source, so it was discarded: {name} row "
                f"{', '.join(f'{k}={v!r}' for k, v in zip(table.primary_key, differ[0], strict=True))} "
                "reads back differently from how the source holds it"
            )
