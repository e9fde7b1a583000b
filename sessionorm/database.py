"""Opening databases: default path, URLs, the connection pragmas, read-only snapshots."""
from __future__ import annotations

import contextlib
import os
import random
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import peewee
from playhouse.db_url import connect as connect_url

from .errors import DatabaseBusyError, DatabaseOpenError
from .postgres import open_postgres

DEFAULT_BUSY_TIMEOUT = 5.0


def default_path() -> Path:
    """`$AMPSM_DB_PATH`, else where the orchestrator keeps its database."""
    env = os.environ.get("AMPSM_DB_PATH")
    return Path(env) if env else Path.home() / ".config" / "ampsm" / "sessions.sqlite"


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


def real_path(path: str | os.PathLike) -> Path:
    """The file behind `path`, symlinks resolved: SQLite keeps -wal/-journal next to it."""
    return Path(path).expanduser().resolve()


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


def open_sqlite(path: str | os.PathLike, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                create: bool = True, readonly: bool = False) -> peewee.SqliteDatabase:
    """A connected SQLite database, at the real path behind any symlink.

    Read-write connections set the contract's pragmas and refuse a file without write
    permission bits (even for root, who could write it anyway). `readonly` connections
    run with `query_only` and change nothing, switch no journal mode, and leave no
    -wal/-shm files behind; a hot journal is still recovered, as any SQLite reader would.
    """
    path = real_path(path)
    existed = check_sqlite_file(path, must_exist=readonly or not create)
    if readonly:
        db = peewee.SqliteDatabase(reader_uri(path), uri=True, timeout=busy_timeout,
                                   pragmas=[("busy_timeout", int(busy_timeout * 1000)),
                                            ("query_only", 1)])
    else:
        check_writable(path)
        if not existed:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = peewee.SqliteDatabase(str(path), pragmas=sqlite_pragmas(busy_timeout),
                                   timeout=busy_timeout)
    with translate_errors(path):
        db.connect()
        con = db.connection()
        if readonly:
            polling_busy(con, busy_timeout, "SELECT count(*) FROM sqlite_master")  # recovers a hot journal
        else:
            # switching to WAL can fail busy at once, without SQLite's busy handler, while
            # other processes open the same new file
            polling_busy(con, busy_timeout, "PRAGMA journal_mode = wal")
    return db


@contextlib.contextmanager
def read_snapshot(path: str | os.PathLike,
                  busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Iterator[sqlite3.Connection]:
    """A raw connection inside one read transaction: every read sees the same committed state.

    The one way sessionorm takes a consistent snapshot of a live file (backups, dry-run
    copies). In rollback-journal mode the shared lock held meanwhile makes writers wait.
    """
    path = real_path(path)
    check_sqlite_file(path, must_exist=True)
    with translate_errors(path):
        con = sqlite3.connect(reader_uri(path), uri=True, timeout=busy_timeout,
                              isolation_level=None)
        try:
            con.execute("PRAGMA query_only = 1")
            con.execute("BEGIN")
            start_snapshot(con, busy_timeout)
            yield con
            con.execute("COMMIT")
        finally:
            con.close()


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


def open_url(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
             create: bool = True) -> peewee.Database:
    """A connected server database from a `playhouse.db_url` URL (SQLite files: `open_sqlite`).

    A server database is never created here: it must exist. On PostgreSQL, `busy_timeout`
    becomes each transaction's `lock_timeout` (see `postgres.configure`), and connecting
    gives up after `connect_timeout` seconds (10 unless the URL says otherwise).
    """
    try:  # percent-escapes in the user and password are decoded, as libpq does
        db = connect_url(url, unquote_password=True, unquote_user=True)
    except (RuntimeError, ValueError, ImportError) as exc:
        raise DatabaseOpenError(scrub(f"bad database URL {redact(url)!r}: {exc}", url)) from None
    if isinstance(db, peewee.PostgresqlDatabase):
        db = open_postgres(db, busy_timeout)
    try:
        db.connect()
    except peewee.ImproperlyConfigured:
        raise DatabaseOpenError("PostgreSQL needs the psycopg driver: "
                                "pip install 'sessionorm[postgres]'") from None
    except (peewee.PeeweeException, ImportError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseOpenError(scrub(f"cannot connect to {redact(url)}: {detail}", url)) from None
    return db


SECRET_QUERY = re.compile(r"(?i)((?:^|&)(?:ssl)?password=)[^&#]*")


def redact(url: str) -> str:
    """`url` with its passwords (user info, `?password=`, `?sslpassword=`) replaced by `***`."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in the host: redact what looks like user info
        return re.sub(r"(://[^/?#@:]*:)[^/?#]*@", r"\1***@", url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    query = SECRET_QUERY.sub(r"\1***", parts.query)
    if (userinfo + at + host, query) == (parts.netloc, parts.query):
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=userinfo + at + host, query=query))


def secrets(url: str) -> list[str]:
    """The passwords in `url`, as written and percent-decoded (to scrub them from any text)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    found = [parts.password or ""]
    found += [v for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
              if k.lower() in ("password", "sslpassword")]
    found += [urllib.parse.unquote(v) for v in found]
    return sorted({v for v in found if v}, key=len, reverse=True)


def scrub(text: str, *urls: str | None) -> str:
    """`text` with every password of each of `urls` replaced by `***`."""
    for url in urls:
        if url and isinstance(url, str):
            for secret in secrets(url):
                text = text.replace(secret, "***")
    return text


def first_line(exc: BaseException, limit: int = 80) -> str:
    """A driver error's first line, cut to about `limit` characters."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception behind a peewee wrapper (peewee keeps it in `.orig`)."""
    return getattr(exc, "orig", None) or exc


def sqlite_code(exc: BaseException) -> str | None:
    """SQLite's error name (`SQLITE_BUSY`, `SQLITE_READONLY_ROLLBACK`, …), if a sqlite3 error."""
    return getattr(driver_error(exc), "sqlite_errorname", None)


# lock_not_available (lock_timeout, NOWAIT), query_canceled (statement_timeout, e.g. pg_dump's
# --lock-wait-timeout), deadlock_detected: another transaction holds what we need.
BUSY_SQLSTATES = frozenset({"55P03", "57014", "40P01"})
BUSY_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED")


def is_busy(exc: BaseException) -> bool:
    """Whether a driver error means another connection holds the lock (by error code)."""
    orig = driver_error(exc)
    code = getattr(orig, "sqlstate", None)
    if code is not None:
        return code in BUSY_SQLSTATES
    return str(getattr(orig, "sqlite_errorname", "")).startswith(BUSY_SQLITE)


def busy_message(where: object) -> str:
    return (f"{where}: database is busy (another process holds the write lock); "
            "retry when it finishes or raise the busy timeout (--busy-timeout SECONDS)")


@contextlib.contextmanager
def translate_errors(where: object) -> Iterator[None]:
    """Turn driver errors about the file itself into sessionorm's typed errors."""
    try:
        yield
    except (sqlite3.Error, peewee.PeeweeException) as exc:
        where = redact(where) if isinstance(where, str) else where
        text = str(exc)
        if is_busy(exc):
            raise DatabaseBusyError(busy_message(where)) from None
        if getattr(driver_error(exc), "sqlstate", None) is not None:
            raise  # PostgreSQL's other errors pass through (the CLI prints their first line)
        code = sqlite_code(exc) or ""
        if code == "SQLITE_READONLY_ROLLBACK":
            raise DatabaseOpenError(
                f"{where} is read-only and has a hot journal left by a crashed writer; make the "
                "file writable so SQLite can roll that transaction back before anything reads it"
            ) from None
        if code.startswith("SQLITE_READONLY"):
            raise DatabaseOpenError(f"{where} is read-only: {text}") from None
        if code == "SQLITE_NOTADB":
            raise DatabaseOpenError(f"{where} is not a SQLite database") from None
        if code.startswith("SQLITE_CANTOPEN"):
            raise DatabaseOpenError(f"cannot open {where}: {text}") from None
        if code == "SQLITE_FULL":
            raise DatabaseOpenError(f"{where}: the disk is full: {text}") from None
        raise
