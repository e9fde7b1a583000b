"""Files that must not change do not: a store refusing another program's file, a backfill with
nothing to do, and the leftovers of a SIGKILLed dry run (removed by the next one)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from legacy import make_legacy_db
from test_cli_contract import sessionorm

from sessionorm import MigrationError, SessionStore, backfill, status, verify
from sessionorm.backends.sqlite_files import open_sqlite


def files(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.parent.iterdir())}


def journal_mode(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()


def test_a_store_with_migrate_refuses_another_programs_file_before_switching_it_to_wal(tmp_path: Path):
    db = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT, threadId TEXT);"
        "CREATE TABLE threads (id INTEGER PRIMARY KEY, title TEXT);"  # not the orchestrator's
        "INSERT INTO threads (title) VALUES ('theirs');"
    )
    con.close()
    before = files(db)
    with pytest.raises(MigrationError, match="refusing to adopt the existing threads"):
        SessionStore(db, migrate=True)
    assert files(db) == before and journal_mode(db) == "delete"


def test_a_backfill_with_nothing_to_do_keeps_a_rollback_journal_file_as_it_was(tmp_path: Path):
    db = make_legacy_db(tmp_path / "legacy.sqlite", 10)
    assert sessionorm("migrate", "--db-path", db).returncode == 0
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    con.close()
    before = files(db)
    result = backfill(db)
    assert result.migrated == 0
    assert files(db) == before and journal_mode(db) == "delete"


def test_the_next_dry_run_removes_a_killed_dry_runs_copy(tmp_path: Path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read $TMPDIR again
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead, alive = int(gone.stdout), os.getpid()
    stale = scratch / f"sessionorm-dry-run-{dead}-abc123"
    busy = scratch / f"sessionorm-dry-run-{alive}-def456"
    for folder in (stale, busy):
        folder.mkdir()
        (folder / "legacy.sqlite").write_bytes(b"x" * 1000)
    db = make_legacy_db(tmp_path / "legacy.sqlite", 10)
    done = sessionorm("migrate", "--dry-run", "--db-path", db, env={"TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr
    assert not stale.exists()  # its process is gone
    assert busy.exists()  # a dry run still running keeps its copy
    assert sorted(p.name for p in scratch.iterdir()) == [busy.name]  # and this run removed its own


def test_backfill_refuses_a_read_only_file_before_reading_it(tmp_path: Path):
    db = tmp_path / "ro.sqlite"
    SessionStore(db).close()  # WAL mode: a read would leave -wal and -shm behind
    db.chmod(0o444)
    before = files(db)
    done = sessionorm("backfill", "--db-path", db)
    assert done.returncode == 2 and "is read-only" in done.stderr, done.stderr
    assert files(db) == before


@pytest.fixture
def read_only_wal(tmp_path: Path) -> Path:
    """A migrated WAL file with rows, mode 0444, without -wal or -shm."""
    db = tmp_path / "ro.sqlite"
    with SessionStore(db) as store:
        store.create_session(name="s", amp_prompt="p", repo_root="/r")
    assert journal_mode(db) == "wal"
    db.chmod(0o444)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.sqlite"]
    return db


READ_ONLY_COMMANDS = [
    "status",
    "verify",
    "diff",
    "backup -o {out}",
    "migrate --dry-run",
]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_commands_that_only_read_leave_no_sidecars_next_to_a_read_only_wal_file(read_only_wal, command):
    out = read_only_wal.parent.parent / f"{read_only_wal.parent.name}-backup.sqlite"
    before = files(read_only_wal)
    done = sessionorm(*command.format(out=out).split(), "--db-path", read_only_wal)
    assert done.returncode == 0, done.stderr
    assert files(read_only_wal) == before  # no -wal, no -shm, the same bytes


def test_the_python_api_leaves_no_sidecars_next_to_a_read_only_wal_file(read_only_wal):
    before = files(read_only_wal)
    assert verify(read_only_wal).ok
    assert all(m.applied for m in status(read_only_wal))
    assert files(read_only_wal) == before


def test_sidecars_another_process_still_uses_are_left_alone(read_only_wal):
    """A second reader opens after ours: its lock on the -shm keeps both files."""
    db = open_sqlite(read_only_wal, readonly=True)  # the connection every read-only command uses
    db.execute_sql("SELECT count(*) FROM sessions")
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_READER, str(read_only_wal)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline().strip() == "reading"
        db.close()
        assert Path(f"{read_only_wal}-shm").exists() and Path(f"{read_only_wal}-wal").exists()
    finally:
        other.communicate("done\n")
    assert other.returncode == 0


def test_sidecars_another_connection_of_this_process_uses_are_left_alone(read_only_wal):
    first = open_sqlite(read_only_wal, readonly=True)
    first.execute_sql("SELECT count(*) FROM sessions")
    second = open_sqlite(read_only_wal, readonly=True)
    first.close()
    assert Path(f"{read_only_wal}-shm").exists()  # SQLite's lock for `second` is this process's own
    assert second.execute_sql("SELECT count(*) FROM sessions").fetchone() == (1,)
    second.close()
    assert not Path(f"{read_only_wal}-shm").exists() and not Path(f"{read_only_wal}-wal").exists()


HOLD_READER = """
import sqlite3, sys, urllib.parse
con = sqlite3.connect(f"file:{urllib.parse.quote(sys.argv[1])}?mode=ro", uri=True)
con.execute("SELECT count(*) FROM sessions").fetchall()
print("reading", flush=True)
sys.stdin.readline()
con.close()
"""
