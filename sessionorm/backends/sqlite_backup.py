"""Online backups of SQLite files: consistent (WAL pages included), checked, never overwriting."""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from ..database import DEFAULT_BUSY_TIMEOUT, real_path
from ..errors import BackupError
from .catalog import count_rows
from .sqlite_files import check_sqlite_file, read_snapshot, reader


def backup_name(db_path: Path, when: dt.datetime | None = None) -> Path:
    """`<db>.backup-YYYY-MM-DD-HHMMSS` (UTC)."""
    when = when or dt.datetime.now(dt.UTC)
    return db_path.with_name(f"{db_path.name}.backup-{when:%Y-%m-%d-%H%M%S}")


def candidates(first: Path, suffix: str = "") -> Iterator[Path]:
    """`first`, then `first-2`, `first-3`, … (the number goes before `suffix`, e.g. `.dump`)."""
    yield first
    stem = first.name[: -len(suffix)] if suffix and first.name.endswith(suffix) else first.name
    tail = suffix if stem != first.name else ""
    n = 2
    while True:
        yield first.with_name(f"{stem}-{n}{tail}")
        n += 1


def table_counts(con: sqlite3.Connection) -> dict[str, int]:
    tables = [
        r[0]
        for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return count_rows(con.execute, tables)


def check_destination(first: Path, explicit: bool) -> None:
    """Refuse, naming it, a backup's path that exists (when given) or whose folder does not."""
    if explicit and first.exists():
        raise BackupError(f"{first} exists; refusing to overwrite it")
    if not first.parent.is_dir():
        raise BackupError(f"no folder {first.parent} for the backup {first}; create it first")


def backup_sqlite(
    db_path: str | os.PathLike,
    dest: str | os.PathLike | None = None,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Copy `db_path` with SQLite's online backup API; return the checked copy's path.

    The copy is written under a temporary name, checked (integrity, row counts of every
    table against the same snapshot of the source), given the source's permission bits,
    and only then linked to its final name, so an interrupted backup never looks finished.
    A symlinked `db_path` is resolved: the default name is next to the real file.
    """
    src_path = real_path(db_path)
    check_sqlite_file(src_path, must_exist=True)
    explicit = dest is not None
    first = Path(dest).expanduser() if dest is not None else backup_name(src_path)
    check_destination(first, explicit)
    remove_stale_partials(first.parent, f".{glob.escape(src_path.name)}.backup-*.partial-*")
    remove_stale_partials(first.parent, f".{glob.escape(first.name)}.partial-*")
    tmp = first.with_name(f".{first.name}.partial-{os.getpid()}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        with read_snapshot(src_path, busy_timeout) as src:  # counts and copy: one snapshot
            expected = table_counts(src)
            dst = sqlite3.connect(tmp)
            try:
                copy_pages(src, dst, progress)
            finally:
                dst.close()
        check_copy(tmp, expected)
        os.chmod(tmp, stat.S_IMODE(src_path.stat().st_mode))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        return link_without_overwrite(tmp, first, explicit)
    finally:
        tmp.unlink(missing_ok=True)


def copy_pages(
    src: sqlite3.Connection, dst: sqlite3.Connection, progress: Callable[[str], None] | None
) -> None:
    """The online backup, in steps of about 1% when someone is watching the percentage.

    `src` holds its read transaction throughout, so every step copies the same snapshot.
    """
    if progress is None:
        src.backup(dst)
        return
    total = src.execute("PRAGMA page_count").fetchone()[0]

    def tell(_status: int, remaining: int, pages: int) -> None:
        progress(f"backup: {100 * (pages - remaining) // max(pages, 1)}%")

    progress("backup: 0%")
    src.backup(dst, pages=max(total // 100, 64), progress=tell)


# A temporary file's name ends with its process id (then perhaps SQLite's sidecar suffix).
OWNER_PID = re.compile(r"-(\d+)(?:-wal|-shm|-journal)?$")


def remove_stale_partials(directory: Path, pattern: str) -> None:
    """Delete the temporary files (`pattern`) of backups or copies whose process is gone
    (killed before it finished), and their SQLite sidecars."""
    for leftover in directory.glob(pattern):
        owner = OWNER_PID.search(leftover.name)
        if owner and not process_alive(int(owner.group(1))):
            leftover.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def check_copy(path: Path, expected: dict[str, int]) -> None:
    """Raise `BackupError` unless the copy is intact and holds the expected rows."""
    with reader(path) as con:
        problems = [r[0] for r in con.execute("PRAGMA integrity_check") if r[0] != "ok"]
        counts = table_counts(con)
    if problems:
        more = f" (and {len(problems) - 1} more; --verbose lists them)" if len(problems) > 1 else ""
        raise BackupError(f"backup failed its integrity check: {problems[0]}{more}", problems)
    if counts != expected:
        differ = [
            f"{t}: {counts.get(t)} rows in the copy, {n} in the database"
            for t, n in sorted(expected.items())
            if counts.get(t) != n
        ]
        differ += [f"{t}: only in the copy" for t in sorted(set(counts) - set(expected))]
        more = f" (and {len(differ) - 1} more; --verbose lists them)" if len(differ) > 1 else ""
        raise BackupError(f"backup row counts differ from the database: {differ[0]}{more}", differ)


def link_without_overwrite(tmp: Path, first: Path, explicit: bool, suffix: str = "") -> Path:
    """Give `tmp` the first free name from `first` on (hard links never replace a file)."""
    for target in candidates(first, suffix):
        try:
            os.link(tmp, target)
            return target
        except FileExistsError:
            if explicit:
                raise BackupError(f"{target} exists; refusing to overwrite it") from None
    raise AssertionError("unreachable")
