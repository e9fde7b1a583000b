"""Opening databases: default path, URLs, the connection pragmas, read-only snapshots."""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import peewee
from playhouse.db_url import connect as connect_url

from .errors import DatabaseBusyError, DatabaseOpenError
from .postgres import open_postgres

DEFAULT_BUSY_TIMEOUT = 5.0
SQLITE_HEADER = b"SQLite format 3\x00"


def default_path() -> Path:
    """`$AMPSM_DB_PATH`, else where the orchestrator keeps its database."""
    env = os.environ.get("AMPSM_DB_PATH")
    return Path(env) if env else Path.home() / ".config" / "ampsm" / "sessions.sqlite"


def check_sqlite_file(path: Path, must_exist: bool) -> bool:
    """Raise `DatabaseOpenError` unless `path` can be a SQLite database; return whether it exists."""
    if path.is_dir():
        raise DatabaseOpenError(f"{path} is a directory, not a database file")
    if not path.exists():
        if must_exist:
            raise DatabaseOpenError(f"no database at {path}")
        return False
    try:
        with open(path, "rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise DatabaseOpenError(f"cannot read {path}: {exc.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise DatabaseOpenError(f"{path} is not a SQLite database")
    return True


def check_writable(path: Path) -> None:
    """Refuse a file without write permission bits (even for root, who could write it anyway)."""
    if path.exists() and not path.stat().st_mode & 0o222:
        raise DatabaseOpenError(f"{path} is read-only; refusing to write to it")


def sqlite_pragmas(busy_timeout: float) -> list[tuple[str, object]]:
    """What every read-write SQLite connection sets (see DESIGN.md, Connections)."""
    return [
        ("busy_timeout", int(busy_timeout * 1000)),
        ("journal_mode", "wal"),
        ("foreign_keys", 1),
        ("synchronous", 1),  # NORMAL
    ]


def open_sqlite(path: str | os.PathLike, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                create: bool = True, readonly: bool = False) -> peewee.SqliteDatabase:
    """A connected SQLite database.

    Read-write connections set the contract's pragmas and refuse a file without write
    permission bits (even for root, who could write it anyway). Read-only connections
    change not a byte and leave no -wal/-shm files behind.
    """
    path = Path(path).expanduser()
    existed = check_sqlite_file(path, must_exist=readonly or not create)
    if readonly:
        db = peewee.SqliteDatabase(readonly_sqlite_uri(path), uri=True, timeout=busy_timeout,
                                   pragmas=[("busy_timeout", int(busy_timeout * 1000))])
    else:
        check_writable(path)
        if not existed:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = peewee.SqliteDatabase(str(path), pragmas=sqlite_pragmas(busy_timeout),
                                   timeout=busy_timeout)
    with translate_errors(path):
        db.connect()
        db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()
    return db


def open_url(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
             create: bool = True) -> peewee.Database:
    """A connected database from a `playhouse.db_url` URL (sqlite:///… or postgresql://…).

    A server database is never created here: it must exist. On PostgreSQL, `busy_timeout`
    becomes each transaction's `lock_timeout` (see `postgres.configure`), and connecting
    gives up after `connect_timeout` seconds (10 unless the URL says otherwise).
    """
    if url.startswith("sqlite:"):
        return open_sqlite(sqlite_url_path(url), busy_timeout, create)
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


def sqlite_url_path(url: str) -> str:
    """The file of a SQLite URL, as playhouse.db_url reads it: `sqlite:///rel.db`, `sqlite:////abs.db`."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):]
    if url.startswith("sqlite://"):
        raise DatabaseOpenError(f"{url!r} names no file: use sqlite:///relative.db or sqlite:////abs.db")
    return url[len("sqlite:"):]


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


def scrub(text: str, url: str | None) -> str:
    """`text` with every password of `url` replaced by `***`."""
    if not url or not isinstance(url, str):
        return text
    for secret in secrets(url):
        text = text.replace(secret, "***")
    return text


def readonly_sqlite_uri(path: Path) -> str:
    """A URI that reads `path` without creating -wal/-shm files or changing a byte.

    A WAL-mode file read with `mode=ro` gets -wal/-shm files created (and left) when none
    exist; with no -wal file, the main file is complete, so `immutable=1` is exact.
    """
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    if not Path(f"{path}-wal").exists() and not Path(f"{path}-journal").exists():
        uri += "&immutable=1"
    return uri


# lock_not_available (lock_timeout, NOWAIT), query_canceled (statement_timeout, e.g. pg_dump's
# --lock-wait-timeout), deadlock_detected: another transaction holds what we need.
BUSY_SQLSTATES = frozenset({"55P03", "57014", "40P01"})
BUSY_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED")


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception (peewee keeps it in `orig`)."""
    return getattr(exc, "orig", None) or exc


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
        if "readonly" in text or "read-only" in text:
            raise DatabaseOpenError(f"{where} is read-only: {text}") from None
        if "not a database" in text or "file is encrypted" in text:
            raise DatabaseOpenError(f"{where} is not a SQLite database") from None
        if "unable to open" in text:
            raise DatabaseOpenError(f"cannot open {where}: {text}") from None
        if "disk is full" in text or "database or disk is full" in text:
            raise DatabaseOpenError(f"{where}: the disk is full: {text}") from None
        raise
