"""PostgreSQL test support shared by the suites (plain helpers; the `backend` fixture is in
conftest.py).

`pg_database(via)` hands out a fresh database on the server named by `$SESSIONORM_TEST_PG_URL`
(its user needs CREATEDB), reached directly ("postgresql") or through the pgbouncer at
`$SESSIONORM_TEST_PGBOUNCER_URL` ("pgbouncer"), and drops it afterwards. Without a variable
the test skips, saying why; with `$CI` set as well, a server that does not answer fails it.
Every database gets a random name, so parallel workers (pytest-xdist) never share one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessionorm import SessionStore

PG_URL_VAR = "SESSIONORM_TEST_PG_URL"
PGBOUNCER_URL_VAR = "SESSIONORM_TEST_PGBOUNCER_URL"

# The orchestrator's `pre` layout of sessions, and a child table that references it without
# ON DELETE CASCADE: SQLite's DDL as the TypeScript tool wrote it, and PostgreSQL's with the
# camelCase names quoted (unquoted, PostgreSQL would fold them to lower case).
LEGACY_DDL = {
    "sqlite": """
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, ampPrompt TEXT NOT NULL, followUpPrompts TEXT,
  repoRoot TEXT NOT NULL, baseBranch TEXT NOT NULL, branchName TEXT NOT NULL,
  worktreePath TEXT NOT NULL, status TEXT NOT NULL, scriptCommand TEXT, modelOverride TEXT,
  threadId TEXT, createdAt TEXT NOT NULL, lastRun TEXT, notes TEXT);
ALTER TABLE sessions ADD COLUMN contextIncluded BOOLEAN;
CREATE TABLE iterations (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, startTime TEXT NOT NULL,
  FOREIGN KEY(sessionId) REFERENCES sessions(id));
""",
    "postgresql": """
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, "ampPrompt" TEXT NOT NULL, "followUpPrompts" TEXT,
  "repoRoot" TEXT NOT NULL, "baseBranch" TEXT NOT NULL, "branchName" TEXT NOT NULL,
  "worktreePath" TEXT NOT NULL, status TEXT NOT NULL, "scriptCommand" TEXT,
  "modelOverride" TEXT, "threadId" TEXT, "createdAt" TEXT NOT NULL, "lastRun" TEXT, notes TEXT);
ALTER TABLE sessions ADD COLUMN "contextIncluded" BOOLEAN;
CREATE TABLE iterations (
  id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL, "startTime" TEXT NOT NULL,
  FOREIGN KEY("sessionId") REFERENCES sessions(id));
""",
}
SESSION_COLUMNS = (
    "id",
    "name",
    "ampPrompt",
    "followUpPrompts",
    "repoRoot",
    "baseBranch",
    "branchName",
    "worktreePath",
    "status",
    "scriptCommand",
    "modelOverride",
    "threadId",
    "createdAt",
    "lastRun",
    "notes",
    "contextIncluded",
)


def legacy_rows(n: int = 12) -> list[tuple]:
    """Deterministic legacy sessions: i % 4 == 0 no threadId (NULL), 1 empty, else a threadId;
    sessions 2 and 6 share one."""
    rows = []
    for i in range(n):
        thread_id = None if i % 4 == 0 else "" if i % 4 == 1 else f"T-{i:03d}"
        if i == 6:
            thread_id = "T-002"
        created = f"2025-08-01T00:{i:02d}:00.{i:03d}Z"
        rows.append(
            (
                str(uuid.UUID(int=i + 1, version=4)),
                f"Session {i:03d}",
                f"Do task {i}",
                None,
                f"/src/repo-{i % 3}",
                "main",
                f"amp/session-{i:03d}",
                f"/src/repo-{i % 3}/.worktrees/{i}",
                "idle",
                None,
                None,
                thread_id,
                created,
                None,
                None,
                bool(i % 2),
            )
        )
    return rows


# -- fresh databases -------------------------------------------------------------------------


@dataclass
class Backend:
    """One fresh database: how to open it, address it on the command line and look into it."""

    name: str
    target: str  # the file path (sqlite) or the URL sessionorm uses (postgresql, pgbouncer)
    direct: str = ""  # PostgreSQL: the database's URL on the server itself, for inspection

    @property
    def is_pg(self) -> bool:
        return self.name in ("postgresql", "pgbouncer")

    @property
    def cli_args(self) -> list[str]:
        return ["--db-url", self.target] if self.is_pg else ["--db-path", self.target]

    def store(self, **options) -> SessionStore:
        if self.is_pg:
            return SessionStore(url=self.target, **options)
        return SessionStore(self.target, **options)

    @contextlib.contextmanager
    def connect(self) -> Iterator:
        """A plain autocommit driver connection (sqlite3 or psycopg)."""
        if self.is_pg:
            import psycopg

            con = psycopg.connect(self.direct, autocommit=True)
        else:
            con = sqlite3.connect(self.target, isolation_level=None)
            con.execute("PRAGMA foreign_keys = ON")
        try:
            yield con
        finally:
            con.close()

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.is_pg else text

    def query(self, text: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as con:
            return [tuple(r) for r in con.execute(self.sql(text), params).fetchall()]

    def execute(self, text: str, params: tuple = ()) -> None:
        with self.connect() as con:
            con.execute(self.sql(text), params)

    def tables(self) -> set[str]:
        if self.is_pg:
            return {
                r[0]
                for r in self.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            }
        return {
            r[0]
            for r in self.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }

    def load_legacy(self, rows: list[tuple]) -> None:
        """The `pre` legacy layout holding `rows` (see `legacy_rows`)."""
        with self.connect() as con:
            if self.is_pg:
                con.execute(LEGACY_DDL["postgresql"])
            else:
                con.executescript(LEGACY_DDL["sqlite"])
            columns = ", ".join(f'"{c}"' for c in SESSION_COLUMNS)
            marks = ", ".join(["?"] * len(SESSION_COLUMNS))
            for row in rows:
                con.execute(self.sql(f"INSERT INTO sessions ({columns}) VALUES ({marks})"), row)

    def snapshot(self) -> dict[str, object]:
        """Every table's name and rows, to compare before and after."""
        return {t: sorted(map(repr, self.query(f'SELECT * FROM "{t}"'))) for t in sorted(self.tables())}


def pg_server_url(var: str = PG_URL_VAR) -> str:
    """The server URL in `$var`, or skip (fail under CI) when it is missing or does not answer."""
    url = os.environ.get(var)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need ${var} (a server URL whose user may CREATE "
            "DATABASE, or the pgbouncer in front of it); .ci/run starts both and sets them"
        )
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=5, prepare_threshold=None) as con:
            con.execute("SELECT 1")
    except Exception as exc:  # no driver, no server, bad credentials: all mean "cannot test"
        message = f"PostgreSQL at ${var} does not answer: {type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI set the URL, so the PostgreSQL tests must run)")
        pytest.skip(message)
    return url


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def pg_database(via: str) -> Iterator[Backend]:
    """A fresh database on the test server, reached `via` "postgresql" or "pgbouncer"; dropped after."""
    import psycopg

    server = pg_server_url()
    front = pg_server_url(PGBOUNCER_URL_VAR) if via == "pgbouncer" else server
    name = f"sessionorm_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Backend(via, with_database(front, name), with_database(server, name))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_backend(name: str, tmp_path: Path, monkeypatch) -> Iterator[Backend]:
    """A fresh empty database on backend `name` ("sqlite", "postgresql" or "pgbouncer"), with
    the working folder (where backups land) in tmp_path and no database variables set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESSIONORM_DB_URL", raising=False)
    monkeypatch.delenv("AMPSM_DB_PATH", raising=False)
    if name == "sqlite":
        yield Backend("sqlite", str(tmp_path / "sessions.db"))
        return
    with pg_database(name) as database:
        yield database


# -- many writers at once -------------------------------------------------------------------


def appenders_never_collide(db: Backend, thread_id: str, append, writers: int, each: int) -> None:
    """`writers` spawned processes run `append(db, thread_id, writer, barrier, errors)` at once,
    each appending `each` messages "<writer>:<n>": none fails, idx runs 0.. without a gap or a
    duplicate, and each process's messages keep its order."""
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(writers), context.Queue()
    workers = [
        context.Process(target=append, args=(db, thread_id, w, barrier, errors)) for w in range(writers)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == []
    assert [w.exitcode for w in workers] == [0] * writers
    rows = db.query(
        'SELECT idx, content FROM thread_messages WHERE "threadId" = ? ORDER BY idx', (thread_id,)
    )
    assert [idx for idx, _ in rows] == list(range(writers * each))
    for writer in range(writers):
        mine = [int(c.split(":")[1]) for _, c in rows if c.startswith(f"{writer}:")]
        assert mine == list(range(each))
