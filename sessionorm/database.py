"""What every engine shares: the default path, real paths, passwords kept out of messages, and
the one place that classifies driver errors (by code, never by text).

Opening a database is its backend's (`backends/`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import peewee

from .errors import DatabaseBusyError, DatabaseDamagedError, DatabaseOpenError

DEFAULT_BUSY_TIMEOUT = 5.0
MEMORY = ":memory:"  # SQLite's name for a database that lives in memory only


def default_path() -> Path:
    """`$AMPSM_DB_PATH`, else where the orchestrator keeps its database."""
    env = os.environ.get("AMPSM_DB_PATH")
    return Path(env) if env else Path.home() / ".config" / "ampsm" / "sessions.sqlite"


def real_path(path: str | os.PathLike) -> Path:
    """The file behind `path`, symlinks resolved: SQLite keeps -wal/-journal next to it.

    `:memory:` stays itself: SQLite's in-memory database, as sqlite3 and peewee read it.
    """
    if os.fspath(path) == MEMORY:
        return Path(MEMORY)
    return Path(path).expanduser().resolve()


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
    found += [
        v
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() in ("password", "sslpassword")
    ]
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
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


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
    return (
        f"{where}: database is busy (another process holds the write lock); "
        "retry when it finishes or raise the busy timeout (--busy-timeout SECONDS)"
    )


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
        if code.startswith("SQLITE_CORRUPT"):
            damaged = DatabaseDamagedError(
                f"{where} is damaged ({text}); `sessionorm verify` lists what integrity_check finds"
            )
            damaged.reason = f"{where} is damaged and cannot be opened ({text})"
            raise damaged from None
        if code.startswith("SQLITE_IOERR"):
            if no_room(where):
                raise DatabaseOpenError(f"{where}: the disk is full: {text}") from None
            raise DatabaseOpenError(f"{where}: the disk could not be read or written ({text})") from None
        raise


def is_corrupt(exc: BaseException) -> bool:
    """SQLITE_CORRUPT (and its extended codes): the file itself is damaged."""
    return (sqlite_code(exc) or "").startswith("SQLITE_CORRUPT")


def no_room(where: object) -> bool:
    """Whether the folder of the file `where` names has no free space left (an I/O error there
    is a full disk: SQLite reports a -shm it cannot grow as SQLITE_IOERR_SHMSIZE)."""
    folder = Path(str(where)).parent
    try:
        return folder.is_dir() and shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False
