"""Where the database is, parsed once: a SQLite file or a server URL, with its busy timeout and
your own migrations folder. Every command function takes one (or what makes one).

URLs are read by `playhouse.db_url` and its scheme registry: any SQLite-family scheme
(`sqlite`, `sqlite+pool`, …) names a file, whose query string holds connection options and
is never part of the file name; PostgreSQL-family schemes name a server database.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

import peewee
from playhouse import db_url

from .database import DEFAULT_BUSY_TIMEOUT, bad_url, default_path, real_path, redact
from .errors import DatabaseOpenError, ValidationError
from .validation import check_busy_timeout, quoted

SUPPORTED = "sqlite:///file.db (any SQLite scheme, e.g. sqlite+pool) or postgresql://host/database"
SQLITE_OPTIONS = {"timeout"}
DATABASE_VARIABLES = (
    "SESSIONORM_DB_URL",
    "AMPSM_DB_PATH",
)  # the default database, in order  # seconds to wait for a lock: the busy timeout


@dataclass(frozen=True)
class Target:
    """A database to work on: `path` (a SQLite file) or `url` (a server), and how to reach it."""

    path: Path | None = None
    url: str | None = None
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    migrations_dir: Path | None = None

    @property
    def is_server(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        """For messages: the file, or the URL with its passwords replaced by ***."""
        return redact(self.url) if self.url is not None else str(self.path)

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> Target:
        """A SQLite file, named as given (symlinks are resolved when it is opened)."""
        if "\x00" in os.fspath(path):
            raise ValidationError(f"the database path {quoted(os.fspath(path))} contains a NUL character")
        return cls(path=Path(path).expanduser())

    @classmethod
    def from_url(cls, url: str) -> Target:
        """A URL read by `playhouse.db_url`; an unsupported scheme is one clear error."""
        if not url.strip():
            raise ValidationError("the database URL is empty (an unset variable?): name a database")
        try:
            parsed = urllib.parse.urlparse(url)
        except ValueError as exc:  # e.g. an unbalanced [ in the host
            raise DatabaseOpenError(bad_url(url, exc)) from None
        database_class = db_url.schemes.get(parsed.scheme) if parsed.scheme else None
        if database_class is None or not issubclass(
            database_class, (peewee.SqliteDatabase, peewee.PostgresqlDatabase)
        ):
            what = f"scheme {parsed.scheme!r}" if parsed.scheme else "no scheme"
            raise DatabaseOpenError(
                f"unsupported database URL {quoted(redact(url))} ({what}): use {SUPPORTED}"
            )
        if issubclass(database_class, peewee.PostgresqlDatabase):
            return cls(url=url)
        options = db_url.parse(url)
        name = options.pop("database")
        if not name or name == ":memory:":
            raise DatabaseOpenError(
                f"{quoted(url)} names no file: use sqlite:///relative.db or sqlite:////absolute/path.db"
            )
        unknown = sorted(set(options) - SQLITE_OPTIONS)
        if unknown:
            raise DatabaseOpenError(
                f"{quoted(url)}: sessionorm does not take the option(s) "
                f"{', '.join(unknown)} for a SQLite file (it takes: timeout)"
            )
        target = cls(path=Path(urllib.parse.unquote(name)).expanduser())
        if "timeout" in options:
            target = replace(target, busy_timeout=url_seconds(options["timeout"], url))
        return target

    @classmethod
    def of(
        cls,
        db: str | os.PathLike | Target | None = None,
        busy_timeout: float | None = None,
        migrations_dir: str | os.PathLike | None = None,
    ) -> Target:
        """`db` as a Target: a Target, a URL (it has `://`), a path, or None for the default.

        `busy_timeout` and `migrations_dir`, when given, replace what `db` carries.
        """
        if isinstance(db, Target):
            target = db
        elif db is None:
            target = cls.default()
        elif isinstance(db, str) and not db.strip():
            raise ValidationError(
                "the database is an empty string (an unset variable?): name a file or a URL, "
                "or pass None for the default"
            )
        elif isinstance(db, str) and "://" in db:
            target = cls.from_url(db)
        elif isinstance(db, (str, os.PathLike)):
            target = cls.from_path(db)
        else:
            raise ValidationError(f"a database is a path, a URL or a Target, not {type(db).__name__}")
        if busy_timeout is not None:
            target = replace(target, busy_timeout=check_busy_timeout(busy_timeout))
        if migrations_dir is not None:
            target = replace(target, migrations_dir=Path(migrations_dir))
        return target

    @classmethod
    def default(cls) -> Target:
        """Where the database is when none is named: `$SESSIONORM_DB_URL`, else `$AMPSM_DB_PATH`,
        else the orchestrator's own file. The one resolution the CLI and the Python API share.

        A variable that is set but empty is refused (`ValidationError`): it is what a script
        exports from an unset variable, and falling back would work on another database.
        """
        for name in DATABASE_VARIABLES:
            value = os.environ.get(name)
            if value is not None and not value.strip():
                raise ValidationError(
                    f"${name} is set but empty (from an unset variable?): set it to a database, or unset it"
                )
        url = os.environ.get("SESSIONORM_DB_URL")
        return cls.from_url(url) if url else cls.from_path(default_path())

    @property
    def server_url(self) -> str:
        """The server database's URL."""
        if self.url is None:
            raise DatabaseOpenError(f"{self} is a SQLite file, not a server database")
        return self.url

    @property
    def real_path(self) -> Path:
        """The SQLite file behind any symlink."""
        if self.path is None:
            raise DatabaseOpenError(f"{self}: only SQLite files are supported by this command")
        return real_path(self.path)


def url_seconds(value: object, url: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    try:
        return check_busy_timeout(seconds)
    except ValidationError:
        raise DatabaseOpenError(
            f"{quoted(url)}: timeout must be a finite number of seconds >= 0, not {quoted(value)}"
        ) from None
