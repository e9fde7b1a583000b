"""`sessionorm export` and `sessionorm import` (issue 26): the JSONL round trip, on each backend
and across engines, hostile content, selection, conflicts and bad files refused with nothing
written, a SIGKILLed import, the markdown layout, `--json` and exit codes.

Real files, the real server (conftest's `backend` fixture: SQLite, PostgreSQL, pgbouncer), the
real CLI in subprocesses; databases looked at through the plain drivers (`Backend.snapshot`,
the file's digest), never through sessionorm.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import REPO_ROOT, one_error_line, run_module
from pg_support import Backend, pg_database

from sessionorm import (
    ImportRefusedError,
    MigrationError,
    NotFoundError,
    ValidationError,
    commands,
    export_sessions,
    import_sessions,
)
from sessionorm.agent_memory import AgentMemory
from sessionorm.exporting import record_text

MB_TEXT = "ü" * 300_000 + "🧵" * 100_000 + "x" * 100_000  # 1.0 MB of UTF-8 and more
HOSTILE = (
    "quotes ' \" \\ `` ``` </script> \n\r\t line\u2028sep \u202eRTL e\u0301 😀🧵 '); DROP TABLE sessions;--"
)


# -- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def another(backend: Backend, tmp_path: Path, name: str = "other") -> Iterator[Backend]:
    """A second fresh, empty database of the same kind as `backend`."""
    if backend.is_pg:
        with pg_database(backend.name) as database:
            yield database
    else:
        yield Backend("sqlite", str(tmp_path / f"{name}.db"))


def migrated(db: Backend) -> Backend:
    commands.migrate(db.target)
    return db


def fill(db: Backend, nul: bool | None = None) -> dict[str, str]:
    """Three sessions (one old), threads, messages (hostile, a 1 MB one), an agent session
    with exact items; NUL characters where the engine holds them. Returns some ids."""
    nul = (not db.is_pg) if nul is None else nul
    z = "\x00" if nul else ""
    with db.store() as store:
        old = store.create_session(
            name="Old one", amp_prompt=None, repo_root="/src/old", createdAt="2020-01-02T03:04:05.678Z"
        )
        first = store.create_session(
            name=f"Fix {HOSTILE}{z}",
            amp_prompt=f"Prompt ```code``` {HOSTILE}",
            repo_root="/src/app",
            contextIncluded=True,
            createdAt="2026-11-01T10:00:00.000Z",
        )
        second = store.create_session(
            name="Second", amp_prompt="p", repo_root="/src/b", createdAt="2026-11-02T10:00:00.000Z"
        )
        t1 = store.create_thread(first, f"Thread {HOSTILE}", amp_mode="local-cli")
        store.add_thread_messages(
            t1, [("user", f"hi {HOSTILE}{z}"), ("assistant", MB_TEXT), ("system", "zebra giraffe")]
        )
        t2 = store.create_thread(first, "Second thread")
        store.add_thread_message(t2, "user", "another one")
        t3 = store.create_thread(old, "Old thread")
        store.add_thread_message(t3, "user", "old words")
        store.create_thread(second, "Empty thread")
        AgentMemory(store).add(
            "agent-1",
            [
                {"role": "user", "content": f"agent hello{z} 😀"},
                {"type": "function_call", "name": "f", "arguments": '{"a": [1, 2]}', "call_id": "c1"},
                {"role": "assistant", "content": [{"type": "output_text", "text": 'done\n"ok"'}]},
            ],
        )
        return {"old": old.id, "first": first.id, "second": second.id, "t1": t1.id}


def export_text(db: Backend, path: Path, **options) -> bytes:
    export_sessions(db.target, path, **options)
    return path.read_bytes()


def state(db: Backend) -> object:
    """What must not change: every row of every table (PostgreSQL), the file's bytes (SQLite)."""
    if db.is_pg:
        return db.snapshot()
    return Path(db.target).read_bytes()


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.split(b"\n") if line]


def cli(db: Backend, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_module(*args, *db.cli_args, cwd=cwd)


# -- the round trip --------------------------------------------------------------------------


def test_export_import_export_is_byte_identical_and_searchable(backend, tmp_path):
    migrated(backend)
    ids = fill(backend)
    first = export_text(backend, tmp_path / "a.jsonl")
    with another(backend, tmp_path) as empty:
        migrated(empty)
        report = import_sessions(tmp_path / "a.jsonl", empty.target)
        assert (report.sessions, report.threads, report.messages) == (4, 5, 8)
        assert (report.agent_sessions, report.agent_items, report.skipped) == (1, 3, 0)
        again = export_text(empty, tmp_path / "b.jsonl")
        assert again == first
        with empty.store(readonly=True) as store:  # the index's triggers saw every message
            hits = store.search("zebra giraffe")
            assert [h.message.thread_id for h in hits] == [ids["t1"]]
            assert store.get_thread_messages(ids["t1"])[1].content == MB_TEXT
            items = AgentMemory(store).session("agent-1")
            assert items.item_count == 3
        assert commands.verify(empty.target).ok


def test_the_format_is_a_header_then_sessions_threads_agent_sessions_messages_and_an_end(backend, tmp_path):
    migrated(backend)
    ids = fill(backend)
    records = lines(export_text(backend, tmp_path / "a.jsonl"))
    assert records[0] == {"format": "sessionorm-export", "version": 1}
    kinds = [next(iter(r)) for r in records[1:]]
    assert kinds[-1] == "end"
    assert records[-1]["end"] == {
        "sessions": 4,
        "threads": 5,
        "agent_sessions": 1,
        "messages": 8,
        "agent_items": 3,
    }
    sessions = [r["session"]["id"] for r in records if "session" in r]
    assert sessions[:3] == [ids["old"], ids["first"], ids["second"]]  # by createdAt, then id
    # every column by its database name, the app's own included, in name order
    session = next(r["session"] for r in records if "session" in r and r["session"]["id"] == ids["first"])
    assert list(session) == sorted(session)
    assert {"mode", "autoCommit", "ampMode", "contextIncluded", "followUpPrompts"} <= set(session)
    assert session["contextIncluded"] == 1  # booleans as SQLite stores them, on every engine
    thread = next(r["thread"] for r in records if "thread" in r and r["thread"]["id"] == ids["t1"])
    assert thread["ampMode"] == "local-cli"
    at = kinds.index("agent_session")
    assert kinds[at - 1] == "thread"  # right after its thread, before its messages
    agent_messages = [r for r in records[at + 2 :] if "agent_item" in r]
    assert [json.loads(r["agent_item"])["role"] for r in agent_messages[::2]] == ["user", "assistant"]
    assert json.loads(agent_messages[1]["agent_item"])["call_id"] == "c1"  # the exact item
    idxs = [r["message"]["idx"] for r in records if "message" in r and r["message"]["threadId"] == ids["t1"]]
    assert idxs == [0, 1, 2]


def test_sqlite_to_postgres_and_back_is_byte_identical(tmp_path):
    with pg_database("postgresql") as server:
        source = migrated(Backend("sqlite", str(tmp_path / "source.db")))
        fill(source, nul=False)
        first = export_text(source, tmp_path / "a.jsonl")
        migrated(server)
        import_sessions(tmp_path / "a.jsonl", server.target)
        assert export_text(server, tmp_path / "b.jsonl") == first
        back = migrated(Backend("sqlite", str(tmp_path / "back.db")))
        import_sessions(tmp_path / "b.jsonl", back.target)
        assert export_text(back, tmp_path / "c.jsonl") == first


def test_nul_survives_sqlite_and_postgres_refuses_it_naming_the_row(tmp_path):
    source = migrated(Backend("sqlite", str(tmp_path / "source.db")))
    ids = fill(source, nul=True)
    data = export_text(source, tmp_path / "a.jsonl")
    assert b"\\u0000" in data and b"\x00" not in data  # JSON's escape: the file is text
    with pg_database("postgresql") as server:
        migrated(server)
        before = server.snapshot()
        with pytest.raises(ImportRefusedError) as refused:
            import_sessions(tmp_path / "a.jsonl", server.target)
        assert f"session {ids['first']}: name holds a NUL character" in str(refused.value)
        assert "nothing was imported" in str(refused.value)
        assert server.snapshot() == before


# -- selection -------------------------------------------------------------------------------


def test_session_and_since_choose_the_sessions(backend, tmp_path):
    migrated(backend)
    ids = fill(backend)
    chosen = lines(export_text(backend, tmp_path / "a.jsonl", sessions=[ids["second"], ids["old"]]))
    assert [r["session"]["id"] for r in chosen if "session" in r] == [ids["old"], ids["second"]]
    assert {r["thread"]["sessionId"] for r in chosen if "thread" in r} == {ids["old"], ids["second"]}
    recent = lines(export_text(backend, tmp_path / "b.jsonl", since="2026-11-01"))
    assert ids["old"] not in [r["session"]["id"] for r in recent if "session" in r]
    assert ids["first"] in [r["session"]["id"] for r in recent if "session" in r]
    both = lines(export_text(backend, tmp_path / "c.jsonl", since="2026-11-02", sessions=[ids["first"]]))
    assert [r for r in both if "session" in r] == []


def test_an_unknown_session_is_refused_and_no_file_is_written(backend, tmp_path):
    migrated(backend)
    ids = fill(backend)
    out = tmp_path / "out.jsonl"
    with pytest.raises(NotFoundError, match="'nope'"):
        export_sessions(backend.target, out, sessions=[ids["first"], "nope"])
    result = cli(backend, "export", "--session", "nope", "-o", out)
    assert result.returncode == 2
    assert "no session has the id 'nope'" in one_error_line(result.stderr)
    assert os.listdir(tmp_path) == [p for p in os.listdir(tmp_path) if not p.startswith(".out")]
    assert not out.exists()


def test_an_existing_output_file_is_kept_unless_forced(tmp_path):
    db = migrated(Backend("sqlite", str(tmp_path / "s.db")))
    fill(db)
    out = tmp_path / "out.jsonl"
    out.write_text("keep me")
    with pytest.raises(ValidationError, match="exists"):
        export_sessions(db.target, out)
    assert out.read_text() == "keep me"
    result = cli(db, "export", "-o", out)
    assert result.returncode == 2 and "--force" in one_error_line(result.stderr)
    assert out.read_text() == "keep me"
    assert cli(db, "export", "-o", out, "--force").returncode == 0
    assert lines(out.read_bytes())[0] == {"format": "sessionorm-export", "version": 1}
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl", "s.db"]  # no temporary file left


# -- importing again, conflicts ----------------------------------------------------------------


def test_importing_the_same_file_twice_skips_everything(backend, tmp_path):
    migrated(backend)
    fill(backend)
    export_text(backend, tmp_path / "a.jsonl")
    with another(backend, tmp_path) as target:
        migrated(target)
        import_sessions(tmp_path / "a.jsonl", target.target)
        before = target.snapshot()
        report = import_sessions(tmp_path / "a.jsonl", target.target)
        assert (report.sessions, report.threads, report.messages, report.agent_items) == (0, 0, 0, 0)
        assert report.skipped == 4 + 5 + 1 + 8
        assert target.snapshot() == before
    # into the database it came from: the same
    before = backend.snapshot()
    assert import_sessions(tmp_path / "a.jsonl", backend.target).skipped == 18
    assert backend.snapshot() == before


def test_a_conflict_is_refused_naming_the_ids_and_nothing_is_written(backend, tmp_path):
    migrated(backend)
    ids = fill(backend)
    export_text(backend, tmp_path / "a.jsonl")
    with backend.connect() as con:  # the database moves on: a renamed thread, an edited message
        con.execute(backend.sql("UPDATE threads SET name = 'renamed' WHERE id = ?"), (ids["t1"],))
        con.execute(
            backend.sql("UPDATE thread_messages SET content = 'edited' WHERE \"threadId\" = ? AND idx = 2"),
            (ids["t1"],),
        )
        edited = con.execute(
            backend.sql('SELECT id FROM thread_messages WHERE "threadId" = ? AND idx = 2'), (ids["t1"],)
        ).fetchone()[0]
        con.execute(
            backend.sql("DELETE FROM sessions WHERE id = ?"), (ids["second"],)
        )  # to be imported again
    before = state(backend)
    with pytest.raises(ImportRefusedError) as refused:
        import_sessions(tmp_path / "a.jsonl", backend.target)
    text = str(refused.value)
    assert "2 rows are present in the database with other content" in text
    assert f"thread {ids['t1']} (line" in text and "name differ" in text
    assert f"message {edited} (line" in text and "content differ" in text
    assert "nothing was imported" in text
    assert state(backend) == before  # the deleted session did not come back either
    result = cli(backend, "import", tmp_path / "a.jsonl")
    assert result.returncode == 2 and ids["t1"] in one_error_line(result.stderr)
    assert state(backend) == before


def test_a_message_whose_place_is_taken_is_a_conflict(backend, tmp_path):
    migrated(backend)
    ids = fill(backend)
    export_text(backend, tmp_path / "a.jsonl")
    with backend.connect() as con:  # another message now holds idx 2 of t1
        old = con.execute(
            backend.sql('SELECT id FROM thread_messages WHERE "threadId" = ? AND idx = 2'), (ids["t1"],)
        ).fetchone()[0]
        con.execute(backend.sql("UPDATE thread_messages SET id = 'usurper' WHERE id = ?"), (old,))
    before = state(backend)
    with pytest.raises(
        ImportRefusedError,
        match=f"message {old} \\(line \\d+: thread {ids['t1']}'s idx 2 is message usurper\\)",
    ):
        import_sessions(tmp_path / "a.jsonl", backend.target)
    assert state(backend) == before


def test_beyond_ten_conflicts_the_rest_are_counted(tmp_path):
    db = migrated(Backend("sqlite", str(tmp_path / "s.db")))
    with db.store() as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "t")
        store.add_thread_messages(thread, [("user", f"m{n}") for n in range(15)])
    export_text(db, tmp_path / "a.jsonl")
    with db.connect() as con:
        con.execute("UPDATE thread_messages SET content = content || '!'")
    with pytest.raises(
        ImportRefusedError, match=r"15 rows are present .*; and 5 more \(nothing was imported\)"
    ):
        import_sessions(tmp_path / "a.jsonl", db.target)


# -- bad files -------------------------------------------------------------------------------


def damaged(text: bytes) -> dict[str, tuple[bytes, str]]:
    """Name -> (file content, what the refusal says) for each way a file can be wrong."""
    rows = text.split(b"\n")
    return {
        "not json": (b"\n".join([*rows[:3], b"{not json", *rows[3:]]), "line 4: not JSON"),
        "not an export": (
            b'{"format": "something else"}\n' + b"\n".join(rows[1:]),
            "line 1: not a sessionorm export",
        ),
        "a newer version": (
            b'{"format":"sessionorm-export","version":2}\n' + b"\n".join(rows[1:]),
            "format version 2 is newer",
        ),
        "cut mid-line": (text[: len(text) // 2], "cut short"),
        "cut between lines": (b"\n".join(rows[:5]) + b"\n", "ends without its end line"),
        "empty": (b"", "the file is empty"),
        "a record of no kind": (
            b"\n".join([*rows[:2], b'{"thing": {}}', *rows[2:]]),
            "line 3: no record kind",
        ),
        "counts that differ": (b"\n".join([*rows[:2], *rows[3:]]), "the end line says"),
        "a column the database lacks": (
            text.replace(b'{"thread":{', b'{"thread":{"colour":"red",', 1),
            "the database's threads has no column 'colour'",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not json",
        "not an export",
        "a newer version",
        "cut mid-line",
        "cut between lines",
        "empty",
        "a record of no kind",
        "counts that differ",
        "a column the database lacks",
    ],
)
def test_a_bad_file_is_refused_and_nothing_is_written(backend, tmp_path, case):
    migrated(backend)
    fill(backend)
    text = export_text(backend, tmp_path / "a.jsonl")
    content, says = damaged(text)[case]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    with another(backend, tmp_path) as target:
        migrated(target)
        before = state(target)
        with pytest.raises(ImportRefusedError, match="nothing was imported") as refused:
            import_sessions(bad, target.target)
        assert says in str(refused.value)
        assert state(target) == before


def test_a_database_with_pending_migrations_is_refused(tmp_path, legacy_db):
    path = legacy_db(3)
    db = migrated(Backend("sqlite", str(tmp_path / "s.db")))
    fill(db)
    export_text(db, tmp_path / "a.jsonl")
    before = Path(path).read_bytes()
    with pytest.raises(MigrationError, match="pending migrations"):
        import_sessions(tmp_path / "a.jsonl", path)
    assert Path(path).read_bytes() == before


# -- a killed import -------------------------------------------------------------------------


def big_export(path: Path, threads: int = 60, messages: int = 1000) -> None:
    """A valid export of one session with `threads` × `messages` messages, written directly."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(record_text({"format": "sessionorm-export", "version": 1}) + "\n")
        session = {
            "id": "big",
            "name": "big",
            "ampPrompt": "p",
            "repoRoot": "/r",
            "baseBranch": "main",
            "branchName": "b",
            "worktreePath": "/r/w",
            "status": "idle",
            "createdAt": "2026-01-01T00:00:00.000Z",
        }
        out.write(record_text({"session": session}) + "\n")
        for t in range(threads):
            thread = {
                "id": f"T-{t}",
                "sessionId": "big",
                "name": f"t{t}",
                "createdAt": f"2026-01-01T00:00:{t % 60:02d}.000Z",
                "updatedAt": "2026-01-01T00:00:00.000Z",
                "status": "active",
            }
            out.write(record_text({"thread": thread}) + "\n")
            for m in range(messages):
                message = {
                    "id": f"m-{t}-{m}",
                    "threadId": f"T-{t}",
                    "role": "user",
                    "content": f"message {m} of thread {t} " + "words " * 30,
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "idx": m,
                }
                out.write(record_text({"message": message}) + "\n")
        counts = {"sessions": 1, "threads": threads, "agent_sessions": 0, "messages": threads * messages}
        out.write(record_text({"end": {**counts, "agent_items": 0}}) + "\n")


def writing(db: Backend, process: subprocess.Popen) -> bool:
    """Whether the import has begun writing rows (and is still running)."""
    if process.poll() is not None:
        return False
    if db.is_pg:
        found = db.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        )
        return found[0][0] > 0
    wal = Path(db.target + "-wal")
    return wal.exists() and wal.stat().st_size > 2_000_000


@pytest.mark.slow
def test_a_sigkilled_import_leaves_the_old_database_intact(backend, tmp_path):
    migrated(backend)
    fill(backend, nul=False)
    big_export(tmp_path / "big.jsonl")
    before = state(backend)
    rows_before = backend.snapshot()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionorm", "import", str(tmp_path / "big.jsonl"), *backend.cli_args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 60
    while not writing(backend, process):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the import never began writing"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    if not backend.is_pg:
        assert Path(backend.target).read_bytes() == before  # the main file: not a byte written
    else:
        deadline = time.monotonic() + 30  # the server notices the client is gone, rolls back
        while writing(backend, process) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert backend.snapshot() == rows_before
    assert commands.verify(backend.target).ok
    # and the same file imports completely afterwards
    report = import_sessions(tmp_path / "big.jsonl", backend.target)
    assert report.messages == 60_000


# -- markdown --------------------------------------------------------------------------------


def test_markdown_follows_the_apps_session_export_layout(tmp_path):
    db = migrated(Backend("sqlite", str(tmp_path / "s.db")))
    with db.store() as store:
        session = store.create_session(
            name="Fix login",
            amp_prompt="Make it work\n```\nnested fence\n```",
            repo_root="/src/app",
            id="s-1",
            createdAt="2026-11-01T10:00:00.000Z",
            modelOverride="gpt-5",
            branchName="amp/fix",
            worktreePath="/w",
        )
        thread = store.create_thread(session, "Feature Discussion")
        store.add_thread_messages(
            thread, [("user", "Hello!"), ("assistant", "Hi.\n\nTwo paragraphs."), ("system", "s")]
        )
        with db.connect() as con:
            con.execute("UPDATE thread_messages SET \"createdAt\" = '2026-11-01T10:00:01.000Z'")
            con.execute("PRAGMA foreign_keys = OFF")  # a fixed thread id, its messages moved with it
            con.execute("UPDATE threads SET id = 'T-1', \"createdAt\" = '2026-11-01T10:00:00.500Z'")
            con.execute("UPDATE thread_messages SET \"threadId\" = 'T-1'")
        store.create_session(
            name="Second",
            amp_prompt=None,
            repo_root="/r",
            id="s-2",
            createdAt="2026-11-02T00:00:00.000Z",
            branchName="b",
            worktreePath="/w2",
            scriptCommand="pytest",
        )
    out = tmp_path / "all.md"
    report = export_sessions(db.target, out, format="markdown")
    assert (report.sessions, report.threads, report.messages) == (2, 1, 3)
    assert out.read_text(encoding="utf-8") == EXPECTED_MARKDOWN


EXPECTED_MARKDOWN = """\
# Session Export: Fix login

## Session Details
- **Session ID**: s-1
- **Repository**: /src/app
- **Base Branch**: main
- **Branch**: amp/fix
- **Status**: idle
- **Mode**: async
- **Created**: 2026-11-01T10:00:00.000Z
- **Last Run**: Never
- **Model Override**: gpt-5

## Initial Prompt
````
Make it work
```
nested fence
```
````

## Thread: Feature Discussion
- **Thread ID**: T-1
- **Created**: 2026-11-01T10:00:00.500Z
- **Status**: active

### 🧑‍💻 User (2026-11-01T10:00:01.000Z)

Hello!

### 🤖 Assistant (2026-11-01T10:00:01.000Z)

Hi.

Two paragraphs.

### 🔧 System (2026-11-01T10:00:01.000Z)

s

---

# Session Export: Second

## Session Details
- **Session ID**: s-2
- **Repository**: /r
- **Base Branch**: main
- **Branch**: b
- **Status**: idle
- **Mode**: async
- **Created**: 2026-11-02T00:00:00.000Z
- **Last Run**: Never
- **Test Command**: pytest

## Initial Prompt
```
No prompt provided
```

"""


# -- the command line --------------------------------------------------------------------------


def test_the_cli_writes_the_same_jsonl_to_stdout_and_json_reports(backend, tmp_path):
    migrated(backend)
    fill(backend)
    out = tmp_path / "a.jsonl"
    to_file = cli(backend, "export", "-o", out, "--json", cwd=tmp_path)
    assert to_file.returncode == 0, to_file.stderr
    report = json.loads(to_file.stdout)
    assert report["path"] == str(out) and report["format"] == "jsonl"
    assert (report["sessions"], report["threads"], report["messages"]) == (4, 5, 8)
    assert (report["agent_sessions"], report["agent_items"]) == (1, 3)
    assert set(report) == {
        "database",
        "format",
        "path",
        "sessions",
        "threads",
        "messages",
        "agent_sessions",
        "agent_items",
        "seconds",
    }
    to_stdout = cli(backend, "export", cwd=tmp_path)
    assert to_stdout.returncode == 0 and to_stdout.stderr == ""
    assert to_stdout.stdout.encode() == out.read_bytes()
    refused = cli(backend, "export", "--json", cwd=tmp_path)
    assert refused.returncode == 2 and "--json needs -o FILE" in one_error_line(refused.stderr)
    assert json.loads(refused.stdout)["exit"] == 2
    with another(backend, tmp_path) as target:
        migrated(target)
        imported = cli(target, "import", out, "--json", cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
        doc = json.loads(imported.stdout)
        assert set(doc) == {
            "database",
            "path",
            "sessions",
            "threads",
            "agent_sessions",
            "messages",
            "agent_items",
            "skipped",
            "seconds",
        }
        assert (doc["sessions"], doc["messages"], doc["skipped"]) == (4, 8, 0)
        again = cli(target, "import", out, cwd=tmp_path)
        assert again.returncode == 0
        assert "imported 0 sessions, 0 threads, 0 messages" in again.stdout
        assert "skipped 18 rows present and identical" in again.stdout
        (tmp_path / "bad.jsonl").write_text("nonsense\n")
        bad = cli(target, "import", tmp_path / "bad.jsonl", "--json", cwd=tmp_path)
        assert bad.returncode == 2
        assert "line 1: not JSON" in one_error_line(bad.stderr)
        assert json.loads(bad.stdout)["exit"] == 2


def test_markdown_and_an_unknown_format_on_the_cli(tmp_path):
    db = migrated(Backend("sqlite", str(tmp_path / "s.db")))
    fill(db)
    shown = cli(db, "export", "--format", "markdown")
    assert shown.returncode == 0
    assert shown.stdout.startswith("# Session Export: Old one\n")
    assert shown.stdout.count("# Session Export: ") == 4
    wrong = cli(db, "export", "--format", "csv")
    assert wrong.returncode == 2 and "csv" in one_error_line(wrong.stderr)
    with pytest.raises(ValidationError, match="--format"):
        export_sessions(db.target, tmp_path / "x", format="csv")


def test_progress_lines_name_the_rows_and_rate(tmp_path, monkeypatch):
    import sessionorm.exporting
    import sessionorm.importing

    monkeypatch.setattr(sessionorm.exporting, "PROGRESS_EVERY", 0.0)  # every chance, not every 0.5 s
    monkeypatch.setattr(sessionorm.importing, "PROGRESS_EVERY", 0.0)
    big_export(tmp_path / "big.jsonl", threads=3, messages=3000)
    db = migrated(Backend("sqlite", str(tmp_path / "s.db")))
    imported: list[str] = []
    import_sessions(tmp_path / "big.jsonl", db.target, progress=imported.append)
    assert imported and all(re.fullmatch(r"imported [\d,]+ lines \([\d,]+/s\)", line) for line in imported)
    exported: list[str] = []
    export_sessions(db.target, tmp_path / "again.jsonl", progress=exported.append)
    assert exported[-1].startswith("exported 1 sessions, 3 threads, 9,000 messages (")
    end = lines((tmp_path / "again.jsonl").read_bytes())[-1]["end"]
    assert (end["sessions"], end["threads"], end["messages"]) == (1, 3, 9000)


def test_a_bad_since_is_a_usage_error_and_nothing_is_written(tmp_path):
    db = migrated(Backend("sqlite", str(tmp_path / "s.db")))
    result = cli(db, "export", "--since", "yesterday", "-o", tmp_path / "out.jsonl")
    assert result.returncode == 2
    assert "neither an age" in one_error_line(result.stderr)
    assert not (tmp_path / "out.jsonl").exists()
