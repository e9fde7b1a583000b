"""SQLite files: checked before SQLite opens them, opened with the contract's pragmas, and read
in one snapshot even while other processes write (see docs/architecture.md, Safety rules)."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import peewee

from ..database import DEFAULT_BUSY_TIMEOUT, is_busy, real_path, translate_errors
from ..errors import DatabaseOpenError


def check_sqlite_file(path: Path, must_exist: bool) -> bool:
    """Raise `DatabaseOpenError` unless `path` can be a database file; return whether it exists.

    Whether its content is SQLite's is SQLite's to say (SQLITE_NOTADB on the first read):
    opening the file with anything else and closing it would drop every POSIX lock this
    process holds on it, a write lock taken by another connection included.
    """
    if path.is_dir():
        raise DatabaseOpenError(f"{path} is a directory, not a database file")
    if not path.exists():
        if must_exist:
            raise DatabaseOpenError(f"no database at {path}")
        return False
    if not os.access(path, os.R_OK):
        raise DatabaseOpenError(f"cannot read {path}: permission denied")
    return True


def check_writable(path: Path) -> None:
    """Refuse a file without write permission bits (even for root, who could write it anyway)."""
    if path.exists() and not path.stat().st_mode & 0o222:
        raise DatabaseOpenError(f"{path} is read-only; refusing to write to it")


def sqlite_pragmas(busy_timeout: float) -> list[tuple[str, object]]:
    """What every read-write SQLite connection sets, but for journal_mode=WAL (see open_sqlite)."""
    return [
        ("busy_timeout", int(busy_timeout * 1000)),
        ("foreign_keys", 1),
        ("synchronous", 1),  # NORMAL
    ]


def reader_uri(path: Path) -> str:
    """A URI that reads `path` through SQLite's normal locking and never creates it.

    `mode=rw` (not `ro`): a read-write open rolls back a crashed writer's hot journal, and
    the last connection to close removes the -wal/-shm files it created. A file without
    write permission falls back to `mode=ro`. Never `immutable=1`, which ignores the WAL
    and takes no locks: a live file read that way is stale or torn.
    """
    writable = os.access(path, os.W_OK) and path.stat().st_mode & 0o222  # root ignores os.access
    mode = "rw" if writable else "ro"
    return f"file:{urllib.parse.quote(str(path))}?mode={mode}"


def open_sqlite(
    path: str | os.PathLike,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    create: bool = True,
    readonly: bool = False,
) -> peewee.SqliteDatabase:
    """A connected SQLite database, at the real path behind any symlink.

    Read-write connections set the contract's pragmas and refuse a file without write
    permission bits (even for root, who could write it anyway). `readonly` connections
    run with `query_only` and change nothing, switch no journal mode, and leave no
    -wal/-shm files behind; a hot journal is still recovered, as any SQLite reader would.
    """
    path = real_path(path)
    existed = check_sqlite_file(path, must_exist=readonly or not create)
    db: peewee.SqliteDatabase
    if readonly:
        db = ReaderDatabase(
            reader_uri(path),
            uri=True,
            timeout=busy_timeout,
            pragmas=[("busy_timeout", int(busy_timeout * 1000)), ("query_only", 1)],
        )
    else:
        check_writable(path)
        if not existed:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = peewee.SqliteDatabase(str(path), pragmas=sqlite_pragmas(busy_timeout), timeout=busy_timeout)
    note_sidecars(path)
    db.real_path = path  # type: ignore[attr-defined]  # see `remove_unused_sidecars`
    try:
        with translate_errors(path):
            db.connect()
            con = db.connection()
            if readonly:
                polling_busy(
                    con, busy_timeout, "SELECT count(*) FROM sqlite_master"
                )  # recovers a hot journal
            else:
                # switching to WAL can fail busy at once, without SQLite's busy handler, while
                # other processes open the same new file
                polling_busy(con, busy_timeout, "PRAGMA journal_mode = wal")
    except BaseException:
        db.close()  # now, not when the error is collected: the last connection removes -wal/-shm
        remove_unused_sidecars(path)
        raise
    return db


class ReaderDatabase(peewee.SqliteDatabase):
    """A read-only connection that removes, once closed, the unused -wal/-shm files this
    process made (see `remove_unused_sidecars`)."""

    real_path: Path

    def _close(self, conn: sqlite3.Connection) -> None:  # peewee's hook; pinned by tests
        super()._close(conn)  # type: ignore[misc]
        remove_unused_sidecars(self.real_path)


@contextlib.contextmanager
def reader(path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Iterator[sqlite3.Connection]:
    """A raw read-only connection to `path` (see `reader_uri`), closed and its leftovers removed after."""
    note_sidecars(path)
    con = sqlite3.connect(reader_uri(path), uri=True, timeout=busy_timeout, isolation_level=None)
    try:
        con.execute("PRAGMA query_only = 1")
        yield con
    finally:
        con.close()
        remove_unused_sidecars(path)


MADE_HERE: dict[Path, set[Path]] = {}  # database -> its -wal/-shm that an open here may have made


def note_sidecars(path: Path) -> None:
    """Before a connection opens `path`: note its -wal and -shm that do not exist yet."""
    missing = {p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if not p.exists()}
    if missing:
        MADE_HERE.setdefault(path, set()).update(missing)


def remove_unused_sidecars(path: Path) -> None:
    """Remove the -wal and -shm files of `path` that this process's connections made, once
    nothing uses them: the -wal is empty and no process, this one included, holds a lock on
    the -shm or on the database (a connection to a WAL file holds one on the -shm while open).

    SQLite's last connection to close removes them itself, but not a read-only one (its
    descriptor of the file cannot take the write lock that removal needs), nor an open that
    failed (a full disk leaves an empty -wal and a few bytes of -shm). Left behind, they would
    be the only trace of a command that changed nothing, owned by whoever ran it.
    """
    made = MADE_HERE.get(path)
    if not made:
        return
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    try:
        if wal.stat().st_size:
            return  # frames someone wrote
    except FileNotFoundError:
        pass
    if locked({path, shm}):
        return
    for sidecar in (wal, shm):  # SQLite's order: a -shm without its -wal is rebuilt
        if sidecar in made:
            sidecar.unlink(missing_ok=True)
    MADE_HERE.pop(path, None)


def locked(paths: set[Path]) -> bool:
    """Whether any process holds a lock on one of `paths` (or it cannot be told).

    Read from /proc/locks, not probed with fcntl: closing a descriptor opened for the probe
    would drop every POSIX lock this process holds on the file, a connection's included.
    """
    wanted = set()
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        wanted.add(f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}")
    try:
        with open("/proc/locks") as table:
            return any(field in wanted for line in table for field in line.split())
    except OSError:
        return True  # no way to tell: keep them


@contextlib.contextmanager
def read_snapshot(
    path: str | os.PathLike, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
) -> Iterator[sqlite3.Connection]:
    """A raw connection inside one read transaction: every read sees the same committed state.

    The one way sessionorm takes a consistent snapshot of a live file (backups, dry-run
    copies). In rollback-journal mode the shared lock held meanwhile makes writers wait.
    """
    path = real_path(path)
    check_sqlite_file(path, must_exist=True)
    with translate_errors(path), reader(path, busy_timeout) as con:
        con.execute("BEGIN")
        start_snapshot(con, busy_timeout)
        yield con
        con.execute("COMMIT")


@contextlib.contextmanager
def read_transaction(db: peewee.SqliteDatabase, busy_timeout: float) -> Iterator[None]:
    """`read_snapshot` for a peewee database: the block reads one committed state.

    It ends with ROLLBACK: it wrote nothing, and on a damaged file, where SQLite may
    already have ended it or refuse to COMMIT, the block has already said what it found.
    """
    con = db.connection()
    con.execute("BEGIN")
    try:
        start_snapshot(con, busy_timeout)
        yield
    finally:
        if con.in_transaction:
            con.execute("ROLLBACK")


def start_snapshot(con: sqlite3.Connection, busy_timeout: float) -> None:
    """Take the read lock of the transaction `con` has begun (see `polling_busy`)."""
    polling_busy(con, busy_timeout, "SELECT count(*) FROM sqlite_master")


def polling_busy(con: sqlite3.Connection, busy_timeout: float, sql: str) -> list[tuple]:
    """Run `sql`, retrying about every millisecond while the file is busy, up to `busy_timeout`.

    SQLite's own busy handler backs off to 100 ms sleeps, and some lock changes (the switch
    to WAL) do not call it at all; a writer committing in a loop in rollback-journal mode
    leaves only short gaps between its locks, and a reader polling slowly starves (seen: 2%
    of reads failed after 5 s).
    """
    deadline = time.monotonic() + busy_timeout
    con.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                return con.execute(sql).fetchall()
            except sqlite3.OperationalError as exc:
                # any busy code: SQLITE_BUSY_RECOVERY too, while another opener rebuilds the WAL index
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
                # jittered, so that processes polling for one lock do not retry in lockstep
                time.sleep(random.uniform(0.0005, 0.002))
    finally:
        con.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")


def open_keeping_journal_mode(path: Path, busy_timeout: float) -> peewee.SqliteDatabase:
    """A read-write connection with the contract's pragmas except journal_mode."""
    check_sqlite_file(path, must_exist=True)
    check_writable(path)
    pragmas = [p for p in sqlite_pragmas(busy_timeout) if p[0] != "journal_mode"]
    db = peewee.SqliteDatabase(str(path), pragmas=pragmas, timeout=busy_timeout)
    with translate_errors(path):
        db.connect()
    return db


@contextlib.contextmanager
def write_transaction(db: peewee.SqliteDatabase) -> Iterator[None]:
    """`BEGIN IMMEDIATE` (the write lock from the first statement), or a savepoint when nested.

    On SQLITE_FULL or SQLITE_IOERR SQLite ends the transaction itself; a ROLLBACK then
    fails ("no transaction is active") and would hide the real error, so none is sent
    when the connection is no longer in a transaction.
    """
    conn = db.connection()
    top = db.transaction_depth() == 0 and not conn.in_transaction
    step = db.transaction("IMMEDIATE") if top else db.savepoint()
    step.__enter__()  # on peewee's stack while it runs: atomic() inside makes savepoints
    try:
        yield
        if top:
            db.pop_transaction()
        step.commit(False)
    except BaseException:
        if top and db.transaction_depth() and db.top_transaction() is step:
            db.pop_transaction()
        if conn.in_transaction:
            step.rollback(False)
        raise
