"""The store's own statements, sent straight to the driver for speed, are logged as peewee logs
everything else: `sql_log.capturing` sees them, and `--verbose` prints them (issue 23)."""

from __future__ import annotations

from pathlib import Path

from legacy import make_legacy_db
from pg_support import pg_database
from test_cli_contract import sessionorm

from sessionorm import SessionStore, copy
from sessionorm.sql_log import capturing


def store_statements(store: SessionStore) -> list[tuple[str, tuple]]:
    seen: list[tuple[str, tuple]] = []
    with capturing(lambda sql, params: seen.append((sql, params))):
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session.id, "t")
        store.add_thread_message(thread, "user", "one")
        store.add_thread_messages(thread, [("user", "two"), ("assistant", "three")])
        assert [m.content for m in store.get_thread_messages(thread)] == ["one", "two", "three"]
    return seen


def test_the_stores_statements_reach_the_sql_log_on_sqlite(tmp_path: Path):
    with SessionStore(tmp_path / "s.sqlite") as store:
        seen = store_statements(store)
    text = [sql for sql, _ in seen]
    assert any(s.startswith("INSERT INTO sessions") for s in text), text
    assert any(s.startswith("INSERT INTO") and "thread_messages" in s and "2 rows" in s for s in text), text
    assert any("FROM thread_messages" in s and s.startswith("SELECT") for s in text), text
    assert any("one" in map(str, params or ()) for _, params in seen)  # parameters travel with it


def test_the_stores_statements_reach_the_sql_log_on_postgres(tmp_path: Path):
    source = tmp_path / "s.sqlite"
    SessionStore(source).close()
    with pg_database("postgresql") as server:
        copy(source, server.target)
        with SessionStore(server.target) as store:
            text = [sql for sql, _ in store_statements(store)]
    assert any(s.startswith("INSERT INTO") and "thread_messages" in s and "2 rows" in s for s in text), text
    assert any(s.startswith("INSERT INTO sessions") for s in text), text


def test_verbose_prints_the_stores_statements(tmp_path: Path):
    path = make_legacy_db(tmp_path / "legacy.sqlite", 5)
    assert sessionorm("migrate", "--db-path", path).returncode == 0
    done = sessionorm("verify", "--exercise", "--verbose", "--db-path", path)
    assert done.returncode == 0, done.stderr
    shown = done.stdout + done.stderr
    assert 'INSERT INTO "thread_messages"' in shown  # the exercise's appends, through the store
