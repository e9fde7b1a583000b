"""Full-text search (migration 7, `store.search`, `sessionorm search`) on SQLite, PostgreSQL and
pgbouncer: the query syntax people type, filters, ranking, what raw SQL writes, VACUUM, copy,
rollback, the batched build of an existing file, and queries that must never raise."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import workers
from cli_support import REPO_ROOT, invoke
from pg_support import Backend

from sessionorm import SessionStore
from sessionorm.errors import ValidationError

OPEN, CLOSE = "«", "»"
PAGE = "The login page fails with error 500 after the deploy"
HANDLER = "I will look at the login handler and the session cookie"
FIXED = "Fixed the cookie domain; login works again"
CONVERSATION = [
    ("user", PAGE),
    ("assistant", HANDLER),
    ("user", "Also the signup form is broken"),
    ("assistant", FIXED),
    ("system", "Thread migrated from legacy threadId: T-1234"),
]


def filled(backend: Backend) -> tuple[SessionStore, str, str, str]:
    """A store with two sessions: the conversation above in one thread, one more message elsewhere."""
    store = backend.store()
    one = store.create_session(name="Fix login", amp_prompt="p", repo_root="/r")
    thread = store.create_thread(one, "Login bug")
    store.add_thread_messages(thread, CONVERSATION)
    two = store.create_session(name="Other", amp_prompt="p", repo_root="/r")
    other = store.create_thread(two, "Elsewhere")
    store.add_thread_message(other, "user", "login from the other session")
    return store, one.id, thread.id, other.id


def found(store: SessionStore, query: str, **filters) -> list[str]:
    return sorted(hit.message.content for hit in store.search(query, **filters))


def test_words_phrases_or_and_exclusion(backend: Backend) -> None:
    store, _, _, _ = filled(backend)
    with store:
        assert found(store, "login cookie") == sorted(
            [
                "I will look at the login handler and the session cookie",
                "Fixed the cookie domain; login works again",
            ]
        )
        assert found(store, '"login page"') == [PAGE]
        assert found(store, "signup OR deploy") == sorted(["Also the signup form is broken", PAGE])
        assert found(store, "login -cookie -session") == [
            "The login page fails with error 500 after the deploy"
        ]
        assert store.count_matches("login") == 4
        assert found(store, "nothing-like-this") == [] and store.count_matches("zebra") == 0


def test_filters_narrow_by_session_thread_and_role(backend: Backend) -> None:
    store, session, thread, other = filled(backend)
    with store:
        assert len(store.search("login")) == 4
        assert len(store.search("login", session=session)) == 3
        assert found(store, "login", thread=other) == ["login from the other session"]
        assert found(store, "login", role="assistant", thread=thread) == sorted(
            [
                "I will look at the login handler and the session cookie",
                "Fixed the cookie domain; login works again",
            ]
        )
        assert store.count_matches("login", role="user") == 2
        hit = store.search("signup")[0]
        assert hit.message.thread.name == "Login bug" and hit.message.thread.session.name == "Fix login"
        assert f"{OPEN}signup{CLOSE}" in hit.snippet
        assert store.search("login", limit=2)[1].rank <= store.search("login", limit=2)[0].rank


def test_a_message_matching_every_word_ranks_first(backend: Backend) -> None:
    with backend.store() as store:
        thread = store.create_thread(store.create_session(name="r", amp_prompt="p", repo_root="/r"), "t")
        store.add_thread_messages(
            thread,
            [
                ("user", "alpha only here"),
                ("user", "alpha beta gamma all three"),
                ("user", "beta alone"),
                ("user", "nothing relevant"),
            ],
        )
        hits = store.search("alpha OR beta OR gamma")
        assert hits[0].message.content == "alpha beta gamma all three"
        assert hits[0].rank > hits[1].rank and len(hits) == 3


def test_what_raw_sql_writes_is_found_and_nothing_stale_stays(backend: Backend) -> None:
    store, _, thread, _ = filled(backend)
    with store:
        with backend.connect() as con:  # as the orchestrator app writes
            con.execute(
                backend.sql(
                    'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
                    " VALUES ('raw-1', ?, 'user', 'a zebra wrote this', '2025-01-01T00:00:00.000Z', 99)"
                ),
                (thread,),
            )
        assert found(store, "zebra") == ["a zebra wrote this"]
        with backend.connect() as con:
            con.execute("UPDATE thread_messages SET content = 'now about a giraffe' WHERE id = 'raw-1'")
        assert found(store, "zebra") == [] and found(store, "giraffe") == ["now about a giraffe"]
        with backend.connect() as con:
            con.execute("DELETE FROM thread_messages WHERE id = 'raw-1'")
        assert found(store, "giraffe") == []
        store.delete_thread(thread)
        assert found(store, "login") == ["login from the other session"]
    result = invoke("verify", *backend.cli_args)
    assert result.exit_code == 0, result.output


HOSTILE = [
    '"unbalanced',
    "AND",
    "OR OR",
    "*",
    "-",
    "-only",
    "((((",
    "NEAR(a b)",
    "content:login",
    "'; DROP TABLE thread_messages; --",
    "SELECT * FROM sessions",
    "login*",
    '"" ""',
    "\\",
    "日本語 テスト",
    "a" * 2000,
]


@pytest.mark.parametrize("query", HOSTILE)
def test_nothing_a_user_types_raises(backend: Backend, query: str) -> None:
    store, _, _, _ = filled(backend)
    with store:
        hits = store.search(query)
        assert isinstance(hits, list) and isinstance(store.count_matches(query), int)
        assert store.count_matches("login") == 4  # and nothing was dropped


@pytest.mark.parametrize("query", ["", "   ", None, 3])
def test_an_empty_query_is_a_validation_error(backend: Backend, query: object) -> None:
    store, _, _, _ = filled(backend)
    with store, pytest.raises(ValidationError):
        store.search(query)  # type: ignore[arg-type]


def test_vacuum_renumbers_nothing_the_index_relies_on(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    with SessionStore(db) as store:
        thread = store.create_thread(store.create_session(name="v", amp_prompt="p", repo_root="/r"), "t")
        store.add_thread_messages(thread, [("user", f"message {i} word{i % 7}") for i in range(300)])
        for message in store.get_thread_messages(thread)[::3]:
            store.delete_thread_message(message)
    with sqlite3.connect(db) as con:
        con.execute("VACUUM")
    with SessionStore(db) as store:
        hits = store.search("word3", limit=100)
        assert sorted(h.message.content for h in hits) == sorted(
            f"message {i} word3" for i in range(300) if i % 7 == 3 and i % 3 != 0
        )
    assert invoke("verify", "--db-path", db).exit_code == 0


def test_copy_carries_the_index(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with SessionStore(source) as store:
        thread = store.create_thread(store.create_session(name="c", amp_prompt="p", repo_root="/r"), "t")
        store.add_thread_messages(thread, CONVERSATION)
    target = backend.target if backend.is_pg else str(tmp_path / "copy.db")
    result = invoke("copy", "--from", source, "--to", target)
    assert result.exit_code == 0, result.output
    with SessionStore(target) as copied:
        assert found(copied, "login") == sorted(c for _, c in CONVERSATION if "login" in c.lower())


def test_rollback_removes_the_index_and_verify_is_clean(backend: Backend) -> None:
    store, _, _, _ = filled(backend)
    store.close()
    result = invoke("rollback", *backend.cli_args)
    assert result.exit_code == 0 and "reverted 0007_message_search" in result.stdout
    names = {
        r[0]
        for r in backend.query(
            "SELECT name FROM sqlite_master"
            if not backend.is_pg
            else "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal UNION SELECT relname FROM pg_class"
        )
    }
    assert not any(name.startswith("sessionorm_search") for name in names)
    # the messages stay; the next migrate indexes them again
    migrated = invoke("migrate", *backend.cli_args)
    assert migrated.exit_code == 0 and "search index: 6 messages indexed" in migrated.stdout
    assert invoke("verify", *backend.cli_args).exit_code == 0


def test_the_cli_prints_one_hit_per_line_and_exits_1_with_none(backend: Backend) -> None:
    filled(backend)[0].close()
    result = invoke("search", "login", "--role", "user", *backend.cli_args)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("user: " in line and f"{OPEN}login{CLOSE}" in line for line in lines)
    as_json = json.loads(invoke("search", '"login page"', "--json", *backend.cli_args).stdout)
    assert [(h["role"], h["idx"]) for h in as_json] == [("user", 0)]
    assert set(as_json[0]) == {"session", "thread", "message", "idx", "role", "created_at", "snippet", "rank"}
    none = invoke("search", "zebra", *backend.cli_args)
    assert none.exit_code == 1 and none.stdout == ""
    empty = invoke("search", "  ", *backend.cli_args)
    assert empty.exit_code == 2 and "a search needs a query" in empty.stderr


# -- the batched build of an existing file ---------------------------------------------------


def indexed_keys(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        try:
            return con.execute("SELECT count(*) FROM sessionorm_search_keys").fetchone()[0]
        except sqlite3.OperationalError:
            return -1


@pytest.mark.slow
def test_a_killed_build_resumes_and_other_writers_get_in_between(tmp_path: Path) -> None:
    """`sessionorm migrate` of a file with 150,000 messages, SIGKILLed while it indexes them:
    the batches committed so far stay (seen growing from another connection, so the write lock
    was not held throughout), and the next migrate indexes the rest."""
    db = tmp_path / "big.db"
    subprocess.run([sys.executable, "bench/legacy_gen.py", str(db), "300000"], check=True, cwd=REPO_ROOT)
    proc = subprocess.Popen(workers.cli_command("migrate", "--db-path", str(db)), stdout=subprocess.PIPE)
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        n = indexed_keys(db)
        if n > 0 and (not seen or n != seen[-1]):
            seen.append(n)
        if len(seen) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] < 150_000, seen
    again = subprocess.run(
        workers.cli_command("migrate", "--db-path", str(db)), capture_output=True, text=True, check=True
    )
    assert "search index:" in again.stdout and "messages indexed" in again.stdout
    assert indexed_keys(db) == 150_000
    with SessionStore(db) as store:
        assert store.count_matches('"migrated from legacy"') == 150_000
    verified = invoke("verify", "--db-path", db)
    assert verified.exit_code == 0 and "not in the search index" not in verified.stdout


def test_a_store_that_migrates_a_file_indexes_its_messages(legacy_db) -> None:
    """`SessionStore(path, migrate=True)` on a legacy file: migration 7, then its messages indexed
    (as `sessionorm migrate` does), so the first search already finds them."""
    path = legacy_db(20, threaded=12)
    with SessionStore(path, migrate=True) as store:
        assert store.count_matches('"migrated from legacy"') == 12


def test_verify_names_a_search_index_or_agent_table_that_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "gone.db"
    SessionStore(db).close()
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE sessionorm_agent_items")
        for name in ("insert", "delete", "update"):
            con.execute(f"DROP TRIGGER sessionorm_search_{name}")
        con.execute("DROP TABLE sessionorm_search")
    result = invoke("verify", "--db-path", db)
    assert result.exit_code == 1
    assert [line for line in result.stdout.splitlines() if line.startswith("problem:")] == [
        "problem: table sessionorm_agent_items is missing (migration 0006_agent_memory made it)",
        "problem: the search index is missing (migration 0007_message_search made it)",
    ]
