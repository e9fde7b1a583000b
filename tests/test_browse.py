"""Browsing from the shell: `sessionorm sessions`, `threads SESSION` and `show THREAD`, on SQLite,
PostgreSQL and pgbouncer; what they list, in which order, with which counts; their JSON; that
they write nothing; and a transcript on a real terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import REPO_ROOT, invoke, one_error_line, run_module
from pg_support import Backend

OLD, MIDDLE, NEW = "2026-01-01T10:00:00.000Z", "2026-03-01T10:00:00.000Z", "2026-05-01T10:00:00.000Z"
APP_UPDATE = "2026-06-01T12:30:00.000Z"  # the app's append to the old session's thread


def three_sessions(backend: Backend) -> dict[str, str]:
    """An old session whose thread the app wrote to later, a running one without threads, and a
    new one with two threads; their creation moments set as the app stores them."""
    with backend.store() as store:
        old = store.create_session(name="Old\nwork", amp_prompt="p", repo_root="/repo/a")
        thread = store.create_thread(old, "Old thread")
        store.add_thread_message(thread, "user", "first")
        middle = store.create_session(name="Running", amp_prompt="p", repo_root="/repo/b", status="running")
        new = store.create_session(name="New", amp_prompt="p", repo_root="/repo/a")
        one = store.create_thread(new, "One")
        store.add_thread_messages(one, [("user", "a"), ("assistant", "b")])
        two = store.create_thread(new, "Two")
        store.add_thread_message(two, "user", "c")
    for session, created in ((old, OLD), (middle, MIDDLE), (new, NEW)):
        backend.execute(
            backend.sql('UPDATE sessions SET "createdAt" = ? WHERE id = ?'), (created, session.id)
        )
    for t, moment in ((one, NEW), (two, NEW), (thread, OLD)):
        backend.execute(backend.sql('UPDATE threads SET "updatedAt" = ? WHERE id = ?'), (moment, t.id))
        backend.execute(
            backend.sql('UPDATE thread_messages SET "createdAt" = ? WHERE "threadId" = ?'), (moment, t.id)
        )
    # the app appends as it does: its own INSERT, then the thread's updatedAt
    backend.execute(
        backend.sql(
            'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
            " VALUES (?, ?, ?, ?, ?, ?)"
        ),
        ("m-app", thread.id, "assistant", "written by the app", APP_UPDATE, 1),
    )
    backend.execute(backend.sql('UPDATE threads SET "updatedAt" = ? WHERE id = ?'), (APP_UPDATE, thread.id))
    return {
        "old": old.id,
        "middle": middle.id,
        "new": new.id,
        "old_thread": thread.id,
        "one": one.id,
        "two": two.id,
    }


def listed(backend: Backend, *options: str) -> list[dict]:
    result = invoke("sessions", "--json", *options, *backend.cli_args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sessions_newest_first_with_counts_and_last_activity(backend: Backend) -> None:
    ids = three_sessions(backend)
    rows = listed(backend)
    assert [r["id"] for r in rows] == [ids["new"], ids["middle"], ids["old"]]
    by_id = {r["id"]: r for r in rows}
    assert [
        (by_id[ids[k]]["thread_count"], by_id[ids[k]]["message_count"]) for k in ("new", "middle", "old")
    ] == [
        (2, 3),
        (0, 0),
        (1, 2),
    ]
    # the app's append moved the old session's activity on; the running one never had any but its creation
    assert by_id[ids["old"]]["last_activity"].startswith("2026-06-01T12:30:00")
    assert by_id[ids["middle"]]["last_activity"].startswith("2026-03-01T10:00:00")
    assert by_id[ids["old"]]["name"] == "Old\nwork" and by_id[ids["old"]]["repo_root"] == "/repo/a"

    text = invoke("sessions", *backend.cli_args)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["SESSION", "STATUS", "THREADS", "MESSAGES", "LAST", "ACTIVITY", "NAME"]
    assert [line.split()[0] for line in lines[1:]] == [ids["new"], ids["middle"], ids["old"]]
    assert lines[3].split()[1:] == ["idle", "1", "2", "2026-06-01", "12:30:00Z", "Old", "work"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--status", "running"], ["middle"]),
        (["--repo", "/repo/a"], ["new", "old"]),
        (["--since", "2026-02-15"], ["new", "middle"]),
        (["--since", "2026-03-01T10:00:00Z"], ["new", "middle"]),
        (["--limit", "1"], ["new"]),
        (["--repo", "/repo/a", "--limit", "1", "--since", "2026-01-01"], ["new"]),
        (["--since", "30d"], []),  # all of them were created long before today
    ],
)
def test_sessions_filters(backend: Backend, options: list[str], expected: list[str]) -> None:
    ids = three_sessions(backend)
    assert [r["id"] for r in listed(backend, *options)] == [ids[k] for k in expected]


def test_no_sessions_is_a_clean_empty_answer(backend: Backend) -> None:
    three_sessions(backend)
    result = invoke("sessions", "--status", "merged", *backend.cli_args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no sessions\n")


@pytest.mark.parametrize("since", ["yesterday", "90", "-3d", "2026-13-01"])
def test_a_moment_that_is_neither_age_nor_date_is_a_clear_error(backend: Backend, since: str) -> None:
    three_sessions(backend)
    result = invoke("sessions", "--since", since, *backend.cli_args)
    assert result.exit_code == 2
    assert "neither an age" in one_error_line(result.stderr) and repr(since) in result.stderr


def test_threads_of_a_session(backend: Backend) -> None:
    ids = three_sessions(backend)
    result = invoke("threads", ids["new"], "--json", *backend.cli_args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["session"]["id"] == ids["new"]
    assert {(t["id"], t["name"], t["message_count"]) for t in doc["threads"]} == {
        (ids["one"], "One", 2),
        (ids["two"], "Two", 1),
    }
    assert all(t["session_id"] == ids["new"] for t in doc["threads"])

    text = invoke("threads", ids["old"], *backend.cli_args)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == f"session {ids['old']}: Old work (1 threads)"
    assert lines[2].split() == [ids["old_thread"], "active", "2", "2026-06-01", "12:30:00Z", "Old", "thread"]

    empty = invoke("threads", ids["middle"], *backend.cli_args)
    assert empty.stdout == f"session {ids['middle']}: Running (0 threads)\n"


@pytest.mark.parametrize("command", ["threads", "show"])
def test_an_unknown_id_is_one_error_line_exit_2(backend: Backend, command: str) -> None:
    three_sessions(backend)
    result = invoke(command, "no-such-id", *backend.cli_args)
    assert result.exit_code == 2
    assert (
        one_error_line(result.stderr)
        == f"error: no {'session' if command == 'threads' else 'thread'} with id 'no-such-id'"
    )
    as_json = invoke(command, "no-such-id", "--json", *backend.cli_args)
    assert (as_json.exit_code, json.loads(as_json.stdout)["exit"]) == (2, 2)


def test_show_prints_the_transcript_in_order(backend: Backend) -> None:
    ids = three_sessions(backend)
    result = invoke("show", ids["old_thread"], *backend.cli_args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "# Old thread",
        f"thread {ids['old_thread']}, session {ids['old']} (Old work); 2 messages",
        "",
        result.stdout.splitlines()[3],  # the store's own timestamp: checked below
        "    first",
        "",
        "[1] assistant · 2026-06-01 12:30:00Z",
        "    written by the app",
    ]
    assert result.stdout.splitlines()[3].startswith("[0] user · ")

    last = invoke("show", ids["one"], "--last", "1", *backend.cli_args)
    assert last.stdout.splitlines()[1].endswith("the latest 1 of 2 messages")
    assert last.stdout.splitlines()[3:] == [last.stdout.splitlines()[3], "    b"]
    assert last.stdout.splitlines()[3].startswith("[1] assistant · ")

    doc = json.loads(invoke("show", ids["one"], "--json", *backend.cli_args).stdout)
    assert doc["thread"]["id"] == ids["one"] and doc["session"]["id"] == ids["new"]
    assert [(m["idx"], m["role"], m["content"], m["thread_id"]) for m in doc["messages"]] == [
        (0, "user", "a", ids["one"]),
        (1, "assistant", "b", ids["one"]),
    ]


def test_browsing_writes_nothing(backend: Backend, file_digest) -> None:
    ids = three_sessions(backend)
    before = file_digest(backend.target) if not backend.is_pg else backend.snapshot()
    for args in (
        ["sessions"],
        ["sessions", "--json"],
        ["threads", ids["new"]],
        ["show", ids["one"], "--last", "1"],
    ):
        assert invoke(*args, *backend.cli_args).exit_code == 0
    after = file_digest(backend.target) if not backend.is_pg else backend.snapshot()
    assert after == before
    if not backend.is_pg:
        assert not Path(f"{backend.target}-wal").exists() or os.path.getsize(f"{backend.target}-wal") == 0


def test_a_real_process_with_stdin_closed(backend: Backend) -> None:
    ids = three_sessions(backend)
    result = run_module("sessions", "--limit", "2", *backend.cli_args)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == [ids["new"], ids["middle"]]


def test_on_a_terminal_a_message_cannot_steer_it(tmp_path: Path) -> None:
    """A model's escape sequence in a message is shown as ␛, not obeyed; the headings are coloured."""
    from sessionorm import SessionStore

    db = tmp_path / "t.db"
    with SessionStore(db) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "T")
        store.add_thread_message(thread, "assistant", "clear \x1b[2J\x1b]0;owned\x07 done\r\nnext\tline\x00")
    leader, follower = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TERM="xterm")
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionorm", "show", thread.id, "--db-path", str(db)],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    os.close(leader)
    text = output.decode()
    assert "clear ␛[2J␛]0;owned␇ done␍" in text
    assert "next\tline␀" in text
    assert "\x1b[2J" not in text and "\x07" not in text and "\x00" not in text
    assert "\x1b[" in text  # the heading's own colour


def test_a_message_newer_than_its_threads_update_is_the_last_activity(backend: Backend) -> None:
    """As `prune` judges age: a message written without moving its thread's updatedAt counts."""
    ids = three_sessions(backend)
    backend.execute(
        backend.sql(
            'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
            " VALUES (?, ?, ?, ?, ?, ?)"
        ),
        ("m-late", ids["old_thread"], "user", "late", "2026-07-01T08:00:00.000Z", 2),
    )
    by_id = {r["id"]: r for r in listed(backend)}
    assert by_id[ids["old"]]["last_activity"].startswith("2026-07-01T08:00:00")
    assert by_id[ids["old"]]["message_count"] == 3
