"""From a script or a REPL: relations on returned rows, listing sessions, rows where ids go,
and typed one-line errors instead of driver exceptions."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from sessionorm import NotFoundError, SessionormError, SessionStore, ValidationError


@pytest.fixture
def two_stores(tmp_path: Path):
    """Two stores open at once, on two files, each with one session, thread and 3 messages."""
    stores = []
    for name in ("a", "b"):
        store = SessionStore(tmp_path / f"{name}.sqlite")
        session = store.create_session(name=f"session {name}", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, f"thread {name}").id
        store.add_thread_messages(
            thread, [("user", f"{name}0"), ("assistant", f"{name}1"), ("user", f"{name}2")]
        )
        stores.append(store)
    yield stores
    for store in stores:
        store.close()


def test_relations_of_returned_rows_go_to_their_own_store(two_stores):
    for store, name in zip(two_stores, "ab", strict=True):
        session = store.list_sessions()[0]
        [thread] = session.threads
        assert thread.name == f"thread {name}" and thread.message_count == 3
        assert thread.session.name == f"session {name}"
        assert [m.content for m in thread.messages] == [f"{name}0", f"{name}1", f"{name}2"]
        assert [m.idx for m in thread.messages] == [0, 1, 2]
        message = thread.messages[1]
        assert message.thread.id == thread.id and message.thread.name == f"thread {name}"
        assert store.get_thread(thread.id).session.id == session.id


def test_relations_see_rows_added_after_the_row_was_read(two_stores):
    store = two_stores[0]
    session = store.list_sessions()[0]
    thread = session.threads[0]
    store.add_thread_message(thread, "assistant", "later")
    assert [m.content for m in thread.messages][-1] == "later"
    store.create_thread(session, "second")
    assert len(session.threads) == 2


def test_a_relation_of_a_deleted_parent_raises_not_found(two_stores):
    store = two_stores[0]
    thread = store.list_sessions()[0].threads[0]
    message = thread.messages[0]
    store.delete_thread(thread)
    with pytest.raises(NotFoundError):
        message.thread  # noqa: B018


def test_list_sessions_newest_first_with_status_and_limit(tmp_path):
    with SessionStore(tmp_path / "s.sqlite") as store:
        made = [
            store.create_session(
                name=f"s{i}",
                amp_prompt="p",
                repo_root="/r",
                created_at=f"2025-08-0{i + 1}T00:00:00.000Z",
                status="done" if i % 2 else "idle",
            )
            for i in range(5)
        ]
        assert [s.name for s in store.list_sessions()] == ["s4", "s3", "s2", "s1", "s0"]
        assert [s.name for s in store.list_sessions(status="done")] == ["s3", "s1"]
        assert [s.name for s in store.list_sessions(limit=2)] == ["s4", "s3"]
        assert store.list_sessions(status="nope") == []
        assert store.list_sessions()[0].id == made[4].id
        with pytest.raises(ValidationError, match="limit must be a non-negative integer"):
            store.list_sessions(limit=-1)


def test_every_id_parameter_takes_the_row_object(store, session):
    thread_id = store.create_thread(session, "by row").id
    thread = store.get_thread(thread_id)
    message_id = store.add_thread_message(thread, "user", "Hello!").id
    assert store.add_thread_messages(thread, [("assistant", "Hi")])
    assert [m.id for m in store.get_thread_messages(thread, last=2)][0] == message_id
    store.update_thread_timestamp(thread)
    assert store.get_session_threads(session)[0].id == thread_id
    assert store.get_session(session).id == session.id
    store.delete_thread(thread)
    store.delete_session(session)
    with pytest.raises(NotFoundError):
        store.get_session(session)


def test_a_row_of_the_wrong_kind_is_refused_before_any_sql(store, session, sql_log):
    statements = sql_log(store)
    with pytest.raises(ValidationError, match="thread_id must be a Thread or its id, not a Session"):
        store.add_thread_message(session, "user", "x")
    assert statements == []


def test_a_duplicate_session_id_is_a_validation_error_and_writes_nothing(store, session, dump, db_path):
    before = dump(db_path)
    with pytest.raises(ValidationError) as raised:
        store.create_session(name="again", amp_prompt="p", repo_root="/r", id=session.id)
    assert str(raised.value) == f"a session with id {session.id!r} already exists"
    assert dump(db_path) == before


def test_a_not_null_column_of_another_layout_is_named_before_any_write(tmp_path, sql_log):
    path = tmp_path / "extra.sqlite"
    with SessionStore(path) as store:
        store.db.execute_sql("ALTER TABLE sessions ADD COLUMN \"ownerId\" TEXT NOT NULL DEFAULT 'x'")
    con = sqlite3.connect(path)  # a NOT NULL column without a default, as another app might add
    con.executescript(
        "PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = replace(sql, "
        "'\"ownerId\" TEXT NOT NULL DEFAULT ''x''', '\"ownerId\" TEXT NOT NULL')"
        " WHERE name = 'sessions';"
    )
    con.close()
    with SessionStore(path) as store:
        statements = sql_log(store)
        with pytest.raises(ValidationError) as raised:
            store.create_session(name="n", amp_prompt="p", repo_root="/r")
        assert str(raised.value) == (
            "sessions.ownerId is NOT NULL in this database and has no default: pass owner_id=…"
        )
        assert [s for s in statements if not s.startswith("PRAGMA")] == []  # only the column list read
        made = store.create_session(name="n", amp_prompt="p", repo_root="/r", owner_id="me")
        assert made.owner_id == "me"


def test_a_check_constraint_of_the_database_is_a_one_line_validation_error(tmp_path):
    path = tmp_path / "check.sqlite"
    with SessionStore(path) as store:
        store.db.execute_sql(
            "CREATE TRIGGER no_x BEFORE INSERT ON sessions WHEN NEW.name = 'x'"
            " BEGIN SELECT RAISE(ABORT, 'names may not be x'); END"
        )
        with pytest.raises(ValidationError) as raised:  # a trigger's ABORT is a constraint failure
            store.create_session(name="x", amp_prompt="p", repo_root="/r")
        assert str(raised.value) == "the database refused the session: names may not be x"
        assert store.list_sessions() == []


@pytest.mark.parametrize("bad", ["x", -1, math.nan, math.inf, True, [1]])  # None: the default
def test_busy_timeout_must_be_a_finite_number_of_seconds(tmp_path, bad):
    path = tmp_path / "never.sqlite"
    with pytest.raises(ValidationError) as raised:
        SessionStore(path, busy_timeout=bad)
    assert str(raised.value).startswith("busy_timeout must be a finite number of seconds >= 0, not ")
    assert not path.exists()


def test_messages_quote_at_most_about_80_characters_of_the_input(store):
    huge = "x" * 1_000_000
    for call in (
        lambda: store.get_thread(huge),
        lambda: store.get_session(huge),
        lambda: store.add_thread_message("t", huge, "c").id,
        lambda: SessionStore(busy_timeout=huge),
    ):
        with pytest.raises(SessionormError) as raised:
            call()
        assert len(str(raised.value)) < 200, str(raised.value)[:300]


def test_the_python_twins_are_the_functions_the_cli_calls(tmp_path, monkeypatch):
    import sessionorm
    from sessionorm import backup, commands, diff, makemigration, migrate, rollback, status, verify

    for twin in (migrate, status, verify, rollback, backup, diff, makemigration):
        assert callable(twin) and twin is getattr(commands, twin.__name__)
        assert "Args:" in twin.__doc__ and "Returns:" in twin.__doc__, twin.__name__
    assert "migrate, status, verify, rollback, backup, diff, makemigration" in sessionorm.__doc__

    path = tmp_path / "twins.sqlite"
    report = migrate(path)
    assert report.created and report.applied
    assert all(m.applied for m in status(path))
    assert verify(path).ok
    assert diff(path) == []
    saved = backup(path)
    assert saved.exists()
    monkeypatch.chdir(tmp_path)
    assert makemigration("nothing", path).path is None  # in sync: nothing written
    assert rollback(path).reverted
    assert not all(m.applied for m in status(path))


def test_message_rows_are_complete_models_built_lazily(store, session):
    """Pins the peewee internals the fast read relies on (see models.DataFromRow)."""
    from sessionorm import ThreadMessage

    thread = store.create_thread(session, "t").id
    store.add_thread_messages(thread, [("user", "a"), ("assistant", "b")])
    first, second = store.get_thread_messages(thread)
    assert "__data__" not in vars(first)  # nothing built until something reads a field
    assert (first.idx, first.role, first.content, first.thread_id) == (0, "user", "a", thread)
    assert first.__data__["content"] == "a" and first.created_at.tzinfo is not None
    assert second.thread.id == thread and repr(second).startswith("<ThreadMessage id=")
    made = ThreadMessage(id="x", role="user", content="c", idx=0)  # peewee's own constructor
    assert vars(made)["__data__"]["content"] == "c"
