"""Driver errors are classified by code (`sqlite_errorname`, psycopg's `sqlstate`), never by text.

Every error here is a real one from a real driver. On PostgreSQL the database is set to
report its messages in German (`lc_messages`), when the server machine has that locale
(`.ci/run` generates it): a classifier reading English text would miss every one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest
from cli_support import one_error_line, run_module
from pg_support import Backend, pg_database

from sessionorm import DatabaseBusyError, DatabaseOpenError, SessionStore, commands
from sessionorm.backends.sqlite_files import open_sqlite
from sessionorm.database import is_busy, sqlite_code, translate_errors

GERMAN = "de_DE.UTF-8"


def raised(call) -> BaseException:
    try:
        call()
    except BaseException as exc:  # the test looks at it
        return exc
    raise AssertionError("no error was raised")


# -- SQLite ------------------------------------------------------------------------------------


def test_sqlite_busy_is_classified_by_its_code(tmp_path: Path):
    path = tmp_path / "busy.db"
    SessionStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        db = open_sqlite(path, busy_timeout=0.05)
        error = raised(lambda: db.execute_sql("BEGIN IMMEDIATE"))
        assert sqlite_code(error) == "SQLITE_BUSY" and is_busy(error)
        assert isinstance(raised(lambda: _translated(path, db, "BEGIN IMMEDIATE")), DatabaseBusyError)
        db.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _translated(where: object, db: peewee.Database, sql: str) -> None:
    with translate_errors(where):
        db.execute_sql(sql)


def test_sqlite_not_a_database_and_constraint_errors_by_code(tmp_path: Path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 300)
    error = raised(lambda: sqlite3.connect(junk).execute("SELECT * FROM sqlite_master").fetchall())
    assert sqlite_code(error) == "SQLITE_NOTADB" and not is_busy(error)
    with pytest.raises(DatabaseOpenError, match="is not a SQLite database"):
        commands.status(junk)
    with SessionStore(tmp_path / "ok.db") as store:
        session = store.create_session(name="n", amp_prompt="p", repo_root="/r")
        error = raised(
            lambda: store.db.execute_sql("INSERT INTO sessions (id, name) VALUES (?, 'x')", (session.id,))
        )
        assert sqlite_code(error).startswith("SQLITE_CONSTRAINT") and not is_busy(error)


# -- PostgreSQL, in German ---------------------------------------------------------------------


@pytest.fixture
def german() -> Iterator[Backend]:
    """A fresh database whose every session reports errors in German."""
    import psycopg

    with pg_database("postgresql") as database:
        with psycopg.connect(database.direct, autocommit=True) as admin:
            try:
                admin.execute(f"ALTER DATABASE {admin.info.dbname} SET lc_messages = '{GERMAN}'")
            except psycopg.errors.InvalidParameterValue:
                if __import__("os").environ.get("CI"):
                    raise  # .ci/run generates the locale: it must be there
                pytest.skip(f"the server machine has no {GERMAN} locale (localedef -i de_DE -f UTF-8)")
        yield database


def test_the_server_really_speaks_german(german):
    import psycopg

    with psycopg.connect(german.direct) as con:
        error = raised(lambda: con.execute("SELECT * FROM no_such_table"))
    assert "existiert nicht" in str(error) and "does not exist" not in str(error)


def test_postgresql_errors_in_german_are_classified_by_sqlstate(german):
    import psycopg

    with german.store() as store:
        session = store.create_session(name="n", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session.id, "t").id
    with psycopg.connect(german.direct) as holder:
        holder.execute("SELECT id FROM threads WHERE id = %s FOR UPDATE", (thread,))
        with german.store(busy_timeout=0.2) as store:
            error = raised(
                lambda: store.db.execute_sql("SELECT id FROM threads WHERE id = %s FOR UPDATE", (thread,))
            )
            assert error.orig.sqlstate == "55P03" and is_busy(error)
            assert "lock timeout" not in str(error)  # German text, same code
            with pytest.raises(DatabaseBusyError, match="database is busy"):
                store.add_thread_message(thread, "user", "waits for the held row")
        holder.rollback()
    with psycopg.connect(german.direct) as con:
        con.execute("SET statement_timeout = 50")
        cancelled = raised(lambda: con.execute("SELECT pg_sleep(1)"))
        assert cancelled.sqlstate == "57014" and is_busy(cancelled)
        con.rollback()
        unique = raised(lambda: con.execute("INSERT INTO sessions SELECT * FROM sessions"))
        assert unique.sqlstate == "23505" and not is_busy(unique)


def test_the_cli_says_busy_in_one_line_when_the_server_speaks_german(german, tmp_path):
    """End to end: `migrate` behind a held lock on a database whose messages are German."""
    import psycopg

    commands.migrate(german.target)
    before = german.snapshot()
    with psycopg.connect(german.direct) as holder:
        holder.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        done = run_module("rollback", "--db-url", german.target, "--busy-timeout", "0.3", cwd=tmp_path)
        holder.rollback()
    assert done.returncode == 2
    assert "database is busy" in one_error_line(done.stderr), done.stderr
    assert german.snapshot() == before  # nothing rolled back
    assert sorted(tmp_path.glob("*.dump*")) == []  # and no backup taken (in the command's working folder)
