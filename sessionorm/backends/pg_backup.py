"""PostgreSQL backups: `pg_dump --format=custom`, checked with `pg_restore --list`, never overwriting.

The SQLite twin is `sqlite_backup.py`; both write under a temporary name and link the checked file
to the first free name (`…-2`, `…-3`, …), so an interrupted backup never looks finished.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import peewee
from playhouse.db_url import parse as parse_url

from ..database import busy_message, redact, scrub, translate_errors
from ..errors import DatabaseBusyError, MigrationError
from ..identifiers import q
from .pg_connections import CONNECT_TIMEOUT, open_url
from .sqlite_backup import check_destination, link_without_overwrite

if TYPE_CHECKING:
    from ..target import Target

SUFFIX = ".dump"
# psycopg/peewee keywords that are not libpq connection keywords
NOT_LIBPQ = {
    "prefer_psycopg3",
    "isolation_level",
    "register_unicode",
    "prepare_threshold",
    "encoding",
    "server_side_cursors",
    "autoconnect",
    "autorollback",
}


def backup_name(database: str, when: dt.datetime | None = None) -> Path:
    """`<dbname>.backup-YYYY-MM-DD-HHMMSS.dump` (UTC), in the current folder."""
    when = when or dt.datetime.now(dt.UTC)
    return Path.cwd() / f"{database}.backup-{when:%Y-%m-%d-%H%M%S}{SUFFIX}"


def find_tool(name: str) -> str:
    """`name` on PATH, else the newest Debian/Ubuntu server install's; `MigrationError` if none."""
    found = shutil.which(name)
    if found:
        return found
    installed = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1]
    raise MigrationError(
        f"{name} not found: backing up a PostgreSQL database needs the PostgreSQL client "
        "tools on PATH (Debian/Ubuntu: apt-get install postgresql-client); nothing was changed"
    )


def conninfo(url: str) -> tuple[str, dict[str, str]]:
    """A libpq conninfo string for `url` and the environment that carries its password.

    The password goes through PGPASSWORD so that it never shows in the process list.
    """
    from psycopg.conninfo import make_conninfo

    params = parse_url(url, unquote_password=True, unquote_user=True)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    params["dbname"] = params.pop("database")
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    libpq = {
        key: int(value) if isinstance(value, bool) else value
        for key, value in params.items()
        if key not in NOT_LIBPQ and value is not None
    }
    return make_conninfo("", **libpq), env


def run(args: list[str], env: dict[str, str], what: str) -> str:
    try:
        done = subprocess.run(
            args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise MigrationError(f"cannot run {args[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise MigrationError(f"{what} failed: {detail}")
    return done.stdout


def lock_for_backup(db: peewee.Database) -> None:
    """ACCESS SHARE on every table, as pg_dump takes it, within the transaction's lock_timeout.

    Held until the caller's transaction ends, it keeps DDL away while pg_dump runs, and a
    busy database fails here, with its SQLSTATE, before pg_dump starts.
    """
    tables = [q(t) for t in db.get_tables()]
    if tables:
        db.execute_sql(f"LOCK TABLE {', '.join(tables)} IN ACCESS SHARE MODE")


def lock_conflict(db: peewee.Database) -> bool:
    """Whether another session holds or awaits an ACCESS EXCLUSIVE lock in this database.

    pg_dump, a separate process, reports a lock wait that ran out only in words; this is the
    condition under which its ACCESS SHARE locks can wait at all.
    """
    return db.execute_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'relation'"
        " AND mode = 'AccessExclusiveLock' AND pid <> pg_backend_pid()"
        " AND database = (SELECT oid FROM pg_catalog.pg_database"
        " WHERE datname = current_database()))"
    ).fetchone()[0]


def backup_postgres(
    target: Target, dest: str | os.PathLike | None = None, locked: peewee.Database | None = None
) -> Path:
    """Dump the server database `target` with `pg_dump --format=custom`; return the checked
    file's path.

    `locked`: a connection whose open transaction already holds the migration lock (migrate,
    rollback); otherwise one is opened and takes ACCESS SHARE locks first. The check:
    `pg_restore --list` reads the archive and its table of contents holds the data of every
    table in the database's schema. pg_dump itself reads one snapshot.
    """
    url = target.server_url
    pg_dump, pg_restore = find_tool("pg_dump"), find_tool("pg_restore")
    if locked is not None:
        return dump(url, dest, target.busy_timeout, locked, pg_dump, pg_restore)
    database = open_url(url, target.busy_timeout)
    try:
        with translate_errors(str(target)), database.atomic():  # fails early, with sessionorm's message
            lock_for_backup(database)
            return dump(url, dest, target.busy_timeout, database, pg_dump, pg_restore)
    finally:
        database.close()


def dump(
    url: str,
    dest: str | os.PathLike | None,
    busy_timeout: float,
    database: peewee.Database,
    pg_dump: str,
    pg_restore: str,
) -> Path:
    name, tables = database.database, database.get_tables()
    explicit = dest is not None
    first = Path(dest).expanduser() if dest is not None else backup_name(name)
    check_destination(first, explicit)
    target, env = conninfo(url)
    tmp = first.with_name(f".{first.name}.partial-{os.getpid()}")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        try:
            run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-password",
                    f"--file={tmp}",
                    f"--lock-wait-timeout={max(1, round(busy_timeout * 1000))}",
                    f"--dbname={target}",
                ],
                env,
                f"pg_dump of {redact(url)}",
            )
        except MigrationError as exc:
            if lock_conflict(database):
                raise DatabaseBusyError(busy_message(redact(url))) from None
            raise MigrationError(scrub(str(exc), url)) from None
        check_dump(pg_restore, tmp, tables)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        return link_without_overwrite(tmp, first, explicit, SUFFIX)
    finally:
        tmp.unlink(missing_ok=True)


def check_dump(pg_restore: str, path: Path, tables: list[str]) -> None:
    """Raise `MigrationError` unless `pg_restore` reads the archive and it has every table's data."""
    listing = run([pg_restore, "--list", str(path)], dict(os.environ), "pg_restore --list of the backup")
    dumped = set()
    for line in listing.splitlines():
        if line.startswith(";") or " TABLE DATA " not in line:
            continue
        # `3345; 0 16390 TABLE DATA public sessions owner`
        fields = line.split(" TABLE DATA ", 1)[1].split()
        if len(fields) >= 2:
            dumped.add(fields[1])
    missing = sorted(set(tables) - dumped)
    if missing:
        raise MigrationError(f"backup is missing the data of: {', '.join(missing)}")
