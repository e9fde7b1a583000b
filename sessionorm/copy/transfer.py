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
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..backends import Backend, backend_for, opened
from ..drift import drift
from ..migration_options import MigrationOptions
from ..models import MODELS, SEARCH_OBJECTS, SEARCH_TABLES
from ..progress import Progress
from ..runner import MigrationRunner, runner_for
from ..target import Target
from ..verification import migration_problems
from .checks import (
    CopyReport,
    bad_value_sql,
    canon_function,
    refuse_misfit,
    refuse_value,
)
from .checksums import row_hash
from .tables import (
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
    q,
)

# -- the copy --------------------------------------------------------------------------------


@contextlib.contextmanager
def source_snapshot(target: Target) -> Iterator[Side]:
    """The source inside one read transaction: every table comes from the same snapshot."""
    with opened(target, readonly=True) as db:
        yield Side(target, db)


def migrate_command(target: Target) -> str:
    return f"sessionorm migrate {backend_for(target).cli_option} '{target}'"


def check_source(side: Side) -> MigrationRunner:
    """Refuse a source that is not fully migrated, naming the command that migrates it."""
    runner = runner_for(side.target, side.db)
    rows = runner.status()
    pending = [m.name for m in rows if not m.applied]
    if pending or not rows:
        raise CopyError(
            f"refusing to copy: {side.target} has pending migrations "
            f"({', '.join(pending) or 'all'}); run `{migrate_command(side.target)}` "
            "first (nothing was written)"
        )
    unknown = [m.name for m in rows if m.path is None]
    if unknown:
        raise CopyError(
            f"refusing to copy: {side.target} records migrations without a script here "
            f"({', '.join(unknown)}); pass their folder with --migrations-dir"
        )
    return runner


def plan_tables(source: Side, to: type[Backend]) -> dict[str, Table]:
    """Every source table, reflected; anything that cannot be carried to `to` refused by name."""
    same = type(source.backend) is to
    objects = [o for o in source.other_objects() if o not in SEARCH_OBJECTS]  # the migrations make those
    if objects:
        raise CopyError(
            f"refusing to copy {source.target}: it has {', '.join(objects)}, which copy "
            "does not carry; nothing was written"
        )
    # the search index: the target's migrations make it, and its triggers fill it as rows load
    tables = {name: source.table(name) for name in source.table_names() if name not in SEARCH_TABLES}
    refused = []
    for table in tables.values():
        problems = carry_problems(table, to, same)
        if problems:
            refused.append(f"{table.name} ({'; '.join(problems)})")
    if refused:
        raise CopyError(
            f"refusing to copy: these tables cannot be carried: {'; '.join(refused)}; nothing was written"
        )
    return tables


def copy_database(source: Target, target: Target, progress: Progress = None) -> CopyReport:
    """Copy every table of `source` into `target` (new or empty); see the module's docstring."""
    start = time.monotonic()
    report = CopyReport(str(source), str(target))
    into = backend_for(target)
    into.refuse_copy_target(source, target)
    with source_snapshot(source) as src:
        check_source(src)
        tables = plan_tables(src, into)
        into.copy_into(src, target, tables, report, progress)
    report.seconds = time.monotonic() - start
    return report


# -- the target ------------------------------------------------------------------------------


def not_empty(side: Side) -> list[str]:
    """What makes `side` no copy target: its tables, in any schema, views and sequences."""
    names = side.table_names() + side.catalog.tables_elsewhere()
    return names + [o for o in side.other_objects() if not o.startswith("trigger")]


def refuse_not_empty(side: Side) -> None:
    found = not_empty(side)
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise CopyError(
            f"refusing to copy into {side.target}: it is not empty ({shown}); copy into a "
            "new or empty database (nothing was written)"
        )


def create_schema(
    dst: Side, tables: dict[str, Table], order: list[str], same: bool, in_transaction: bool = False
) -> MigrationRunner:
    """`sessions` in the source's layout, the migrations, the other tables; history emptied.

    Migration 1 adopts the `sessions` table made here (as `migrate` adopts a legacy file's)
    and finds it empty; the history rows it writes make way for the source's.
    """
    if SESSIONS in tables:
        create_table(dst, tables[SESSIONS], same)
    # PostgreSQL: every migration runs inside the copy's one transaction, which already holds
    # the migration lock -- the dry run's mode -- so the copy commits whole or not at all.
    runner = runner_for(dst.target, dst.db, MigrationOptions(rehearsal=in_transaction))
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
    dst.db.execute_sql(create_table_sql(table, type(dst.backend), same))
    for index, cols, unique in table.indexes:
        dst.db.execute_sql(index_sql(table.name, index, cols, unique))


def complete_migrated_table(dst: Side, table: Table, same: bool) -> None:
    """A table the migrations made, given the source's extra (nullable) columns and indexes;
    any other difference in columns refuses the copy."""
    name = table.name
    have = {c.name for c in dst.table(name).columns}
    for column in table.columns:
        if column.name not in have and not column.notnull:  # another program's column
            dst.db.execute_sql(
                f"ALTER TABLE {q(name)} ADD COLUMN {column_sql(column, type(dst.backend), same)}"
            )
            have.add(column.name)
    if have != set(table.names):
        raise CopyError(
            f"refusing to copy: the source's {name} has the columns "
            f"{sorted(table.names)}, the migrations make {sorted(have)}"
        )
    live = {(cols, unique) for _, cols, unique in dst.table(name).indexes}
    for index, cols, unique in table.indexes:
        if (cols, unique) not in live:
            dst.db.execute_sql(index_sql(name, index, cols, unique))


def check_target(dst: Side, runner: MigrationRunner, report: CopyReport) -> None:
    """Checksums equal on both sides, the migrations applied and the schema the models'."""
    refuse_differences(report)
    problems = migration_problems(runner) + drift(dst.db, MODELS).problems
    if problems:
        raise CopyError(f"the copy fails verify, so it was discarded: {'; '.join(problems)}")


def refuse_differences(report: CopyReport) -> None:
    """`CopyError` naming each table whose rows or checksum differ between the two sides."""
    differ = [
        f"{t.name}: {t.rows} rows, checksum {t.checksum:x} in the source; {t.target_rows} rows, "
        f"checksum {t.target_checksum:x} in the copy"
        for t in report.tables
        if not t.ok
    ]
    if differ:
        raise CopyError(f"the copy differs from the source, so it was discarded: {'; '.join(differ)}")


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


def source_batches(
    src: Side, table: Table, target_types: dict[str, str], hashed: bool = True, digest: Any = None
) -> Iterator[tuple[list[tuple], int]]:
    """The source's rows in primary-key order, in batches, each with the batch's checksum
    (0 when not `hashed`: the caller proves the rows another way).

    Rows come without their checksum and check columns; a value the target cannot hold
    raises `CopyError` naming the table, the row's key and the column. `digest` (a
    `RowDigest`, where the source's `copy_digests`): each row's bytes as the source sends
    them. Unless `hashed`, the rows with a bad value are looked for first, by the source's
    engine in one scan, so that only the table's own columns travel and no row is looked at
    twice in Python.
    """
    n = len(table.names)
    # PostgreSQL hashes each row as it sends it, when the caller needs the source's checksum
    row_hash_sql = src.backend.row_hash_sql(table) if hashed else None
    bad = bad_value_sql(table, src.backend, target_types)
    if not hashed and bad is not None:
        # in storage order (a plain scan) whether any row has one; then the first in key order
        if src.rows(f"SELECT 1 FROM {q(table.name)} WHERE ({bad}) IS NOT NULL LIMIT 1"):
            first_bad = src.rows(f"{source_select(table, None, bad, where=True)} LIMIT 1")
            refuse_flagged(table, first_bad, target_types)
        bad = None
    select = source_select(table, row_hash_sql, bad)
    extra = (["int8"] if row_hash_sql else []) + (["text"] if bad else [])
    rows = src.backend.copy_out(select, table, extra, digest)
    batch_checksum = batch_checksum_function(table, src, row_hash_sql is not None, hashed, target_types)
    for batch in rows:
        if bad is not None:
            refuse_flagged(table, batch, target_types)
        total = batch_checksum(batch)
        yield ([r[:n] for r in batch] if len(batch[0]) != n else batch), total


def source_select(table: Table, row_hash_sql: str | None, bad: str | None, where: bool = False) -> str:
    """SELECT of the table's rows in key order, then each row's hash (if the server hashes
    it) and the name of its column holding a bad value (`bad`), if asked for; `where`: only
    the rows with one."""
    cols = ", ".join(map(q, table.names))
    order = ", ".join(map(q, table.primary_key))
    extra = ([row_hash_sql] if row_hash_sql else []) + ([bad] if bad else [])
    only = f" WHERE ({bad}) IS NOT NULL" if where and bad else ""
    return f"SELECT {', '.join([cols, *extra])} FROM {q(table.name)}{only} ORDER BY {order}"


def refuse_flagged(table: Table, batch: list[tuple], target_types: dict[str, str]) -> None:
    """`CopyError` for the first row whose last value (from `bad_value_sql`) names a column."""
    for row in batch:
        if row[-1] is not None:
            refuse_value(table, row, row[-1], target_types)


def batch_checksum_function(
    table: Table, src: Side, server_hashed: bool, hashed: bool, target_types: dict[str, str]
) -> Callable[[list[tuple]], int]:
    """How a batch's checksum is had: the sum of the hashes the server sent with the rows, 0
    (not `hashed`), or the rows made canonical and hashed here. A SQLite source's text going
    to PostgreSQL is checked for NUL characters on the way (its canonical text holds them)."""
    n = len(table.names)
    if server_hashed:
        return lambda batch: sum(r[n] for r in batch)
    if not hashed:
        return lambda batch: 0
    make = canon_function(table)
    find_nul = bool(target_types) and src.backend.nul_in_text  # a source whose text may hold NUL

    def python_checksum(batch: list[tuple]) -> int:
        texts = [make(r) for r in batch]
        if find_nul and any("\x00" in t for t in texts):
            refuse_misfit(
                table, next(r for r, t in zip(batch, texts, strict=True) if "\x00" in t), target_types
            )
        return sum(row_hash(t) for t in texts)

    return python_checksum
