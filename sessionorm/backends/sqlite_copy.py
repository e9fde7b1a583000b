"""A copy into a SQLite file: made under a temporary name next to the target with journal and
syncs off, indexes dropped while `executemany` loads each table and built again, checked
(checksums, a helper process taking half of each large table), then synced and linked into
place, so that the target appears whole or not at all (see `copy.transfer`)."""

from __future__ import annotations

import glob
import os
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from ..copy.checks import HELPER_ROWS, ChecksumHelper, CopyReport, TableCopy, target_checksums
from ..copy.tables import CopyError, Side, Table, load_order
from ..copy.transfer import (
    Meter,
    check_target,
    create_schema,
    refuse_not_empty,
    source_batches,
    source_snapshot,
)
from ..database import real_path, translate_errors
from ..errors import DatabaseOpenError
from ..identifiers import q
from ..progress import Progress
from ..target import Target
from .row_digests import CHUNK_ROWS, RowDigest, chunks_value, first_part_digest, sqlite_rows_digest
from .sqlite import SqliteBackend
from .sqlite_backup import remove_stale_partials
from .sqlite_files import check_sqlite_file, open_sqlite

# A SQLite bulk load's page cache (KiB, negative): index builds stay in memory, RSS stays flat.
SQLITE_CACHE = -16384


def refuse_copy_target(source: Target, target: Target) -> None:
    """Refuse copying a file onto itself, or into a file that has tables."""
    if source.path is not None and real_path(target.real_path) == source.real_path:
        raise CopyError(f"refusing to copy {source} onto itself")
    check_target_path(target)


def check_target_path(target: Target) -> None:
    """A SQLite target must not exist, or be empty (no tables); else refuse, writing nothing."""
    path = target.real_path
    if path.is_dir():
        raise DatabaseOpenError(f"{path} is a directory, not a database file")
    if path.exists() and path.stat().st_size > 0:
        with source_snapshot(Target(path=path, busy_timeout=target.busy_timeout)) as side:
            refuse_not_empty(side)


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.copy-{os.getpid()}")


def copy_to_sqlite(
    src: Side, target: Target, tables: dict[str, Table], report: CopyReport, progress: Progress
) -> None:
    """Into a temporary file next to the target, checked, then renamed into place."""
    path = target.real_path
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
                dst = Side(replace(target, path=tmp), db)
                runner = create_schema(dst, tables, order, isinstance(src.backend, SqliteBackend))
                con = db.connection()
                # A file nobody else sees until it is renamed: no journal, no syncs while loading.
                con.execute("PRAGMA foreign_keys = 0")
                con.execute("PRAGMA journal_mode = OFF")
                con.execute("PRAGMA synchronous = OFF")
                con.execute(f"PRAGMA cache_size = {SQLITE_CACHE}")
                indexes = [
                    r[0]
                    for r in con.execute(
                        "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                    )
                ]
                for (name,) in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                ).fetchall():
                    con.execute(f"DROP INDEX {q(name)}")
                with ChecksumHelper() as helper:
                    with dst.backend.search.suspended():  # the search index is made after the rows
                        for name in order:
                            load_sqlite(src, dst, tables[name], report, progress)
                            if report.tables[-1].rows >= HELPER_ROWS:
                                helper.start()  # it starts up while the other tables load
                        # No foreign_key_check: the rows are the source's, proved equal by the checksums
                        # (orphans a SQLite source may hold are copied as they are; `verify` names them).
                        with dst.backend.reporting(
                            None
                            if progress is None
                            else lambda s: progress(f"copy: building indexes: {s:.0f} s")
                        ):
                            con.execute("BEGIN")
                            for sql in indexes:
                                con.execute(sql)
                            con.execute("COMMIT")
                    if src.backend.copy_digests:
                        target_digests(src, dst, tables, report, progress, helper)
                    else:
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
            raise CopyError(
                f"refusing to copy into {path}: it appeared while copying; nothing was written"
            ) from None
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_sqlite(src: Side, dst: Side, table: Table, report: CopyReport, progress: Progress) -> None:
    """Load `table` in one transaction; its checksum as the source sends it (`RowDigest` of
    the bytes where the source's `copy_digests`, else the sum of the rows' hashes)."""
    con = dst.db.connection()
    names = table.names
    insert = (
        f"INSERT INTO {q(table.name)} ({', '.join(map(q, names))}) VALUES ({', '.join('?' * len(names))})"
    )
    meter = Meter(table.name, progress)
    count = total = 0
    digest = RowDigest() if src.backend.copy_digests else None
    con.execute("BEGIN")
    for batch, checksum_ in source_batches(src, table, {}, hashed=digest is None, digest=digest):
        con.executemany(insert, batch)
        count += len(batch)
        total += checksum_
        meter.add(len(batch))
    con.execute("COMMIT")
    meter.add(0, last=True)
    if digest is not None:
        total = chunks_value(digest.finish())
    report.tables.append(TableCopy(table.name, count, total))


def target_digests(
    src: Side,
    dst: Side,
    tables: dict[str, Table],
    report: CopyReport,
    progress: Progress,
    helper: ChecksumHelper,
) -> None:
    """Each table of the target encoded again as the source sent it (`sqlite_rows_digest`),
    in rowid order -- the order the rows came in. A large table's first chunks go to
    `helper`, on the other core, when its rowids are its rows' positions (1 … n)."""
    con = dst.db.connection()
    halves: dict[str, tuple[int, list[str], Future | None]] = {}
    for result in report.tables:
        table = tables[result.name]
        types = list(src.catalog.column_types(table.name).values())
        low, high = con.execute(f"SELECT min(rowid), max(rowid) FROM {q(table.name)}").fetchone()
        split = round(result.rows / 2 / CHUNK_ROWS) * CHUNK_ROWS
        if (
            0 < split < result.rows
            and (low, high) == (1, result.rows)
            and (pool := helper.start()) is not None
        ):
            args = (str(dst.target.path), table.name, table.names, types, split)
            halves[result.name] = (split, types, pool.submit(first_part_digest, *args))
        else:
            halves[result.name] = (0, types, None)
    for result in report.tables:
        if progress is not None:
            progress(f"copy: checking {result.name}")
        table = tables[result.name]
        split, types, first = halves[result.name]
        rows, chunks = sqlite_rows_digest(
            con, table.name, table.names, types, split + 1 if split else None, None
        )
        if first is not None:
            first_rows, first_chunks = ChecksumHelper.result(first)
            rows, chunks = first_rows + rows, first_chunks + chunks
        result.target_rows, result.target_checksum = rows, chunks_value(chunks)
