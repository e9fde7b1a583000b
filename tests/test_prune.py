"""`sessionorm prune`: whole sessions last active before a moment, deleted with every row of
theirs in the app's order, in one transaction; the dry run lists exactly that and changes
nothing; running sessions never go. On SQLite, PostgreSQL and pgbouncer (the `backend` fixture).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import REPO_ROOT, one_error_line, run_module
from pg_support import Backend

from sessionorm import SessionStore, ValidationError, prune
from sessionorm.agent_memory import AgentMemory

OLD = "2020-01-01T00:00:00.000Z"
RECENT = "2099-01-01T00:00:00.000Z"  # "yesterday" for any cutoff these tests use


def age(db: Backend, session_id: str, moment: str = OLD) -> None:
    """Make every timestamp of the session `moment` (its threads' and messages' too)."""
    db.execute(
        'UPDATE sessions SET "createdAt" = ?, "lastRun" = ? WHERE id = ?', (moment, moment, session_id)
    )
    db.execute(
        'UPDATE threads SET "createdAt" = ?, "updatedAt" = ? WHERE "sessionId" = ?',
        (moment, moment, session_id),
    )
    db.execute(
        'UPDATE thread_messages SET "createdAt" = ? WHERE "threadId" IN'
        ' (SELECT id FROM threads WHERE "sessionId" = ?)',
        (moment, session_id),
    )


def make_session(
    store: SessionStore, name: str, threads: int = 1, messages: int = 2, status: str = "idle"
) -> str:
    session = store.create_session(name=name, amp_prompt="p", repo_root="/r")
    store.update_session(session.id, status=status)
    for t in range(threads):
        thread = store.create_thread(session.id, f"{name} thread {t}")
        store.add_thread_messages(
            thread, [("user", f"{name} says pruneword{t}:{m}") for m in range(messages)]
        )
    return session.id


@pytest.fixture
def sessions(backend: Backend) -> dict[str, str]:
    """Sessions of every kind: old ones (idle, done, error), an old one with a recent message, old
    running and awaiting-input ones, a new one."""
    with backend.store() as store:
        ids = {
            "old_idle": make_session(store, "old idle", threads=2, messages=3),
            "old_done": make_session(store, "old done", status="done"),
            "old_error": make_session(store, "old error", threads=0),
            "old_but_active": make_session(store, "old but active"),
            "old_running": make_session(store, "old running", status="running"),
            "old_awaiting": make_session(store, "old awaiting", status="awaiting-input"),
            "new": make_session(store, "new"),
        }
    store.close()
    for key, sid in ids.items():
        if key != "new":
            age(backend, sid)
    # one message yesterday: the session is not old
    backend.execute(
        'UPDATE thread_messages SET "createdAt" = ? WHERE id = (SELECT min(m.id) FROM thread_messages m'
        ' JOIN threads t ON t.id = m."threadId" WHERE t."sessionId" = ?)',
        (RECENT, ids["old_but_active"]),
    )
    backend.execute("UPDATE sessions SET status = 'error' WHERE id = ?", (ids["old_error"],))
    return ids


def state(db: Backend) -> object:
    """SQLite: the file's bytes and which sidecars exist; PostgreSQL: every table's rows."""
    if db.is_pg:
        return db.snapshot()
    path = Path(db.target)
    return (
        hashlib.sha256(path.read_bytes()).hexdigest(),
        [s for s in ("-wal", "-shm", "-journal") if Path(f"{path}{s}").exists()],
    )


def cli_json(db: Backend, *args: str) -> tuple[int, dict]:
    done = run_module("prune", *db.cli_args, "--json", *args, cwd=Path.cwd())
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def rows_of(db: Backend, session_ids: list[str]) -> object:
    """The rows of these sessions, their threads and their messages."""
    marks = ", ".join("?" * len(session_ids))
    return (
        db.query(f"SELECT * FROM sessions WHERE id IN ({marks}) ORDER BY id", tuple(session_ids)),
        db.query(f'SELECT * FROM threads WHERE "sessionId" IN ({marks}) ORDER BY id', tuple(session_ids)),
        db.query(
            f'SELECT m.* FROM thread_messages m JOIN threads t ON t.id = m."threadId"'
            f' WHERE t."sessionId" IN ({marks}) ORDER BY m.id',
            tuple(session_ids),
        ),
    )


def test_the_dry_run_changes_nothing_and_the_real_run_deletes_exactly_what_it_listed(backend, sessions):
    kept = [sessions[k] for k in ("old_but_active", "old_running", "old_awaiting", "new")]
    kept_rows = rows_of(backend, kept)
    before = state(backend)
    code, listed = cli_json(backend, "--older-than", "90d", "--dry-run")
    assert code == 0
    assert state(backend) == before  # not one byte, no -wal/-shm left behind
    assert listed["dry_run"] is True
    assert sorted(s["id"] for s in listed["sessions"]) == sorted(
        sessions[k] for k in ("old_idle", "old_done", "old_error")
    )
    by_id = {s["id"]: s for s in listed["sessions"]}
    assert (by_id[sessions["old_idle"]]["threads"], by_id[sessions["old_idle"]]["messages"]) == (2, 6)
    assert by_id[sessions["old_idle"]]["last_activity"] == OLD
    assert listed["tables"] == {"thread_messages": 8, "threads": 3, "sessions": 3}
    assert sorted(listed["running_kept"]) == sorted([sessions["old_running"], sessions["old_awaiting"]])

    code, done = cli_json(backend, "--older-than", "90d")
    assert code == 0 and done["dry_run"] is False
    assert done["sessions"] == listed["sessions"] and done["tables"] == listed["tables"]
    left = {r[0] for r in backend.query("SELECT id FROM sessions")}
    assert left == set(kept)
    assert rows_of(backend, kept) == kept_rows  # every other session's rows as they were
    gone = list(by_id)
    assert rows_of(backend, gone) == ([], [], [])


def test_the_dry_run_lists_what_the_python_api_then_deletes(backend, sessions):
    listed = prune(backend.target, "90d", dry_run=True)
    done = prune(backend.target, "90d")
    assert [vars(s) for s in done.sessions] == [vars(s) for s in listed.sessions]
    assert done.tables == listed.tables and done.sessions
    assert prune(backend.target, "90d").sessions == []


def test_running_sessions_are_never_pruned_and_a_running_status_is_a_usage_error(backend, sessions):
    report = prune(backend.target, "1d", status="done")
    assert [s.id for s in report.sessions] == [sessions["old_done"]]
    before = state(backend)
    for running in ("running", "awaiting-input"):
        done = run_module(
            "prune", *backend.cli_args, "--older-than", "1d", "--status", running, cwd=Path.cwd()
        )
        assert done.returncode == 2
        assert "names a running status" in one_error_line(done.stderr)
        with pytest.raises(ValidationError, match="never pruned"):
            prune(backend.target, "1d", status=running)
    assert state(backend) == before
    report = prune(backend.target, "1d")
    assert sessions["old_running"] not in [s.id for s in report.sessions]
    left = {r[0] for r in backend.query("SELECT id FROM sessions")}
    assert {sessions["old_running"], sessions["old_awaiting"]} <= left


def test_a_bad_age_is_a_usage_error_and_changes_nothing(backend, sessions):
    before = state(backend)
    done = run_module("prune", *backend.cli_args, "--older-than", "ninety days", cwd=Path.cwd())
    assert done.returncode == 2
    assert "is neither an age" in one_error_line(done.stderr)
    assert state(backend) == before


def test_nothing_to_prune_is_exit_0_and_says_so(backend, sessions):
    before = state(backend)
    done = run_module("prune", *backend.cli_args, "--older-than", "2019-01-01", cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    assert "nothing to prune" in done.stdout
    assert state(backend) == before


def app_children(db: Backend) -> None:
    """The app's iterations and tool_calls (SQLite: migration 3 made them; PostgreSQL: made here)."""
    if db.is_pg:
        db.execute(
            'CREATE TABLE iterations (id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL REFERENCES sessions(id),'
            ' "startTime" TEXT NOT NULL)'
        )
        db.execute(
            'CREATE TABLE tool_calls (id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL REFERENCES sessions(id),'
            ' "iterationId" TEXT NOT NULL REFERENCES iterations(id), timestamp TEXT NOT NULL,'
            ' "toolName" TEXT NOT NULL, "argsJson" TEXT NOT NULL, success BOOLEAN NOT NULL)'
        )


def add_iteration(db: Backend, session_id: str, n: int) -> None:
    db.execute(
        'INSERT INTO iterations (id, "sessionId", "startTime") VALUES (?, ?, ?)', (f"i{n}", session_id, OLD)
    )
    db.execute(
        'INSERT INTO tool_calls (id, "sessionId", "iterationId", timestamp, "toolName", "argsJson", success)'
        " VALUES (?, ?, ?, ?, 'edit', '{}', TRUE)",
        (f"c{n}", session_id, f"i{n}", OLD),
    )


def test_the_apps_child_rows_go_first_and_another_programs_rows_stop_everything(backend, sessions):
    app_children(backend)
    add_iteration(backend, sessions["old_idle"], 1)
    add_iteration(backend, sessions["old_done"], 2)
    add_iteration(backend, sessions["new"], 3)
    backend.execute(
        'CREATE TABLE notes_of_mine (id TEXT PRIMARY KEY, "sessionId" TEXT REFERENCES sessions(id))'
    )
    backend.execute("INSERT INTO notes_of_mine VALUES ('n', ?)", (sessions["old_done"],))
    before = state(backend)
    with pytest.raises(ValidationError, match="notes_of_mine"):
        prune(backend.target, "90d")
    assert state(backend) == before  # the other sessions' deletions were rolled back too
    backend.execute("DELETE FROM notes_of_mine")
    listed = prune(backend.target, "90d", dry_run=True)
    done = prune(backend.target, "90d")
    assert done.tables == listed.tables
    assert list(done.tables) == ["tool_calls", "iterations", "thread_messages", "threads", "sessions"]
    assert done.tables["tool_calls"] == 2 and done.tables["iterations"] == 2
    assert backend.query("SELECT id FROM iterations") == [("i3",)]
    assert backend.query("SELECT id FROM tool_calls") == [("c3",)]


def test_agent_sessions_go_with_their_session(backend):
    with backend.store() as store:
        memory = AgentMemory(store)
        memory.add("agent-1", [{"role": "user", "content": "hello"}])
        session_id = memory.session("agent-1").orchestrator_session_id
    age(backend, session_id)
    report = prune(backend.target, "90d")
    assert [s.id for s in report.sessions] == [session_id]
    assert report.tables["sessionorm_agent_sessions"] == 1
    assert backend.query("SELECT count(*) FROM sessionorm_agent_sessions") == [(0,)]
    assert backend.query("SELECT count(*) FROM sessionorm_agent_items") == [(0,)]


def test_pruned_messages_are_not_found_by_search(backend, sessions):
    with backend.store(readonly=True) as store:
        assert store.search("pruneword0", session=sessions["old_idle"])
    prune(backend.target, "90d")
    with backend.store(readonly=True) as store:
        hits = store.search("pruneword0", limit=100)
        found = {store.get_thread(h.message.thread_id).session_id for h in hits}
    assert found == {
        sessions["old_but_active"],
        sessions["old_running"],
        sessions["old_awaiting"],
        sessions["new"],
    }


def test_backup_is_taken_under_the_lock_before_deleting(backend, sessions, dump):
    before = backend.snapshot()
    before_dump = None if backend.is_pg else dump(backend.target)
    code, done = cli_json(backend, "--older-than", "90d", "--backup")
    assert code == 0 and done["backup"]
    saved = Path(done["backup"])
    assert saved.is_file()
    if backend.is_pg:
        listing = subprocess.run(["pg_restore", "--list", saved], capture_output=True, text=True, check=True)
        assert " TABLE DATA public sessions " in listing.stdout
    else:
        assert dump(saved) == before_dump
    assert backend.snapshot() != before
    nothing = prune(backend.target, "90d", backup=True)
    assert nothing.sessions == [] and nothing.backup is None  # nothing to delete: no backup


def test_vacuum_reports_the_bytes_freed(backend):
    with backend.store() as store:
        keep = make_session(store, "kept", messages=5)
        old = [make_session(store, f"old {i}", messages=200) for i in range(10)]
    for sid in old:
        age(backend, sid)
    code, done = cli_json(backend, "--older-than", "90d", "--vacuum")
    assert code == 0
    assert len(done["sessions"]) == 10 and done["vacuumed"] is True
    assert done["bytes_freed"] == done["bytes_before"] - done["bytes_after"]
    assert done["bytes_freed"] > 0
    assert {r[0] for r in backend.query("SELECT id FROM sessions")} == {keep}
    if not backend.is_pg:
        assert Path(backend.target).stat().st_size == done["bytes_after"]
        assert backend.query("PRAGMA integrity_check") == [("ok",)]
        # the search index kept no delete markers of the pruned messages, and is sound
        backend.execute("INSERT INTO sessionorm_search(sessionorm_search) VALUES ('integrity-check')")
        assert backend.query("SELECT count(*) FROM sessionorm_search_data")[0][0] < 20


HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""


def test_prune_waits_for_the_write_lock_and_gives_up_busy_changing_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = Backend("sqlite", str(tmp_path / "sessions.db"))
    with db.store() as store:
        sid = make_session(store, "old")
    age(db, sid)
    before = state(db)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, db.target], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        done = run_module(
            "prune", "--db-path", db.target, "--older-than", "90d", "--busy-timeout", "1", cwd=REPO_ROOT
        )
        assert done.returncode == 2
        assert "database is busy" in one_error_line(done.stderr)
        assert time.monotonic() - start >= 1
    finally:
        holder.kill()
        holder.wait()
    assert db.query("SELECT id FROM sessions") == [(sid,)]
    assert state(db)[0] == before[0]


def test_a_session_whose_latest_time_is_not_a_time_is_kept_and_listed(backend, sessions):
    backend.execute('UPDATE sessions SET "lastRun" = ? WHERE id = ?', ("next tuesday", sessions["old_done"]))
    backend.execute(
        'UPDATE sessions SET "lastRun" = ? WHERE id = ?', ("2019-06-01 10:00:00", sessions["old_idle"])
    )
    listed = prune(backend.target, "90d", dry_run=True)
    assert listed.unreadable_kept == [sessions["old_done"]]
    done = prune(backend.target, "90d")
    assert done.unreadable_kept == [sessions["old_done"]]
    # SQLite's CURRENT_TIMESTAMP form is a time: the old session goes
    assert sorted(s.id for s in done.sessions) == sorted([sessions["old_idle"], sessions["old_error"]])
    assert {sessions["old_done"]} <= {r[0] for r in backend.query("SELECT id FROM sessions")}
