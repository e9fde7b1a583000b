"""`SessionormSession` (the OpenAI Agents SDK's Session) on SQLite, PostgreSQL and pgbouncer:
exact items, the orchestrator's view of them, concurrency, bad input, and what the commands
(`verify`, `copy`, `backup`, `rollback`) make of them. The SDK's own tests: tests/agents_sdk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import workers
from cli_support import invoke
from pg_support import Backend

from sessionorm import SessionStore
from sessionorm.agents import SessionormSession
from sessionorm.models import ROLES

NUL = "\x00"
ITEMS: list[dict] = [
    {"role": "user", "content": "What's the weather in Paris? 😊"},
    {"role": "developer", "content": "Answer briefly."},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "And this picture?"},
            {"type": "input_image", "image_url": "https://example.com/p.png", "detail": "auto"},
        ],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "The user wants weather."}],
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": f"sunny{NUL}22°C"},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Sunny, 22°C ☀️", "annotations": [], "logprobs": []}],
    },
    {"type": "some_future_item", "payload": {"nested": [1, 2.5, None, True, "\ud800"]}, "z": -1, "a": 10**18},
    {"role": "user", "content": f"NUL in text: a{NUL}b", f"key{NUL}with NUL": [NUL]},
    {"role": "assistant", "content": "x" * (1 << 20)},  # 1 MiB
]


def run(coroutine):
    return asyncio.run(coroutine)


def open_session(backend: Backend, key: str = "user-42", **options) -> SessionormSession:
    return SessionormSession(key, backend.target, **options)


def counts(backend: Backend) -> dict[str, int]:
    tables = ["sessions", "threads", "thread_messages", "sessionorm_agent_sessions", "sessionorm_agent_items"]
    return {t: backend.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


# -- items, exactly --------------------------------------------------------------------------


def test_every_item_round_trips_exactly(backend: Backend) -> None:
    with open_session(backend) as session:
        run(session.add_items(ITEMS[:3]))
        run(session.add_items(ITEMS[3:]))
    with open_session(backend) as again:  # another connection, after the first closed
        got = run(again.get_items())
        assert got == ITEMS
        assert [json.dumps(item) for item in got] == [json.dumps(item) for item in ITEMS]  # key order too
        assert run(again.get_items(2)) == ITEMS[-2:]
        assert run(again.pop_item()) == ITEMS[-1]
        assert run(again.get_items()) == ITEMS[:-1]


def test_the_orchestrator_shows_a_readable_conversation(backend: Backend) -> None:
    with open_session(backend) as session:
        run(session.add_items(ITEMS))
    with backend.store() as store:
        (orchestrator,) = store.list_sessions()
        assert orchestrator.name == "Agent session user-42"
        (thread,) = store.get_session_threads(orchestrator.id)
        assert thread.id.startswith("T-") and thread.message_count == len(ITEMS)
        messages = store.get_thread_messages(thread.id)
    shown = [(m.role, m.content) for m in messages]
    assert all(role in ROLES for role, _ in shown)
    assert shown[:7] == [
        ("user", "What's the weather in Paris? 😊"),
        ("system", "Answer briefly."),
        ("user", "And this picture?\n[input_image: https://example.com/p.png]"),
        ("assistant", "(reasoning) The user wants weather."),
        ("assistant", 'get_weather({"city": "Paris"})'),
        ("system", "sunny\N{SYMBOL FOR NULL}22°C"),
        ("assistant", "Sunny, 22°C ☀️"),
    ]
    assert shown[7][0] == "system" and shown[7][1].startswith("(some_future_item) {")
    assert shown[8] == ("user", "NUL in text: a\N{SYMBOL FOR NULL}b")
    assert all(NUL not in content for _, content in shown)
    assert [m.idx for m in messages] == list(range(len(ITEMS)))


def test_messages_written_by_others_are_items_too(backend: Backend) -> None:
    with open_session(backend) as session:
        run(session.add_items([ITEMS[0]]))
        (info,) = SessionormSession.list(backend.target)
        with backend.store() as store:
            store.add_thread_message(info.thread_id, "assistant", "written by the app")
        assert run(session.get_items()) == [ITEMS[0], {"role": "assistant", "content": "written by the app"}]
        assert run(session.pop_item()) == {"role": "assistant", "content": "written by the app"}


def test_an_item_whose_stored_json_was_damaged_comes_back_as_its_message(backend: Backend) -> None:
    with open_session(backend) as session:
        run(session.add_items([{"role": "user", "content": "hello", "id": "x"}]))
        with backend.connect() as con:
            con.execute("UPDATE sessionorm_agent_items SET item = 'not json {{{'")
        assert run(session.get_items()) == [{"role": "user", "content": "hello"}]


# -- the protocol's edges --------------------------------------------------------------------


def test_limit_pop_clear_and_separate_sessions(backend: Backend) -> None:
    items = [{"role": "user", "content": f"m{i}"} for i in range(6)]
    with open_session(backend, "a") as a, open_session(backend, "b", session_settings={"limit": 2}) as b:
        assert run(a.pop_item()) is None and run(a.get_items()) == []
        run(a.add_items(items))
        run(b.add_items(items[:3]))
        assert (
            run(a.get_items(0)) == [] and run(a.get_items(4)) == items[2:] and run(a.get_items(99)) == items
        )
        assert run(b.get_items()) == items[1:3] and run(b.get_items(limit=3)) == items[:3]
        assert run(b.pop_item()) == items[2]
        run(a.clear_session())
        assert run(a.get_items()) == [] and run(a.pop_item()) is None
        assert run(b.get_items(10)) == items[:2]
        run(a.add_items(items[:1]))  # a cleared session goes on in the same thread
        assert run(a.get_items()) == items[:1]
    assert counts(backend)["sessions"] == 2 and counts(backend)["threads"] == 2


def test_metadata_and_the_list_of_agent_sessions(backend: Backend) -> None:
    with open_session(backend, "a") as a, open_session(backend, "b") as b:
        run(a.set_metadata({"user": "ann", "tags": ["x", NUL]}))  # makes the session: no items yet
        run(b.add_items(ITEMS[:3]))
        assert run(a.get_metadata()) == {"user": "ann", "tags": ["x", NUL]} and run(b.get_metadata()) == {}
        run(a.add_items(ITEMS[:1]))
        listed = SessionormSession.list(backend.target)
    assert [(i.session_id, i.item_count) for i in listed] == [("a", 1), ("b", 3)]  # latest written first
    assert listed[0].metadata == {"user": "ann", "tags": ["x", NUL]} and listed[1].metadata == {}
    assert listed[0].last_activity >= listed[1].last_activity >= listed[1].created_at
    with backend.store(readonly=True) as store:
        assert [i.session_id for i in store.agent_sessions()] == ["a", "b"]
        assert store.get_session(listed[1].orchestrator_session_id).name == "Agent session b"


def test_a_deleted_orchestrator_session_starts_over(backend: Backend) -> None:
    with open_session(backend) as session:
        run(session.add_items(ITEMS[:2]))
        (info,) = SessionormSession.list(backend.target)
        with backend.store() as store:
            store.delete_session(info.orchestrator_session_id)
        assert run(session.get_items()) == []
        run(session.add_items(ITEMS[2:3]))
        assert run(session.get_items()) == ITEMS[2:3]
    assert counts(backend) == dict.fromkeys(counts(backend), 1)


def test_memory_databases_are_private_and_removed_at_close() -> None:
    one, two = SessionormSession("s", ":memory:"), SessionormSession("s", ":memory:")
    run(one.add_items(ITEMS[:1]))
    assert run(two.get_items()) == []
    folder = Path(one.location).parent
    assert folder.exists()
    one.close()
    two.close()
    assert not folder.exists()


# -- bad input changes nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [[ITEMS[0], {"content": object()}], [ITEMS[0], "not a dict"], [{"x": float("nan"), 1: {2}}]]
)
def test_an_item_that_is_not_json_is_refused_and_nothing_is_written(backend: Backend, bad: list) -> None:
    with open_session(backend) as session:
        run(session.add_items(ITEMS[:1]))
        before = counts(backend), backend.query("SELECT item FROM sessionorm_agent_items")
        with pytest.raises(TypeError, match="item 1|item 0"):
            run(session.add_items(bad))
        assert (counts(backend), backend.query("SELECT item FROM sessionorm_agent_items")) == before
        run(session.add_items(ITEMS[1:2]))  # still usable
        assert run(session.get_items()) == ITEMS[:2]


def test_a_closed_session_refuses_everything(backend: Backend) -> None:
    session = open_session(backend)
    session.close()
    session.close()  # twice is fine
    for call in (
        session.add_items([]),
        session.add_items(ITEMS[:1]),
        session.get_items(),
        session.pop_item(),
    ):
        with pytest.raises(RuntimeError, match="SessionormSession is closed"):
            run(call)
    assert counts(backend)["sessions"] == 0


def test_a_database_with_pending_migrations_is_refused_unchanged(legacy_db, file_digest) -> None:
    from sessionorm.errors import NeedsMigrationError

    path = legacy_db(5)
    before = file_digest(path)
    with pytest.raises(NeedsMigrationError, match="sessionorm migrate"):
        SessionormSession("s", path)
    assert file_digest(path) == before


def test_the_package_imports_without_the_sdk() -> None:
    code = (
        "import sys; sys.modules['agents'] = None\n"
        "import sessionorm; from sessionorm import SessionStore\n"
        "try:\n    import sessionorm.agents\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'sessionorm[agents]'" in out


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.slow
def test_four_processes_adding_to_one_new_session_lose_nothing(backend: Backend) -> None:
    n, per = 4, 50
    results, start = workers.SPAWN.Queue(), workers.SPAWN.Barrier(n)
    procs = workers.start_processes(
        workers.agent_add_items, [(backend.target, "shared", per, w, start, results) for w in range(n)]
    )
    reports = workers.collect(results, n, procs)
    assert [r for r in reports if r[1] != "ok"] == []
    with open_session(backend, "shared") as session:
        contents = [item["content"] for item in run(session.get_items())]
    assert len(contents) == n * per
    for w in range(n):
        assert [c for c in contents if c.startswith(f"worker {w} ")] == [
            f"worker {w} item {i}" for i in range(per)
        ]
    assert counts(backend) == {
        "sessions": 1,
        "threads": 1,
        "thread_messages": n * per,
        "sessionorm_agent_sessions": 1,
        "sessionorm_agent_items": n * per,
    }


def test_sixteen_tasks_at_once(backend: Backend) -> None:
    async def task(session: SessionormSession, t: int) -> None:
        for i in range(5):
            await session.add_items([{"role": "user", "content": f"task {t} item {i}"}])
            await session.get_items(3)

    async def main() -> None:
        shared = open_session(backend, "shared")
        own = [open_session(backend, "shared") for _ in range(4)]  # other instances, same session
        try:
            await asyncio.gather(*(task(shared if t % 2 else own[t % 4], t) for t in range(16)))
            contents = [item["content"] for item in await shared.get_items()]
        finally:
            for session in (shared, *own):
                session.close()
        assert len(contents) == 80
        for t in range(16):
            assert [c for c in contents if c.startswith(f"task {t} ")] == [
                f"task {t} item {i}" for i in range(5)
            ]

    run(main())
    assert counts(backend)["sessionorm_agent_sessions"] == 1


def test_a_cancelled_add_finishes_and_then_raises_the_cancellation(tmp_path: Path) -> None:
    """The write waits for another process's lock; its caller is cancelled meanwhile. The
    cancellation is raised only once the write's outcome is known, and the item is there."""
    db = tmp_path / "agents.db"
    with SessionormSession("s", db) as session:
        run(session.add_items(ITEMS[:1]))
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")

        async def cancel_while_waiting() -> None:
            task = asyncio.create_task(session.add_items(ITEMS[1:2]))
            await asyncio.sleep(0.3)
            task.cancel()
            await asyncio.sleep(0.1)
            assert not task.done()  # still waiting for the outcome
            holder.execute("COMMIT")
            with pytest.raises(asyncio.CancelledError):
                await task

        try:
            run(cancel_while_waiting())
        finally:
            holder.close()
        assert run(session.get_items()) == ITEMS[:2]


# -- the commands know the agent tables ------------------------------------------------------


def test_verify_is_clean_after_agent_use(backend: Backend) -> None:
    with open_session(backend, "a") as a, open_session(backend, "b") as b:
        run(a.add_items(ITEMS))
        run(b.add_items(ITEMS[:2]))
        run(b.pop_item())
        run(a.clear_session())
        run(a.add_items(ITEMS[:3]))
    result = invoke("verify", *backend.cli_args)
    assert result.exit_code == 0, result.output


def test_verify_finds_an_agent_session_pointing_into_another_session(backend: Backend) -> None:
    with open_session(backend, "a") as a, open_session(backend, "b") as b:
        run(a.add_items(ITEMS[:1]))
        run(b.add_items(ITEMS[:1]))
    with backend.connect() as con:
        con.execute(  # a's thread moved into b's orchestrator session
            'UPDATE threads SET "sessionId" = (SELECT "sessionId" FROM sessionorm_agent_sessions'
            ' WHERE "agentSessionId" = \'b\') WHERE id = (SELECT "threadId" FROM'
            " sessionorm_agent_sessions WHERE \"agentSessionId\" = 'a')"
        )
    result = invoke("verify", *backend.cli_args)
    assert result.exit_code == 1
    assert "1 agent session's thread belongs to another session" in result.output


def test_copy_carries_the_items_exactly(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with SessionormSession("s", source) as session:
        run(session.add_items(ITEMS))
        run(session.set_metadata({"k": NUL}))
    target = backend.target if backend.is_pg else str(tmp_path / "copy.db")
    result = invoke("copy", "--from", source, "--to", target)
    assert result.exit_code == 0, result.output
    with SessionormSession("s", target) as copied:
        assert run(copied.get_items()) == ITEMS
        assert run(copied.get_metadata()) == {"k": NUL}
    if backend.is_pg:  # and back from PostgreSQL into a new file
        back = tmp_path / "back.db"
        result = invoke("copy", "--from", target, "--to", back)
        assert result.exit_code == 0, result.output
        with SessionormSession("s", back) as returned:
            assert run(returned.get_items()) == ITEMS
    assert (
        invoke("verify", *(["--db-url", target] if backend.is_pg else ["--db-path", target])).exit_code == 0
    )


def test_backup_holds_the_items(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    with SessionormSession("s", db) as session:
        run(session.add_items(ITEMS[:4]))
        result = invoke("backup", "--db-path", str(db))  # while the session is open
        assert result.exit_code == 0, result.output
    (copy,) = [p for p in tmp_path.iterdir() if p.name.startswith("agents.db.backup-")]
    with SessionormSession("s", copy) as restored:
        assert run(restored.get_items()) == ITEMS[:4]


def test_rollback_refuses_to_drop_items_then_forced_drops_only_the_agent_tables(backend: Backend) -> None:
    with open_session(backend) as session:
        run(session.add_items(ITEMS[:3]))
    assert invoke("rollback", *backend.cli_args).exit_code == 0  # 0007, the search index, first
    before = counts(backend)
    refused = invoke("rollback", *backend.cli_args)
    assert refused.exit_code != 0 and "3 agent items" in refused.output
    assert counts(backend) == before
    forced = invoke("rollback", "--force", *backend.cli_args)
    assert forced.exit_code == 0, forced.output
    with backend.store(migrate=True) as store:  # migrated again: the tables are back, empty
        assert [len(store.get_thread_messages(t.id)) for s in store.list_sessions() for t in s.threads] == [3]
    assert counts(backend)["sessionorm_agent_items"] == 0
    assert invoke("verify", *backend.cli_args).exit_code == 0


def test_a_session_id_that_is_not_text_is_refused_and_nothing_stays_open(tmp_path: Path) -> None:
    from sessionorm.errors import ValidationError

    with pytest.raises(ValidationError, match="agent session id must be text"):
        SessionormSession(42, tmp_path / "a.db")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.db"]  # closed: no -wal, no -shm left


def test_damaged_items_that_still_parse_together_are_read_one_by_one(backend: Backend) -> None:
    """Items are parsed as one JSON array; a damaged item that would merge into its neighbours
    there (`{}, {}`) is caught by the count, and each item is then read on its own."""
    with open_session(backend) as session:
        a, b = {"role": "user", "content": "a"}, {"role": "user", "content": "b"}
        run(session.add_items([a, {**b, "id": "b"}]))
        with backend.connect() as con:
            con.execute(
                backend.sql("UPDATE sessionorm_agent_items SET item = ? WHERE item LIKE ?"),
                ('{"x": 1}, {"y": 2}', '%"b"%'),
            )
        assert run(session.get_items()) == [a, b]


def test_the_agent_reads_search_indexes_and_never_scan_a_table(tmp_path: Path) -> None:
    """Every statement of one agent session is a search (the list of them all reads that table)."""
    from sessionorm.agent_memory import AgentMemory

    db = tmp_path / "plans.db"
    with SessionStore(db) as store:
        memory = AgentMemory(store)
        for key in ("a", "b", "c"):
            memory.add(key, [{"role": "user", "content": f"{key} {i}"} for i in range(50)])
        connection = store.db.connection()
        for name, sql in memory.sql.items():
            if name == "list" or not sql.lstrip().startswith(("SELECT", "DELETE", "UPDATE")):
                continue
            params = tuple("a" if i == 0 else 5 for i in range(sql.count("?")))
            plan = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql, params)]
            assert [line for line in plan if line.startswith("SCAN")] == [], (name, plan)
