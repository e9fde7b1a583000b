"""`sessionorm restore`: a whole database replaced by a checked backup, atomically, the replaced
one kept; refused while another process writes (SQLite) or is connected (PostgreSQL); a kill
half-way leaves the old database; bad backups refused with nothing changed. On SQLite,
PostgreSQL and pgbouncer (the `backend` fixture); real processes for the lock and the kill.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import REPO_ROOT, one_error_line, run_module
from pg_support import Backend, with_database

from sessionorm import BackupError, DatabaseBusyError, MigrationError, SessionStore, backup, restore


def seed(db: Backend, sessions: int = 3, messages: int = 4, word: str = "restoreword") -> None:
    with db.store() as store:
        for i in range(sessions):
            session = store.create_session(name=f"{word} {i}", amp_prompt="p", repo_root="/r")
            thread = store.create_thread(session.id, f"thread {i}")
            store.add_thread_messages(thread, [("user", f"{word} {i}:{m}") for m in range(messages)])


def state(db: Backend) -> object:
    """SQLite: the file's bytes; PostgreSQL: every table's rows."""
    if db.is_pg:
        return db.snapshot()
    return hashlib.sha256(Path(db.target).read_bytes()).hexdigest()


def databases(db: Backend) -> set[str]:
    """PostgreSQL: the names of the server's databases that start with this test's (its first 30
    characters: what the names a restore makes keep of it)."""
    prefix = db.direct.rsplit("/", 1)[1][:30]
    with psycopg_admin(db) as con:
        return {r[0] for r in con.execute("SELECT datname FROM pg_database") if r[0].startswith(prefix)}


def psycopg_admin(db: Backend):
    import psycopg

    return psycopg.connect(with_database(db.direct, "postgres"), autocommit=True)


def drop(db: Backend, name: str) -> None:
    with psycopg_admin(db) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows_of(target: str, is_pg: bool) -> object:
    """Every table's rows of a database given by path or direct URL (the kept one)."""
    return Backend("postgresql" if is_pg else "sqlite", target, target).snapshot()


@pytest.fixture
def pooled(backend: Backend) -> Iterator[bool]:
    """Whether the database is reached through pgbouncer, whose pool keeps server connections
    to it: every restore is refused (PostgreSQL does not rename a database others are
    connected to). Afterwards the databases the test's restores made are dropped (kept ones,
    or those a failed test left)."""
    yield backend.name == "pgbouncer"
    if backend.is_pg:
        for name in databases(backend) - {backend.direct.rsplit("/", 1)[1]}:
            drop(backend, name)


def test_restore_brings_back_the_backup_and_keeps_the_replaced_database(backend, pooled, tmp_path):
    seed(backend)
    saved = backup(backend.target)
    at_backup = backend.snapshot()
    with backend.store() as store:
        store.delete_session(store.list_sessions()[0].id)
        store.create_session(name="after the backup", amp_prompt="p", repo_root="/r")
    before = backend.snapshot()
    done = run_module("restore", saved, *backend.cli_args, "--json", cwd=tmp_path)
    if pooled:
        assert done.returncode == 2
        assert "other connection(s) to the database" in json.loads(done.stdout)["error"]
        assert backend.snapshot() == before
        return
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert backend.snapshot() == at_backup
    assert report["pending"] == [] and report["tables"]["sessions"] == 3
    kept = report["kept"]
    if backend.is_pg:
        assert kept.endswith(tuple("0123456789")) and "_replaced_" in kept
        try:
            assert rows_of(with_database(backend.direct, kept), True) == before
        finally:
            drop(backend, kept)
        assert databases(backend) == {backend.direct.rsplit("/", 1)[1]}  # no new database left
    else:
        assert Path(kept).name.startswith("sessions.db.backup-")
        assert rows_of(kept, False) == before
    with backend.store(readonly=True) as store:  # the search index came back with the rows
        hits = store.search("restoreword", limit=100)
        assert len(hits) == 12
        assert "after the backup" not in [s.name for s in store.list_sessions()]


def test_a_connection_opened_before_the_restore_reads_the_restored_rows_and_keeps_writing(tmp_path):
    db = Backend("sqlite", str(tmp_path / "live.db"))
    seed(db, sessions=2)
    saved = backup(db.target)
    seed(db, sessions=5, word="later")
    early = sqlite3.connect(db.target, isolation_level=None)
    early.execute("PRAGMA foreign_keys = ON")
    assert early.execute("SELECT count(*) FROM sessions").fetchone() == (7,)
    report = restore(saved, db.target)
    assert report.kept and Path(report.kept).is_file()
    assert early.execute("SELECT count(*) FROM sessions").fetchone() == (2,)
    early.execute(
        "INSERT INTO sessions (id, name, ampPrompt, repoRoot, baseBranch, branchName, worktreePath,"
        " status, createdAt) VALUES ('s-new', 'new', 'p', '/r', 'main', 'b', '/w', 'idle', '2026-01-01')"
    )
    early.execute(
        "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt)"
        " VALUES ('T-new', 's-new', 't', 'c', 'u')"
    )
    early.execute(
        "INSERT INTO thread_messages (id, threadId, idx, role, content, createdAt)"
        " VALUES ('m-new', 'T-new', 0, 'user', 'written after the restore', 'c')"
    )
    early.close()
    with sqlite3.connect(db.target) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        con.execute("INSERT INTO sessionorm_search(sessionorm_search) VALUES ('integrity-check')")
    with SessionStore(db.target, readonly=True) as store:
        assert [h.message.id for h in store.search("written after the restore")] == ["m-new"]
        assert store.search("later") == []
        assert len(store.search("restoreword", limit=100)) == 8


HOLD_SQLITE_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(120)
"""
HOLD_PG_CONNECTION = """
import psycopg, sys, time
con = psycopg.connect(sys.argv[1])
con.execute("SELECT count(*) FROM sessions")  # a transaction left open
print("locked", flush=True)
time.sleep(120)
"""


def test_a_restore_while_another_process_holds_the_write_lock_is_refused_and_changes_nothing(
    backend, tmp_path
):
    seed(backend)
    saved = backup(backend.target)
    seed(backend, sessions=1, word="newer")
    before = state(backend)
    script, where = (
        (HOLD_PG_CONNECTION, backend.direct) if backend.is_pg else (HOLD_SQLITE_LOCK, backend.target)
    )
    holder = subprocess.Popen([sys.executable, "-c", script, where], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = run_module("restore", saved, *backend.cli_args, "--busy-timeout", "1", cwd=tmp_path)
        assert done.returncode == 2
        line = one_error_line(done.stderr)
        if backend.is_pg:
            assert "other connection(s) to the database" in line and "nothing was restored" in line
        else:
            assert "another process is writing" in line and "nothing was restored" in line
        with pytest.raises(DatabaseBusyError):
            restore(saved, backend.target, busy_timeout=0.2)
    finally:
        holder.kill()
        holder.wait()
    assert state(backend) == before
    if backend.is_pg:
        assert databases(backend) == {backend.direct.rsplit("/", 1)[1]}
    else:
        assert sorted(p.name for p in tmp_path.iterdir() if ".backup-" in p.name) == [saved.name]


def big_sqlite(path: Path, sessions: int, messages: int) -> None:
    """A migrated file with `sessions` sessions of `messages` messages each, written in bulk."""
    db = Backend("sqlite", str(path))
    seed(db, sessions=1, messages=1)
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO sessions (id, name, ampPrompt, repoRoot, baseBranch, branchName, worktreePath,"
            " status, createdAt) SELECT 's' || i, 'bulk ' || i, 'p', '/r', 'main', 'b', '/w', 'idle',"
            " '2026-01-01T00:00:00.000Z' FROM n",
            (sessions,),
        )
        con.execute(
            "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt)"
            " SELECT 'T-' || id, id, 'bulk', createdAt, createdAt FROM sessions WHERE id LIKE 's%'"
        )
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO thread_messages (id, threadId, idx, role, content, createdAt)"
            " SELECT t.id || ':' || i, t.id, i, 'user', 'bulk message ' || i || ' ' || hex(randomblob(60)),"
            " '2026-01-01T00:00:00.000Z' FROM threads t, n WHERE t.name = 'bulk'",
            (messages - 1,),
        )


def fingerprint(path: Path) -> tuple[str, list]:
    """integrity_check, then a hash of every row of sessions, threads and messages."""
    digest = hashlib.sha256()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        check = con.execute("PRAGMA integrity_check").fetchall()
        for table in ("sessions", "threads", "thread_messages"):
            for row in con.execute(f"SELECT * FROM {table} ORDER BY rowid"):
                digest.update(repr(row).encode())
    return digest.hexdigest(), check


def test_sigkill_during_a_sqlite_restore_leaves_the_old_database_intact(tmp_path):
    live = tmp_path / "live.db"
    big_sqlite(live, sessions=100, messages=1000)  # 100,000 messages
    saved = backup(live)
    with contextlib.closing(sqlite3.connect(live)) as con, con:  # now it differs from the backup
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("DELETE FROM sessions WHERE id IN ('s1', 's2', 's3')")
    before = fingerprint(live)
    assert before[1] == [("ok",)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "sessionorm", "restore", saved, "--db-path", live],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wal = Path(f"{live}-wal")
    deadline = time.monotonic() + 120
    try:
        # killed while it copies rows: the replaced content is kept, and the WAL is growing
        while not (
            [p for p in tmp_path.iterdir() if p.name.startswith("live.db.backup-") and p != saved]
            and wal.exists()
            and wal.stat().st_size > 4 * 2**20
        ):
            assert worker.poll() is None, "the restore finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert fingerprint(live) == before
    report = restore(saved, live)  # and a restore afterwards works
    assert report.tables["thread_messages"] == 100_001
    assert fingerprint(live) != before and fingerprint(live)[1] == [("ok",)]


def test_sigkill_during_pg_restore_leaves_the_live_database_intact(backend, pooled, tmp_path):
    if not backend.is_pg or pooled:
        pytest.skip(
            "PostgreSQL directly: SQLite has its own test; through pgbouncer every restore is refused"
        )
    seed(backend, sessions=1, messages=1)
    with backend.connect() as con:  # 60,000 sessions, each with a thread of 3 messages
        con.execute(
            'INSERT INTO sessions (id, name, "ampPrompt", "repoRoot", "baseBranch", "branchName",'
            " \"worktreePath\", status, \"createdAt\") SELECT 's' || i, 'bulk', 'p', '/r', 'main',"
            " 'b', '/w', 'idle', '2026-01-01T00:00:00.000Z' FROM generate_series(1, 60000) i"
        )
        con.execute(
            'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt")'
            " SELECT 'T-' || id, id, 'bulk', 'c', 'u' FROM sessions WHERE name = 'bulk'"
        )
        con.execute(
            'INSERT INTO thread_messages (id, "threadId", idx, role, content, "createdAt")'
            " SELECT t.id || ':' || i, t.id, i, 'user', 'bulk message ' || md5(t.id || i), 'c'"
            " FROM threads t, generate_series(0, 2) i WHERE t.name = 'bulk'"
        )
    saved = backup(backend.target)
    backend.execute("DELETE FROM sessions WHERE id LIKE ?", ("s1%",))
    before = backend.snapshot()
    name = backend.direct.rsplit("/", 1)[1]
    worker = subprocess.Popen(
        [sys.executable, "-m", "sessionorm", "restore", saved, "--db-url", backend.target],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its pg_restore is killed with it
    )
    deadline = time.monotonic() + 120
    try:
        while not running_pg_restore(worker.pid):  # killed while pg_restore loads the new database
            assert worker.poll() is None, "the restore finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert [d for d in databases(backend) if "_restore_" in d]  # the half-built one, left
    assert backend.snapshot() == before
    report = restore(saved, backend.target)  # the leftover database is dropped
    try:
        assert backend.query("SELECT count(*) FROM sessions") == [(60_001,)]
        assert backend.query("SELECT count(*) FROM thread_messages") == [(180_001,)]
        assert databases(backend) == {name, report.kept}
    finally:
        drop(backend, str(report.kept))


def running_pg_restore(pid: int) -> bool:
    """Whether process `pid` has a pg_restore child loading a database (not `--list`)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if args[0].rsplit(b"/", 1)[-1] == b"pg_restore" and b"--single-transaction" in args:
                return True
    return False


def damaged_sqlite(path: Path) -> Path:
    """A migrated file with a page of its messages' table overwritten."""
    big_sqlite(path, sessions=5, messages=200)
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode = delete")
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'thread_messages'").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * size + 8)
        fh.write(b"\xff" * 64)
    return path


def other_program_backup(db: Backend, tmp_path: Path) -> Path:
    """A healthy database of another program (no sessions, no migrations table)."""
    if not db.is_pg:
        path = tmp_path / "other.db"
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        return path
    import uuid

    name = f"sessionorm_other_{uuid.uuid4().hex[:12]}"
    with psycopg_admin(db) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(db.direct, name)
        Backend("postgresql", url, url).execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        path = tmp_path / "other.dump"
        subprocess.run(["pg_dump", "--format=custom", f"--file={path}", url], check=True)
    finally:
        drop(db, name)
    return path


def truncated_dump(db: Backend, tmp_path: Path) -> Path:
    """A real archive of this database cut short: its table of contents reads, its data does not."""
    seed(db, sessions=30, messages=30)
    whole = backup(db.target)
    data = whole.read_bytes()
    cut = tmp_path / "cut.dump"
    cut.write_bytes(data[: len(data) * 3 // 4])
    return cut


@pytest.mark.parametrize("kind", ["missing", "text", "damaged", "another program's"])
def test_a_bad_backup_is_refused_with_a_clear_message_and_nothing_changes(backend, pooled, tmp_path, kind):
    seed(backend)
    bad = {
        "missing": lambda: tmp_path / "no-such-backup",
        "text": lambda: (tmp_path / "notes.txt", (tmp_path / "notes.txt").write_text("hello\n" * 200))[0],
        "damaged": lambda: (
            truncated_dump(backend, tmp_path) if backend.is_pg else damaged_sqlite(tmp_path / "d.db")
        ),
        "another program's": lambda: other_program_backup(backend, tmp_path),
    }[kind]()
    expected = {
        "missing": "no such file" if backend.is_pg else "no database at",
        "text": "not a readable pg_dump archive" if backend.is_pg else "not a SQLite database",
        "damaged": "pg_restore of" if backend.is_pg else "integrity",
        "another program's": "not a sessionorm or orchestrator database (no sessions and no migrations",
    }[kind]
    before = state(backend)
    leftovers = set(tmp_path.iterdir())
    done = run_module("restore", bad, *backend.cli_args, cwd=tmp_path)
    if backend.name == "pgbouncer" and kind == "damaged":
        expected = "other connection(s)"  # refused before pg_restore runs
    assert done.returncode == 2
    assert expected in one_error_line(done.stderr)
    assert state(backend) == before
    assert set(tmp_path.iterdir()) == leftovers  # no kept copy, no temporary file
    if backend.is_pg:
        assert databases(backend) == {backend.direct.rsplit("/", 1)[1]}
    refused = BackupError
    if kind == "damaged" and backend.is_pg:  # pg_restore fails; pgbouncer's pool: refused before
        refused = DatabaseBusyError if backend.name == "pgbouncer" else MigrationError
    with pytest.raises(refused):
        restore(bad, backend.target)


def test_the_database_itself_is_no_backup_of_it(tmp_path, file_digest):
    db = Backend("sqlite", str(tmp_path / "live.db"))
    seed(db)
    before = file_digest(db.target)
    done = run_module("restore", db.target, "--db-path", db.target, cwd=tmp_path)
    assert done.returncode == 2
    assert "is the database itself" in one_error_line(done.stderr)
    assert file_digest(db.target) == before


def test_a_backup_from_before_a_migration_is_restored_and_the_pending_migration_named(tmp_path):
    db = Backend("sqlite", str(tmp_path / "live.db"))
    seed(db)
    saved = backup(db.target)
    with sqlite3.connect(saved) as con:  # as if the backup predated migration 7
        con.execute("DELETE FROM migrations WHERE version = 7")
    done = run_module("restore", saved, "--db-path", db.target, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        "note: the backup predates 1 migration(s) (0007_message_search); run `sessionorm migrate`"
        in done.stdout
    )
    assert db.query("SELECT max(version) FROM migrations") == [(6,)]
