"""Restoring a SQLite file from a backup: the live file's content replaced in ONE write
transaction, never a rename.

A rename over a live file is unsafe: a process that has it open (the orchestrator app keeps
its connection) goes on writing to the old inode while sharing the `-wal`/`-shm` files, by
name, with the new one: lost writes, then corruption. So the backup is checked, attached,
and, under `BEGIN IMMEDIATE`, every object of the live file is dropped and made again from
the backup's schema with the backup's rows. SQLite's journal makes that atomic and crash-safe:
a process killed half-way leaves the old content, and every other connection sees the
restored content from its next transaction on.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from ..database import busy_message, is_busy, translate_errors
from ..errors import BackupError, DatabaseBusyError, DatabaseOpenError
from ..identifiers import q
from .base import Progress, Restored
from .sqlite_backup import backup_sqlite, check_copy, table_counts
from .sqlite_files import (
    check_sqlite_file,
    note_sidecars,
    polling_busy,
    reader,
    reader_uri,
    remove_unused_sidecars,
)

REQUIRED = ("sessions", "migrations")  # without them it is not sessionorm's (or the app's) database


def check_backup(path: Path) -> dict[str, int]:
    """Refuse a backup that is missing, unreadable, not SQLite, damaged, or not sessionorm's;
    return its tables' row counts."""
    try:
        check_sqlite_file(path, must_exist=True)
        if not path.is_file():
            raise DatabaseOpenError(f"{path} is not a file")
        with translate_errors(path), reader(path) as con:
            problems = [r[0] for r in con.execute("PRAGMA integrity_check") if r[0] != "ok"]
            if problems:
                raise BackupError(f"{path} fails its integrity check: {problems[0]}", problems)
            counts = table_counts(con)
    except DatabaseOpenError as exc:
        raise BackupError(f"cannot restore from {path}: {exc}") from None
    missing = [t for t in REQUIRED if t not in counts]
    if missing:
        raise BackupError(
            f"{path} is not a sessionorm or orchestrator database (no {' and no '.join(missing)} table)"
        )
    return counts


def restore_sqlite(backup: Path, live: Path, busy_timeout: float, progress: Progress = None) -> Restored:
    """Replace the content of `live` with `backup`'s, atomically; keep the replaced content
    as `<live>.backup-YYYY-MM-DD-HHMMSS` first (see the module's docstring)."""
    expected = check_backup(backup)
    if not check_sqlite_file(live, must_exist=False):
        return Restored(kept=None, tables=copy_into_place(backup, live, expected, busy_timeout))
    if os.path.samefile(backup, live):
        raise BackupError(f"{backup} is the database itself; name a backup of it")
    if not live.stat().st_mode & 0o222:
        raise DatabaseOpenError(f"{live} is read-only; refusing to restore into it")
    con = sqlite3.connect(live, timeout=busy_timeout, isolation_level=None, uri=False)
    note_sidecars(backup)
    try:
        with translate_errors(live):
            con.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: before it
            con.execute("ATTACH DATABASE ? AS bak", (reader_uri(backup),))
            try:
                polling_busy(con, busy_timeout, "BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    raise DatabaseBusyError(
                        busy_message(f"{live}: another process is writing to it; nothing was restored")
                    ) from None
                raise
            try:
                kept = backup_sqlite(live, None, busy_timeout)  # the state being replaced, under the lock
                if progress:
                    progress(f"restore: kept the replaced database as {kept}")
                replace_content(con, progress)
                check_restored(con, expected)
                con.execute("COMMIT")
            finally:
                if con.in_transaction:
                    con.execute("ROLLBACK")
    finally:
        con.close()
        remove_unused_sidecars(backup)
    return Restored(kept=str(kept), tables=expected)


def objects(con: sqlite3.Connection, schema: str) -> list[tuple[str, str, str]]:
    """(type, name, sql) of every object of `schema`, in the order they were made; an
    automatic index (of a UNIQUE or PRIMARY KEY) has the SQL ''."""
    sql = f"SELECT type, name, coalesce(sql, '') FROM {schema}.sqlite_master ORDER BY rowid"
    return con.execute(sql).fetchall()


def is_virtual(sql: str) -> bool:
    return " ".join(sql.split()[:3]).upper() == "CREATE VIRTUAL TABLE"


def replace_content(con: sqlite3.Connection, progress: Progress) -> None:
    """Inside the caller's write transaction: `main` becomes what `bak` holds."""
    old = objects(con, "main")
    for kind in ("trigger", "view"):
        for type_, name, _sql in old:
            if type_ == kind:
                con.execute(f"DROP {kind.upper()} main.{q(name)}")
    for type_, name, sql in old:  # a virtual table drops its shadow tables with it
        if type_ == "table" and is_virtual(sql):
            con.execute(f"DROP TABLE main.{q(name)}")
    for type_, name, _sql in objects(con, "main"):
        if type_ == "table" and not name.startswith("sqlite_"):
            con.execute(f"DROP TABLE main.{q(name)}")
    new = objects(con, "bak")
    for type_, _name, sql in new:  # virtual tables first: they make their shadow tables
        if type_ == "table" and is_virtual(sql):
            con.execute(sql)
    made = {r[1] for r in objects(con, "main")}
    for type_, name, sql in new:
        if type_ == "table" and not is_virtual(sql) and name not in made and not name.startswith("sqlite_"):
            con.execute(sql)
    if any(name == "sqlite_stat1" for _t, name, _s in new) and "sqlite_stat1" not in made:
        con.execute("ANALYZE main.sqlite_master")  # makes an empty sqlite_stat1
    main_tables = {name for type_, name, _s in objects(con, "main") if type_ == "table"}
    for type_, name, sql in new:
        if type_ == "table" and not is_virtual(sql):
            if progress:
                progress(f"restore: {name}")
            con.execute(f"DELETE FROM main.{q(name)}")
            con.execute(f"INSERT INTO main.{q(name)} SELECT * FROM bak.{q(name)}")
    for name in main_tables - {n for t, n, s in new if t == "table"}:
        if name.startswith("sqlite_"):  # e.g. sqlite_sequence the backup lacks
            con.execute(f"DELETE FROM main.{q(name)}")
    for kind in ("index", "view", "trigger"):
        for type_, _name, sql in new:
            if type_ == kind and sql:  # an automatic index (UNIQUE, PRIMARY KEY) has no SQL
                con.execute(sql)
    for pragma in ("user_version", "application_id"):
        value = int(con.execute(f"PRAGMA bak.{pragma}").fetchone()[0])
        con.execute(f"PRAGMA main.{pragma} = {value}")


def check_restored(con: sqlite3.Connection, expected: dict[str, int]) -> None:
    """Before COMMIT: foreign keys, quick_check and every table's rows as the backup had them."""
    orphans = con.execute("PRAGMA main.foreign_key_check").fetchall()
    if orphans:
        raise BackupError(f"the restored rows fail foreign_key_check: {orphans[0]}; nothing was restored")
    problems = [r[0] for r in con.execute("PRAGMA main.quick_check") if r[0] != "ok"]
    if problems:
        raise BackupError(f"the restored database fails quick_check: {problems[0]}; nothing was restored")
    if table_counts(con) != expected:  # unqualified names are `main`'s before an attached one's
        raise BackupError("the restored row counts differ from the backup's; nothing was restored")


def copy_into_place(
    backup: Path, live: Path, expected: dict[str, int], busy_timeout: float
) -> dict[str, int]:
    """No database at `live` yet: a checked copy of the backup, linked to that name (never
    replacing a file that appeared meanwhile)."""
    if not live.parent.is_dir():
        raise DatabaseOpenError(f"no folder {live.parent} for {live}")
    tmp = live.with_name(f".{live.name}.restore-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        with translate_errors(backup), reader(backup, busy_timeout) as src:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
            finally:
                dst.close()
        check_copy(tmp, expected)
        os.chmod(tmp, stat.S_IMODE(backup.stat().st_mode) | 0o200)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, live)
        except FileExistsError:
            raise BackupError(f"{live} appeared while restoring; nothing was replaced") from None
    finally:
        tmp.unlink(missing_ok=True)
    return expected
