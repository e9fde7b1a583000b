"""`verify --exercise` on a file another process keeps writing to: no false failure.

Its before and after row counts are read inside its own write transaction (the write lock on
SQLite), so another writer's commits never look like rows the exercise left behind. Through
the real CLI, four runs each, in WAL and in rollback-journal mode.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import workers

from sessionorm import SessionStore
from sessionorm.backends.sqlite_files import read_snapshot

# Appends a message to one thread per transaction, for ever (its own connection, plain sqlite3).
APPENDER = textwrap.dedent("""
    import sqlite3, sys, uuid
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    n = 0
    while True:
        con.execute("BEGIN IMMEDIATE")
        idx = con.execute('SELECT coalesce(max(idx), -1) + 1 FROM thread_messages WHERE "threadId" = ?',
                          (sys.argv[2],)).fetchone()[0]
        con.execute('INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
                    " VALUES (?, ?, 'user', 'x', '2026-01-01T00:00:00.000Z', ?)",
                    (str(uuid.uuid4()), sys.argv[2], idx))
        con.execute("COMMIT")
        n += 1
        if n == 20:
            print("ready", flush=True)
""")


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_verify_exercise_beside_a_looping_writer_passes_every_run(tmp_path: Path, journal_mode: str):
    db = tmp_path / "live.sqlite"
    with SessionStore(db) as store:
        thread = store.create_thread(store.create_session(name="s", amp_prompt="p", repo_root="/r"), "t").id
    con = sqlite3.connect(db)
    assert con.execute(f"PRAGMA journal_mode = {journal_mode}").fetchone()[0] == journal_mode
    con.close()
    writer = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(db), thread],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        counts = []
        for run in range(4):
            done = workers.run_cli("verify", "--exercise", "--db-path", str(db), timeout=60)
            assert done.returncode == 0, (run, done.stdout, done.stderr)
            assert "[FAIL]" not in done.stdout
            # sessionorm's own live read (polling for the lock): a plain sqlite3 read starves
            # beside a writer looping in rollback-journal mode
            with read_snapshot(db) as con:
                counts.append(con.execute("SELECT count(*) FROM thread_messages").fetchone()[0])
        assert writer.poll() is None, writer.stderr.read()  # it was never starved into failing
    finally:
        writer.kill()
        writer.wait(30)
    assert counts == sorted(counts) and counts[-1] > counts[0]  # it kept committing meanwhile
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == journal_mode  # the exercise switched nothing
    con.close()
