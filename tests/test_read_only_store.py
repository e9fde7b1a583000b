"""`SessionStore(path, readonly=True)`: a migrated database read as it is, a file without write
permission included; every write refused with a sessionorm error, and the file and its
-wal/-shm left byte for byte as they were (issue 23, read-only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from legacy import make_legacy_db
from pg_support import pg_database

from sessionorm import (
    DatabaseOpenError,
    NeedsMigrationError,
    SessionormError,
    SessionStore,
    ValidationError,
    copy,
)


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def read_only_file(tmp_path: Path) -> tuple[Path, str]:
    """A migrated WAL file with a session, a thread and two messages, mode 0444."""
    path = tmp_path / "ro.sqlite"
    with SessionStore(path) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session.id, "t")
        store.add_thread_messages(thread, [("user", "hello"), ("assistant", "hi")])
    path.chmod(0o444)
    return path, thread


WRITES = {
    "create_session": lambda s, t: s.create_session(name="x", amp_prompt="p", repo_root="/r"),
    "create_thread": lambda s, t: s.create_thread(s.list_sessions()[0].id, "x"),
    "add_thread_message": lambda s, t: s.add_thread_message(t, "user", "x"),
    "add_thread_messages": lambda s, t: s.add_thread_messages(t, [("user", "x")]),
    "delete_thread": lambda s, t: s.delete_thread(t),
    "delete_session": lambda s, t: s.delete_session(s.list_sessions()[0].id),
    "update_thread_timestamp": lambda s, t: s.update_thread_timestamp(t),
    "migrate_session_thread_ids": lambda s, t: s.migrate_session_thread_ids(),
}


def test_a_read_only_store_reads_a_file_without_write_permission(read_only_file):
    path, thread = read_only_file
    before = files(path.parent)
    with SessionStore(path, readonly=True) as store:
        assert [s.name for s in store.list_sessions()] == ["s"]
        assert [m.content for m in store.get_thread_messages(thread)] == ["hello", "hi"]
        assert store.get_thread(thread).name == "t"
    assert files(path.parent) == before  # the same bytes, and no -wal or -shm left


@pytest.mark.parametrize("write", WRITES)
def test_every_write_of_a_read_only_store_is_refused_and_nothing_changes(read_only_file, write):
    path, thread = read_only_file
    path.chmod(0o644)  # writable: the store, not the file's mode, refuses
    before = files(path.parent)
    with SessionStore(path, readonly=True) as store:
        with pytest.raises(SessionormError, match="is open read-only; nothing was written"):
            WRITES[write](store, thread)
        assert [m.content for m in store.get_thread_messages(thread)] == ["hello", "hi"]
    assert files(path.parent) == before


def test_a_read_only_store_refuses_a_legacy_file_and_leaves_it_alone(tmp_path):
    path = make_legacy_db(tmp_path / "legacy.sqlite", 5)
    before = files(tmp_path)
    with pytest.raises(NeedsMigrationError, match="a read-only store reads migrated databases only"):
        SessionStore(path, readonly=True)
    assert files(tmp_path) == before


def test_a_read_only_store_needs_an_existing_database(tmp_path):
    with pytest.raises(DatabaseOpenError, match="no database at"):
        SessionStore(tmp_path / "missing.sqlite", readonly=True)
    assert list(tmp_path.iterdir()) == []


def test_read_only_and_migrate_together_are_refused(read_only_file):
    path, _ = read_only_file
    with pytest.raises(ValidationError, match="cannot migrate"):
        SessionStore(path, readonly=True, migrate=True)


def test_a_read_only_store_on_postgres_reads_and_refuses_writes(read_only_file):
    path, thread = read_only_file
    with pg_database("postgresql") as server:
        copy(path, server.target)
        with SessionStore(server.target, readonly=True) as store:
            assert [m.content for m in store.get_thread_messages(thread)] == ["hello", "hi"]
            with pytest.raises(SessionormError, match="read-only"):
                store.add_thread_message(thread, "user", "x")
        assert server.query("SELECT count(*) FROM thread_messages") == [(2,)]
