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
import os
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from .copy_checks import (
    HELPER_ROWS,
    ChecksumHelper,
    CopyReport,
    TableCopy,
    bad_value_sql,
    canon_function,
    canon_sql,
    pg_hash_sql,
    refuse_misfit,
    refuse_nul,
    refuse_value,
    source_checksums,
    target_checksums,
)
from .copy_tables import (
    BY_MIGRATIONS,
    HISTORY,
    SESSIONS,
    CopyError,
    Side,
    Table,
    carry_problems,
    column_sql,
    create_table_sql,
    index_sql,
    load_order,
    pg_types,
    q,
)
from .database import (
    check_sqlite_file,
    open_sqlite,
    real_path,
    translate_errors,
)
from .drift import drift
from .errors import DatabaseOpenError
from .migration_options import MigrationOptions
from .models import MODELS
from .opening import opened
from .progress import Progress, reporting
from .row_checksums import BATCH, row_hash
from .runner import MigrationRunner
from .safe_migrator import lock_database
from .sqlite_backup import remove_stale_partials
from .target import Target
from .verification import migration_problems

# A SQLite bulk load's page cache (KiB, negative): index builds stay in memory, RSS stays flat.
SQLITE_CACHE = -16384


PG_SORT_MEMORY = "256MB"  # maintenance_work_mem for rebuilding keys and indexes after the load


# -- the copy --------------------------------------------------------------------------------

@contextlib.contextmanager
def source_snapshot(target: Target) -> Iterator[Side]:
    """The source inside one read transaction: every table comes from the same snapshot."""
    with opened(target, readonly=True) as db:
        yield Side(target, db)


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
        create_table(dst, tables[SESSIONS], same)
    # PostgreSQL: every migration runs inside the copy's one transaction, which already holds
    # the migration lock -- the dry run's mode -- so the copy commits whole or not at all.
    runner = MigrationRunner(dst.db, extra_dirs=extra_dirs,
                             options=MigrationOptions(rehearsal=in_transaction))
    runner.up()
    for name in HISTORY:
        dst.db.execute_sql(f"DELETE FROM {q(name)}")
    made = set(dst.table_names())
    for name in order:
        if name in BY_MIGRATIONS:
            complete_migrated_table(dst, tables[name], same)
        elif name not in made:
            create_table(dst, tables[name], same)
    return runner


def create_table(dst: Side, table: Table, same: bool) -> None:
    """The source's table and its indexes, in the target's dialect."""
    dst.db.execute_sql(create_table_sql(table, dst.is_pg, same))
    for index, cols, unique in table.indexes:
        dst.db.execute_sql(index_sql(table.name, index, cols, unique))


def complete_migrated_table(dst: Side, table: Table, same: bool) -> None:
    """A table the migrations made, given the source's extra (nullable) columns and indexes;
    any other difference in columns refuses the copy."""
    name = table.name
    have = {c.name for c in dst.table(name).columns}
    for column in table.columns:
        if column.name not in have and not column.notnull:  # another program's column
            dst.db.execute_sql(f"ALTER TABLE {q(name)} ADD COLUMN "
                               f"{column_sql(column, dst.is_pg, same)}")
            have.add(column.name)
    if have != set(table.names):
        raise CopyError(f"refusing to copy: the source's {name} has the columns "
                        f"{sorted(table.names)}, the migrations make {sorted(have)}")
    live = {(cols, unique) for _, cols, unique in dst.table(name).indexes}
    for index, cols, unique in table.indexes:
        if (cols, unique) not in live:
            dst.db.execute_sql(index_sql(name, index, cols, unique))


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
    n = len(table.names)
    canon = canon_sql(table) if src.is_pg else None  # PostgreSQL hashes each row as it sends it
    bad = bad_value_sql(table, src.is_pg, target_types)
    select = source_select(table, canon, bad)
    if src.is_pg:
        rows = pg_copy_out(src, select, table, canon is not None, bad is not None)
    else:
        rows = sqlite_rows(src, select)
    batch_checksum = batch_checksum_function(table, src, canon is not None, hashed, target_types)
    for batch in rows:
        if bad is not None:
            refuse_flagged(table, batch, target_types)
        total = batch_checksum(batch)
        yield ([r[:n] for r in batch] if len(batch[0]) != n else batch), total


def source_select(table: Table, canon: str | None, bad: str | None) -> str:
    """SELECT of the table's rows in key order, then each row's hash (`canon`: PostgreSQL
    hashes it) and the name of its column holding a bad value (`bad`), if asked for."""
    cols = ", ".join(map(q, table.names))
    order = ", ".join(map(q, table.primary_key))
    extra = ([pg_hash_sql(canon)] if canon else []) + ([bad] if bad else [])
    return f"SELECT {', '.join([cols, *extra])} FROM {q(table.name)} ORDER BY {order}"


def refuse_flagged(table: Table, batch: list[tuple], target_types: dict[str, str]) -> None:
    """`CopyError` for the first row whose last value (from `bad_value_sql`) names a column."""
    for row in batch:
        if row[-1] is not None:
            refuse_value(table, row, row[-1], target_types)


def batch_checksum_function(table: Table, src: Side, server_hashed: bool, hashed: bool,
                            target_types: dict[str, str]) -> Callable[[list[tuple]], int]:
    """How a batch's checksum is had: the sum of the hashes the server sent with the rows, 0
    (not `hashed`), or the rows made canonical and hashed here. A SQLite source's text going
    to PostgreSQL is checked for NUL characters on the way (its canonical text holds them)."""
    n = len(table.names)
    if server_hashed:
        return lambda batch: sum(r[n] for r in batch)
    if not hashed:
        return lambda batch: 0
    make = canon_function(table)
    find_nul = bool(target_types) and not src.is_pg

    def python_checksum(batch: list[tuple]) -> int:
        texts = [make(r) for r in batch]
        if find_nul and any("\x00" in t for t in texts):
            refuse_misfit(table, next(r for r, t in zip(batch, texts, strict=True) if "\x00" in t),
                          target_types)
        return sum(row_hash(t) for t in texts)

    return python_checksum


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


def copy_to_postgres(src: Side, target: Target, tables: dict[str, Table], extra_dirs: list[str],
                     report: CopyReport, progress: Progress) -> None:
    """One transaction: schema, keys off, COPY, keys back, checks; committed only if all pass."""
    with opened(target) as db:
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


# -- SQLite target ---------------------------------------------------------------------------

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


def copy_to_sqlite(src: Side, target: Target, tables: dict[str, Table], extra_dirs: list[str],
                   report: CopyReport, progress: Progress) -> None:
    """Into a temporary file next to the target, checked, then renamed into place."""
    path = real_path(target.path)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    remove_stale_partials(path.parent, f".{glob.escape(path.name)}.copy-*")
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
                with ChecksumHelper() as helper:
                    for name in order:
                        load_sqlite(src, dst, tables[name], report, progress)
                        if report.tables[-1].rows >= HELPER_ROWS:
                            helper.start()  # it starts up while the other tables load
                    # No foreign_key_check: the rows are the source's, proved equal by the checksums
                    # (orphans a SQLite source may hold are copied as they are, and `verify` names them).
                    with reporting(db, None if progress is None else
                                   lambda s: progress(f"copy: building indexes: {s:.0f} s")):
                        con.execute("BEGIN")
                        for sql in indexes:
                            con.execute(sql)
                        con.execute("COMMIT")
                    target_checksums(dst, tables, report, progress, helper)
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
