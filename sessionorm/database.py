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


# A password in the query string runs to the next `&` or the end: `#` may be part of it.
SECRET_QUERY = re.compile(r"(?i)([?&](?:ssl)?password=)[^&]*")


def userinfo_span(url: str) -> tuple[int, int] | None:
    """Where `url`'s user info is: from after `://` to its last `@` (None: it has none).

    Found by the characters alone, not by URL parsing: a password may hold `#`, `?`, `/` or
    `@` unescaped, which a parser takes for the end of the host (and then shows the rest).
    """
    start = url.find("://")
    end = url.rfind("@")
    if start < 0 or end < start + 3:
        return None
    return start + 3, end


def redact(url: str) -> str:
    """`url` with its passwords (user info, `?password=`, `?sslpassword=`) replaced by `***`,
    however the URL fails to parse."""
    span = userinfo_span(url)
    if span is None:
        return SECRET_QUERY.sub(r"\1***", url)
    start, end = span
    userinfo = url[start:end]
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return url[:start] + userinfo + SECRET_QUERY.sub(r"\1***", url[end:])


def secrets(url: str) -> list[str]:
    """The passwords in `url`, as written and percent-decoded (to scrub them from any text)."""
    found = []
    span = userinfo_span(url)
    if span is not None and ":" in url[span[0] : span[1]]:
        found.append(url[span[0] : span[1]].split(":", 1)[1])
    found += [m.group(0).split("=", 1)[1] for m in SECRET_QUERY.finditer(url)]
    found += [urllib.parse.unquote(v) for v in found]
    return sorted({v for v in found if v}, key=len, reverse=True)


def bad_url(url: str, error: Exception) -> str:
    """The one line for a URL that does not parse. With a password in it, the parser's own
    words are left out: they quote pieces of the URL it split in the wrong place."""
    if secrets(url):
        return (
            f"bad database URL {redact(url)!r}: it does not parse; percent-encode the characters "
            "# ? / @ % in the user name and password (e.g. # as %23)"
        )
    return f"bad database URL {redact(url)!r}: {error}"


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


def is_constraint(exc: BaseException) -> bool:
    """Whether a driver error is a constraint refusing a row (unique, foreign key, check, not null)."""
    orig = driver_error(exc)
    code = getattr(orig, "sqlstate", None)
    if code is not None:
        return str(code).startswith("23")  # integrity_constraint_violation
    return str(getattr(orig, "sqlite_errorname", "")).startswith("SQLITE_CONSTRAINT")


IN_USE_SQLSTATE = "55006"  # object_in_use: e.g. renaming or dropping a database others are connected to


def is_in_use(exc: BaseException) -> bool:
    """Whether a server refused because other sessions use the object (by SQLSTATE)."""
    return getattr(driver_error(exc), "sqlstate", None) == IN_USE_SQLSTATE


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
