"""A database whose write lock another process holds longer than the busy timeout.

Writes give up with `DatabaseBusyError` (the CLI: one line, non-zero exit), write nothing,
and succeed as soon as the lock is released.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import workers

from sessionorm import DatabaseBusyError, SessionStore

pytestmark = pytest.mark.slow

BUSY = 0.3


@contextlib.contextmanager
def lock_held(path: Path, sql: str, params: tuple = ()) -> Iterator[None]:
    """Another process holds `BEGIN IMMEDIATE` plus one uncommitted write until the block ends."""
    results, locked, release = workers.SPAWN.Queue(), workers.SPAWN.Event(), workers.SPAWN.Event()
    procs = workers.start_processes(
        workers.hold_write_lock, [(str(path), sql, params, locked, release, results)]
    )
    try:
        deadline = time.monotonic() + 60
        while not locked.wait(0.1):
            assert procs[0].is_alive() and time.monotonic() < deadline, "the holder never took the lock"
        yield
    finally:
        release.set()
        reports = workers.collect(results, 1, procs)
    assert reports[0][1] == "ok", reports


def test_store_writes_raise_busy_error_while_another_process_holds_the_lock(db_path: Path, dump):
    with SessionStore(db_path) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread_id = store.create_thread(session.id, "t").id
        store.add_thread_message(thread_id, "user", "before")
    before = dump(db_path)
    store = SessionStore(db_path, busy_timeout=BUSY)
    try:
        insert = (
            'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
            " VALUES ('00000000-0000-4000-8000-000000000000', ?, 'user', 'held', 'x', 1)"
        )
        attempts = {
            "add_thread_message": lambda: store.add_thread_message(thread_id, "user", "blocked").id,
            "add_thread_messages": lambda: store.add_thread_messages(thread_id, [("user", "blocked")]),
            "create_thread": lambda: store.create_thread(session.id, "blocked").id,
            "create_session": lambda: store.create_session(name="blocked", amp_prompt="p", repo_root="/r"),
            "delete_thread": lambda: store.delete_thread(thread_id),
        }
        waited = {}
        with lock_held(db_path, insert, (thread_id,)):
            for name, attempt in attempts.items():
                began = time.monotonic()
                with pytest.raises(DatabaseBusyError, match="busy"):
                    attempt()
                waited[name] = time.monotonic() - began
            # reads are not blocked (WAL) and see only committed rows
            assert [m.content for m in store.get_thread_messages(thread_id)] == ["before"]
        for name, seconds in waited.items():
            assert BUSY * 0.9 <= seconds < BUSY + 3, (name, seconds)
        assert dump(db_path) == before  # nothing half-written, the holder's row rolled back
        # released: the same store writes again (no transaction was left open)
        store.add_thread_message(thread_id, "assistant", "after")
        store.create_thread(session.id, "after")
        assert [m.idx for m in store.get_thread_messages(thread_id)] == [0, 1]
    finally:
        store.close()


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_migrate_on_a_locked_database_exits_with_one_line_and_changes_nothing(legacy_db, dump, wal):
    path = legacy_db(n=200, wal=wal)
    before = dump(path)
    insert = (
        "INSERT INTO sessions (id, name, ampPrompt, repoRoot, baseBranch, branchName,"
        " worktreePath, status, createdAt) VALUES ('held', 'held', 'p', '/r', 'main', 'b',"
        " '/w', 'idle', '2025-01-01T00:00:00.000Z')"
    )
    with lock_held(path, insert):
        began = time.monotonic()
        done = workers.run_cli("migrate", "--db-path", str(path), "--busy-timeout", str(BUSY))
        seconds = time.monotonic() - began
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "busy" in lines[0] and "retry" in lines[0] and "timeout" in lines[0]
    assert seconds < 10
    assert dump(path) == before
    # released: the same command succeeds and the result verifies
    done = workers.run_cli("migrate", "--db-path", str(path), "--busy-timeout", str(BUSY))
    assert done.returncode == 0, done.stderr
    assert workers.run_cli("verify", "--db-path", str(path)).returncode == 0
