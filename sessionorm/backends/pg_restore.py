"""Restoring a PostgreSQL database from a `pg_dump --format=custom` archive: `pg_restore` into
a new database, checked, then two renames in one transaction.

The live database is not touched until the renames: `<db>` becomes `<db>_replaced_<stamp>`
(the replaced database, kept) and `<db>_restore_<stamp>` becomes `<db>`. PostgreSQL refuses to
rename a database others are connected to, so a restore is refused while another process
(or a pooler's idle server connection) is connected. Any failure drops the new database; one
left by a killed restore is dropped by the next.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import peewee
from playhouse.db_url import parse as parse_url

from ..database import is_in_use, redact, scrub
from ..errors import BackupError, DatabaseBusyError, DatabaseOpenError, MigrationError
from ..identifiers import q
from .base import Progress, Restored
from .pg_backup import conninfo, find_tool, run
from .pg_connections import open_url, statements_alone

if TYPE_CHECKING:
    from ..target import Target

REQUIRED = ("sessions", "migrations")
MAINTENANCE = "postgres"  # the database every server has, for CREATE / ALTER DATABASE
BASE = 30  # characters of the database's name kept in the new names (at most 63 bytes in all)


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(name)))


def archive_tables(pg_restore: str, path: Path) -> set[str]:
    """The tables a `pg_dump` archive holds; `BackupError` unless it is a readable archive of
    sessionorm's (or the orchestrator's) database."""
    if not path.is_file():
        raise BackupError(f"cannot restore from {path}: no such file")
    if not os.access(path, os.R_OK):
        raise BackupError(f"cannot restore from {path}: permission denied")
    try:
        listing = run([pg_restore, "--list", str(path)], dict(os.environ), "pg_restore --list")
    except MigrationError as exc:
        raise BackupError(f"{path} is not a readable pg_dump archive ({exc})") from None
    tables = set()
    for line in listing.splitlines():
        found = re.match(r"^\d+; \d+ \d+ TABLE (?!DATA )\S+ (\S+) ", line)
        if found:
            tables.add(found.group(1))
    missing = [t for t in REQUIRED if t not in tables]
    if missing:
        raise BackupError(
            f"{path} is not a sessionorm or orchestrator database (no {' and no '.join(missing)} table)"
        )
    return tables


def outside_transaction(db: peewee.Database, sql: str) -> None:
    """A statement PostgreSQL refuses inside a transaction block (CREATE / DROP DATABASE)."""
    with statements_alone(db):
        db.execute_sql(sql)


def restore_postgres(target: Target, backup: Path, progress: Progress = None) -> Restored:
    """See the module's docstring."""
    url = target.server_url
    pg_restore = find_tool("pg_restore")
    tables = archive_tables(pg_restore, backup)
    name = str(parse_url(url)["database"])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    fresh = f"{name[:BASE]}_restore_{stamp}_{os.getpid()}"
    try:
        admin = open_url(with_database(url, MAINTENANCE), target.busy_timeout)
    except DatabaseOpenError as exc:
        raise DatabaseOpenError(
            f"restore needs the server's `{MAINTENANCE}` database to create and rename databases, "
            f"and cannot reach it ({exc}); use the server's direct URL (not a pooler's)"
        ) from None
    try:
        refuse_if_connected(admin, name, target)
        drop_leftovers(admin, name)
        outside_transaction(admin, f"CREATE DATABASE {q(fresh)}")
        try:
            if progress:
                progress(f"restore: pg_restore into {fresh}")
            load(pg_restore, backup, with_database(url, fresh))
            counts = check_restored(with_database(url, fresh), tables, target.busy_timeout)
            kept = free_name(admin, f"{name[:BASE]}_replaced_{stamp}")
            swap(admin, name, fresh, kept, target)
        except BaseException:
            drop_quietly(admin, fresh)
            raise
    finally:
        admin.close()
    return Restored(kept=kept, tables=counts)


def connected(admin: peewee.Database, name: str) -> int:
    sql = "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    return admin.execute_sql(sql, (name,)).fetchone()[0]


def in_use_message(target: Target, others: int | None = None) -> str:
    count = f"{others} " if others else ""
    return (
        f"{target}: {count}other connection(s) to the database (another process, or a pooler's "
        "idle server connections): a restore renames the database, which PostgreSQL refuses "
        "while anyone is connected; stop them (or pause the pooler) and retry; nothing was restored"
    )


def refuse_if_connected(admin: peewee.Database, name: str, target: Target) -> None:
    """Refuse before any work while others are connected (the rename would refuse at the end);
    wait up to the busy timeout for them to go (a closed connection's server process exits a
    moment later)."""
    if not admin.execute_sql("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,)).fetchone():
        raise DatabaseOpenError(f"no database {name!r} on the server of {target}")
    deadline = time.monotonic() + target.busy_timeout
    while others := connected(admin, name):
        if time.monotonic() >= deadline:
            raise DatabaseBusyError(in_use_message(target, others))
        time.sleep(0.05)


def drop_leftovers(admin: peewee.Database, name: str) -> None:
    """Drop the new databases of restores killed before they finished (nobody connected)."""
    pattern = re.compile(re.escape(f"{name[:BASE]}_restore_") + r"\d{14}_(\d+)$")
    for (datname,) in admin.execute_sql("SELECT datname FROM pg_catalog.pg_database").fetchall():
        if pattern.match(datname) and not connected(admin, datname):
            drop_quietly(admin, datname)


def drop_quietly(admin: peewee.Database, name: str) -> None:
    try:
        outside_transaction(admin, f"DROP DATABASE IF EXISTS {q(name)}")
    except peewee.DatabaseError:
        pass  # in use (a restore still running): the next restore drops it


def load(pg_restore: str, backup: Path, url: str) -> None:
    """`pg_restore` into the new, empty database, in one transaction, stopping at any error."""
    info, env = conninfo(url)
    try:
        run(
            [
                pg_restore,
                "--no-password",
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                "--no-privileges",
                f"--dbname={info}",
                str(backup),
            ],
            env,
            f"pg_restore of {backup}",
        )
    except MigrationError as exc:
        raise MigrationError(scrub(str(exc), url) + "; the live database was not touched") from None


def check_restored(url: str, tables: set[str], busy_timeout: float) -> dict[str, int]:
    """The new database holds every table of the archive, and PostgreSQL's checks pass."""
    from .postgresql import PostgresBackend

    db = open_url(url, busy_timeout)
    try:
        backend = PostgresBackend(db)
        present = set(db.get_tables())
        missing = sorted(tables - present)
        if missing:
            raise BackupError(
                f"the restored database lacks {', '.join(missing)}; the live database was not touched"
            )
        problems = backend.integrity_problems()
        if problems:
            raise BackupError(f"the restored database fails its checks: {problems[0]}", problems)
        return backend.catalog.count_rows()
    finally:
        db.close()


def free_name(admin: peewee.Database, first: str) -> str:
    """`first`, or `first_2`, `first_3`, … : the first name no database has."""
    taken = {r[0] for r in admin.execute_sql("SELECT datname FROM pg_catalog.pg_database").fetchall()}
    name, n = first, 2
    while name in taken:
        name, n = f"{first}_{n}", n + 1
    return name


def swap(admin: peewee.Database, name: str, fresh: str, kept: str, target: Target) -> None:
    """The live database to `kept` and the new one to `name`, in one transaction."""
    try:
        with admin.atomic():
            admin.execute_sql(f"ALTER DATABASE {q(name)} RENAME TO {q(kept)}")
            admin.execute_sql(f"ALTER DATABASE {q(fresh)} RENAME TO {q(name)}")
    except peewee.DatabaseError as exc:
        if is_in_use(exc):
            raise DatabaseBusyError(in_use_message(target)) from None
        raise MigrationError(f"renaming {redact(name)} failed: {exc}") from None
