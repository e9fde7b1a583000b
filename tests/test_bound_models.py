"""The models answer peewee queries while a store is open (issue 23, bound models): selects,
joins, `fn.COUNT`, `.get()`, and `.save()` checked as the store's own writes are."""

from __future__ import annotations

import hashlib
from pathlib import Path

import peewee
import pytest
from peewee import fn
from pg_support import pg_database

from sessionorm import Session, SessionormError, SessionStore, Thread, ThreadMessage, ValidationError, copy


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def filled(path: Path, threads: int = 3) -> SessionStore:
    store = SessionStore(path)
    session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
    for n in range(threads):
        thread = store.create_thread(session.id, f"t{n}")
        store.add_thread_messages(thread, [("user", f"q{n}"), ("assistant", f"a{n}")])
    return store


def rows(store: SessionStore) -> list[tuple]:
    return sorted(store.db.execute_sql("SELECT id, name, status FROM threads").fetchall())


def test_models_query_the_open_store(tmp_path):
    with filled(tmp_path / "a.sqlite"):
        assert Session.select().count() == 1
        per_session = (
            Session.select(Session.name, fn.COUNT(Thread.id).alias("n")).join(Thread).group_by(Session.id)
        )
        assert [(s.name, s.n) for s in per_session] == [("s", 3)]
        counted = (
            Session.select(Session, fn.COUNT(Thread.id).alias("n")).join(Thread).group_by(Session.id).get()
        )
        counted.notes = "saved from a grouped query"  # its selected count is no column to write
        counted.save()
        assert Session.get_by_id(counted.id).notes == "saved from a grouped query"
        assert ThreadMessage.select().where(ThreadMessage.role == "assistant").count() == 3
        thread = Thread.get(Thread.name == "t1")
        assert thread.session.name == "s" and [
            m.content for m in thread.messages.order_by(ThreadMessage.idx)
        ] == [
            "q1",
            "a1",
        ]
    assert Session._meta.database is None  # closed: unbound, as before any store
    with pytest.raises(peewee.InterfaceError):
        Session.select().count()


def test_save_is_checked_and_written_in_the_stores_transaction(tmp_path):
    with filled(tmp_path / "a.sqlite") as store:
        thread = Thread.get(Thread.name == "t0")
        thread.name = "renamed"
        thread.save()
        assert store.get_thread(thread.id).name == "renamed"
        before = rows(store)
        for field, value, words in [
            ("status", 3, "status must be a string"),
            ("name", None, "name must not be None"),
            ("amp_mode", "cloud", "amp_mode must be None or one of"),
            ("name", "bad\ud800", "lone surrogate"),
        ]:
            bad = Thread.get_by_id(thread.id)
            setattr(bad, field, value)
            with pytest.raises(ValidationError, match=words):
                bad.save()
            assert rows(store) == before
        message = ThreadMessage(
            id="m", thread=thread.id, role="robot", content="x", idx=9, created_at="2026-01-01T00:00:00.000Z"
        )
        with pytest.raises(ValidationError, match="role must be one of"):
            message.save(force_insert=True)
        assert ThreadMessage.select().where(ThreadMessage.id == "m").count() == 0
        message.role = "user"
        message.save(force_insert=True)
        assert [m.idx for m in store.get_thread_messages(thread.id)] == [0, 1, 9]


def test_the_latest_open_store_answers_and_bound_names_another(tmp_path):
    first = filled(tmp_path / "a.sqlite", threads=3)
    second = filled(tmp_path / "b.sqlite", threads=1)
    try:
        assert Thread.select().count() == 1  # the store opened last
        with first.bound():
            assert Thread.select().count() == 3
        assert Thread.select().count() == 1
        second.close()
        assert Thread.select().count() == 3  # back to the one still open
    finally:
        second.close()
        first.close()
    assert Thread._meta.database is None


def test_a_read_only_store_answers_queries_and_refuses_saves(tmp_path):
    path = tmp_path / "ro.sqlite"
    filled(path).close()
    path.chmod(0o444)
    before = files(tmp_path)
    with SessionStore(path, readonly=True):
        thread = Thread.get(Thread.name == "t2")
        thread.name = "no"
        with pytest.raises(SessionormError, match="read-only"):
            thread.save()
        assert Thread.select().where(Thread.name == "no").count() == 0
    assert files(tmp_path) == before


def test_models_query_a_postgres_store(tmp_path):
    source = tmp_path / "a.sqlite"
    filled(source).close()
    with pg_database("postgresql") as server:
        copy(source, server.target)
        with SessionStore(server.target) as store:
            assert Thread.select().count() == 3
            thread = Thread.get(Thread.name == "t0")
            thread.name = "on postgres"
            thread.save()
            assert store.get_thread(thread.id).name == "on postgres"
            thread.name = "nul\x00"
            with pytest.raises(ValidationError, match="NUL"):
                thread.save()


def test_a_store_dropped_without_close_is_still_collected(tmp_path):
    import gc
    import weakref

    store = filled(tmp_path / "a.sqlite", threads=1)
    ref = weakref.ref(store)
    del store
    gc.collect()
    assert ref() is None  # the binding holds no reference to the store
    with filled(tmp_path / "b.sqlite", threads=2) as other:
        assert Thread.select().count() == 2
        other.close()
    assert Thread._meta.database is None
