"""Shared fixtures: real SQLite files in tmp_path, never mocks; `backend`, a fresh database on
SQLite, PostgreSQL and PostgreSQL behind pgbouncer (helpers in pg_support.py)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from legacy import make_legacy_db
from pg_support import Backend, fresh_backend

from sessionorm import SessionStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's database lives (not created yet)."""
    return tmp_path / "sessions.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SessionStore]:
    """A store on a brand-new database, closed afterwards."""
    with SessionStore(db_path) as opened:
        yield opened


@pytest.fixture
def session(store: SessionStore):
    """One session in `store`."""
    return store.create_session(name="Fix the login bug", amp_prompt="Fix it", repo_root="/tmp/repo")


@pytest.fixture
def thread_id(store: SessionStore, session) -> str:
    """One empty thread of `session`."""
    return store.create_thread(session.id, "Feature Discussion").id


@pytest.fixture(params=["sqlite", "postgresql", "pgbouncer"])
def backend(request, tmp_path: Path, monkeypatch) -> Iterator[Backend]:
    """A fresh empty database per test, on each backend; backups land in tmp_path (the working
    folder). The PostgreSQL cases skip without `$SESSIONORM_TEST_PG_URL` (see pg_support.py)."""
    with fresh_backend(request.param, tmp_path, monkeypatch) as database:
        yield database


@pytest.fixture
def legacy_db(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `legacy_db(n=10, flavor="pre", name="legacy.db", **options)` -> path.

    Options are those of `legacy.make_legacy_db` (threaded, duplicates, iterations, wal, seed).
    """

    def build(n: int = 10, flavor: str = "pre", name: str = "legacy.db", **options) -> Path:
        return make_legacy_db(tmp_path / name, n, flavor=flavor, **options)

    return build


def dump_database(path: str | Path) -> list[str]:
    """Every row and schema object of a SQLite file, as SQL text (reads the -wal file too).

    Reads through SQLite's locking (`mode=rw`, `query_only`), never `immutable=1`: the last
    connection to close removes the -wal/-shm files it created, and nothing is written.
    """
    con = sqlite3.connect(f"file:{Path(path).resolve()}?mode=rw", uri=True)
    try:
        con.execute("PRAGMA query_only = 1")
        return list(con.iterdump())
    finally:
        con.close()


@pytest.fixture
def dump() -> Callable[[str | Path], list[str]]:
    """`dump(path)`: the database's content as SQL text, to compare before and after."""
    return dump_database


@pytest.fixture
def file_digest() -> Callable[[str | Path], str]:
    """`file_digest(path)`: sha256 of the file's bytes."""
    return lambda path: hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def sql_log() -> Iterator[Callable[[SessionStore], list[str]]]:
    """`sql_log(store)`: a list that receives every statement the store's connection runs.

    Statements come with their parameters bound (sqlite3's expanded SQL), so they can be
    fed to EXPLAIN QUERY PLAN as they are.
    """
    traced: list[sqlite3.Connection] = []

    def start(opened: SessionStore) -> list[str]:
        statements: list[str] = []
        connection = opened.db.connection()
        connection.set_trace_callback(statements.append)
        traced.append(connection)
        return statements

    yield start
    for connection in traced:
        try:
            connection.set_trace_callback(None)
        except sqlite3.ProgrammingError:  # already closed
            pass
