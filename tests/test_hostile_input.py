"""Hostile input: text round-trips verbatim, wrong types are refused before any SQL, and bad
database files give one clear error while staying exactly as they were."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import workers
from click.testing import CliRunner

from sessionorm import (
    DatabaseOpenError,
    NotFoundError,
    SessionormError,
    SessionStore,
    ValidationError,
)
from sessionorm.cli import cli
from sessionorm.commands import migrate

HOSTILE = {
    "quotes": "it's \"quoted\" `back` 'single'",
    "sql": "'); DROP TABLE sessions;--",
    "sql-double": '"); DELETE FROM threads; --',
    "nul": "a\x00b",
    "nul-edges": "\x00leading and trailing\x00",
    "emoji": "🚀 ship it 👩‍💻",
    "rtl": "שלום עולם مرحبا",
    "combining": "e\u0301 a\u0308 Z\u0335\u0321\u0317",
    "control": "tab\there\nnewline\r\n\x1b[31mred",
    "percent-and-qmark": "%s %(x)s ? :name $1",
    "backslashes": "C:\\path\\to\\file \\x00",
    "1MB": "m" * (1024 * 1024 - 3) + "end",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_round_trips_verbatim_through_the_store(store: SessionStore, text: str):
    session = store.create_session(name=text, amp_prompt=text, repo_root="/r")
    again = store.get_session(session.id)
    assert (again.name, again.amp_prompt) == (text, text)
    thread_id = store.create_thread(session.id, text).id
    assert store.get_thread(thread_id).name == text
    assert [t.name for t in store.get_session_threads(session.id)] == [text]
    one = store.add_thread_message(thread_id, "user", text).id
    ids = [m.id for m in store.add_thread_messages(thread_id, [("assistant", text), ("system", text + text)])]
    messages = store.get_thread_messages(thread_id)
    assert [(m.id, m.content) for m in messages] == [(one, text), (ids[0], text), (ids[1], text + text)]
    assert store.get_thread_messages(thread_id, last=1)[0].content == text + text
    # the tables it tried to drop or empty are all still there
    assert {"sessions", "threads", "thread_messages"} <= set(store.db.get_tables())


def test_hostile_legacy_thread_ids_survive_the_migration_verbatim(legacy_db, dump):
    path = legacy_db(n=len(HOSTILE) + 4, threaded=len(HOSTILE) + 2)
    con = sqlite3.connect(path)
    with con:
        ids = [r[0] for r in con.execute("SELECT id FROM sessions ORDER BY rowid")]
        for sid, value in zip(ids, HOSTILE.values(), strict=False):
            con.execute('UPDATE sessions SET "threadId" = ? WHERE id = ?', (value, sid))
    con.close()
    sessions_before = [line for line in dump(path) if line.startswith('INSERT INTO "sessions"')]
    report = migrate(path)
    assert report.migrated == len(HOSTILE) + 2
    con = sqlite3.connect(path)
    try:
        for sid, value in zip(ids, HOSTILE.values(), strict=False):
            rows = con.execute(
                "SELECT m.content, m.role, m.idx FROM thread_messages m JOIN threads t"
                ' ON t.id = m."threadId" WHERE t."sessionId" = ?',
                (sid,),
            ).fetchall()
            assert rows == [(f"Thread migrated from legacy threadId: {value}", "system", 0)]
            assert con.execute('SELECT "threadId" FROM sessions WHERE id = ?', (sid,)).fetchone()[0] == value
    finally:
        con.close()
    # every row as it was, plus the values of the app's columns migration 3 appended
    # (mode, autoCommit, ampMode: this `pre` layout lacked them)
    assert [line for line in dump(path) if line.startswith('INSERT INTO "sessions"')] == [
        line.removesuffix(");") + ",'async',1,'production');" for line in sessions_before
    ]
    # re-running recognises every one of them as migrated, NULs and all
    with SessionStore(path) as store:
        result = store.migrate_session_thread_ids()
    assert (result.migrated, result.skipped) == (0, len(HOSTILE) + 2)
    assert CliRunner().invoke(cli, ["verify", "--db-path", str(path)]).exit_code == 0


WRONG_TYPES = {"bytes": b"text", "int": 7, "none": None, "list": ["a"], "float": 1.5, "dict": {"a": 1}}
BAD_ROLES = ["admin", "User", "USER", "", " user", "tool", None, 1, b"user"]


@pytest.fixture
def unchanged(store: SessionStore, session, thread_id, dump, db_path):
    """Asserts after the test that the database holds exactly what it held before."""
    store.add_thread_message(thread_id, "user", "existing")
    before = dump(db_path)
    yield
    assert dump(db_path) == before


@pytest.mark.parametrize("value", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_wrong_types_are_refused_before_any_sql(store, session, thread_id, sql_log, unchanged, value):
    statements = sql_log(store)
    calls = [
        lambda: store.create_session(name=value, amp_prompt="p", repo_root="/r"),
        lambda: store.create_session(name="n", amp_prompt="p", repo_root=value),
        lambda: store.create_thread(session.id, value).id,
        lambda: store.create_thread(value, "name").id,
        lambda: store.add_thread_message(thread_id, "user", value).id,
        lambda: store.add_thread_message(value, "user", "content").id,
        lambda: store.add_thread_messages(thread_id, [("user", "fine"), ("user", value)]),
        lambda: store.get_thread(value),
        lambda: store.get_session_threads(value),
        lambda: store.delete_thread(value),
        lambda: store.delete_session(value),
    ]
    if value is not None:  # amp_prompt may be None where the column allows it
        calls.append(lambda: store.create_session(name="n", amp_prompt=value, repo_root="/r"))
    for call in calls:
        with pytest.raises(ValidationError):
            call()
    assert statements == []


@pytest.mark.parametrize("role", BAD_ROLES, ids=[repr(r) for r in BAD_ROLES])
def test_unknown_roles_are_refused_before_any_sql(store, thread_id, sql_log, unchanged, role):
    statements = sql_log(store)
    with pytest.raises(ValidationError, match="role"):
        store.add_thread_message(thread_id, role, "content")
    with pytest.raises(ValidationError, match="role"):
        store.add_thread_messages(thread_id, [("user", "ok"), (role, "content"), ("assistant", "ok")])
    assert statements == []


@pytest.mark.parametrize(
    "batch",
    [[], "us", [("user",)], [("user", "a", "b")], [None], 5, [["user", 5]]],
    ids=["empty", "string", "1-tuple", "3-tuple", "none-item", "int", "int-content"],
)
def test_malformed_batches_are_refused_before_any_sql(store, thread_id, sql_log, unchanged, batch):
    statements = sql_log(store)
    with pytest.raises(ValidationError):
        store.add_thread_messages(thread_id, batch)
    assert statements == []


def test_unknown_ids_write_nothing(store, session, thread_id, unchanged):
    for call in (
        lambda: store.add_thread_message("no-such-thread", "user", "x").id,
        lambda: store.add_thread_messages("no-such-thread", [("user", "x")]),
        lambda: store.create_thread("no-such-session", "x").id,
        lambda: store.delete_thread("'); DROP TABLE threads;--"),
        lambda: store.delete_session("' OR 1=1 --"),
        lambda: store.update_thread_timestamp("' OR 1=1 --"),
    ):
        with pytest.raises(NotFoundError):
            call()


# -- bad database files ---------------------------------------------------------------------


def bad_database(kind: str, tmp_path: Path, legacy_db) -> Path:
    if kind == "directory":
        path = tmp_path / "a-directory.db"
        path.mkdir()
        (path / "inside").write_text("keep me")
    elif kind == "not-sqlite":
        path = tmp_path / "notes.db"
        path.write_text("these are my notes, not a database\n" * 100)
    elif kind == "truncated":  # a SQLite header, then garbage
        path = tmp_path / "truncated.db"
        path.write_bytes(b"SQLite format 3\x00" + os.urandom(5000))
    elif kind == "read-only-legacy":
        path = legacy_db(n=20, name="readonly-legacy.db")
        path.chmod(0o444)
    elif kind == "read-only-migrated":
        path = tmp_path / "readonly.db"
        with SessionStore(path) as store:
            store.create_session(name="s", amp_prompt="p", repo_root="/r")
        path.chmod(0o444)
    else:
        raise AssertionError(kind)
    return path


def state(path: Path) -> object:
    """The file's bytes and mode, and which of its -wal/-shm/-journal files exist."""
    if path.is_dir():
        return sorted((p.name, p.read_bytes()) for p in path.iterdir())
    return (
        path.read_bytes(),
        path.stat().st_mode,
        [suffix for suffix in ("-wal", "-shm", "-journal") if Path(f"{path}{suffix}").exists()],
    )


BAD_FILES = ["directory", "not-sqlite", "truncated", "read-only-legacy", "read-only-migrated"]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_database_path_gives_a_clear_error_and_stays_as_it_was(kind, tmp_path, legacy_db):
    path = bad_database(kind, tmp_path, legacy_db)
    before = state(path)
    with pytest.raises(SessionormError) as caught:
        SessionStore(path, migrate=True)
    assert isinstance(caught.value, DatabaseOpenError), caught.value
    assert str(path) in str(caught.value)
    assert state(path) == before


@pytest.mark.parametrize("command", ["migrate", "migrate --backup", "rollback", "verify", "status", "backup"])
@pytest.mark.parametrize("kind", BAD_FILES[:3])
def test_cli_on_a_path_that_is_no_database_exits_with_one_line(kind, command, tmp_path, legacy_db):
    path = bad_database(kind, tmp_path, legacy_db)
    before = state(path)
    result = CliRunner().invoke(cli, [*command.split(), "--db-path", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert state(path) == before
    if path.is_file():
        assert workers.backups_of(path) == ([], [])


@pytest.mark.parametrize("command", ["migrate", "migrate --backup", "rollback"])
@pytest.mark.parametrize("kind", ["read-only-legacy", "read-only-migrated"])
def test_cli_refuses_to_write_a_read_only_file_in_one_line(kind, command, tmp_path, legacy_db):
    path = bad_database(kind, tmp_path, legacy_db)
    before = state(path)
    result = CliRunner().invoke(cli, [*command.split(), "--db-path", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "read-only" in lines[0]
    assert state(path) == before
    # refused before the backup `migrate --backup` and `rollback` would otherwise take
    assert workers.backups_of(path) == ([], [])


# -- full disk --------------------------------------------------------------------------------


def test_a_full_database_gives_a_clear_error_and_writes_nothing(store, session, thread_id, dump, db_path):
    store.add_thread_message(thread_id, "user", "existing")
    before = dump(db_path)
    pages = store.db.execute_sql("PRAGMA page_count").fetchone()[0]
    store.db.execute_sql(f"PRAGMA max_page_count = {pages + 2}")  # this connection: 2 pages left
    big = "x" * (1024 * 1024)
    for call in (
        lambda: store.add_thread_message(thread_id, "user", big).id,
        lambda: store.add_thread_messages(thread_id, [("user", "small"), ("user", big)]),
        lambda: store.create_session(name="n", amp_prompt=big, repo_root="/r"),
        lambda: store.create_thread(session.id, big).id,
    ):
        with pytest.raises(DatabaseOpenError, match="full"):
            call()
        assert not store.db.connection().in_transaction
    assert dump(db_path) == before
    # still usable for what fits
    store.add_thread_message(thread_id, "user", "small")
    assert store.get_thread(thread_id).message_count == 2


@pytest.fixture
def tiny_filesystem(tmp_path: Path):
    """A 1.2 MB tmpfs (needs root and permission to mount; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_migrate_on_a_full_disk_exits_with_one_line_and_leaves_the_file(tiny_filesystem, legacy_db):
    source = legacy_db(n=3000)  # ~1.1 MB; migrating needs more than the 1.2 MB filesystem has left
    path = tiny_filesystem / source.name
    shutil.copyfile(source, path)
    before = state(path)
    done = workers.run_cli("migrate", "--db-path", str(path))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "disk is full" in lines[0], done.stderr
    assert state(path) == before
    done = workers.run_cli("backup", "--db-path", str(path))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "full" in done.stderr, done.stderr
    assert state(path) == before


def dry_run_with_tmpdir(path: Path, tmpdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        workers.cli_command("migrate", "--dry-run", "--db-path", str(path)),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env=dict(os.environ, TMPDIR=str(tmpdir)),
    )


def test_dry_run_without_room_for_its_copy_says_so_in_one_line_before_starting(tiny_filesystem, legacy_db):
    path = legacy_db(n=3000)  # ~1.1 MB: a copy plus room to migrate it needs more than 1.2 MB
    before = state(path)
    done = dry_run_with_tmpdir(path, tiny_filesystem)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: --dry-run needs about 2 MiB in ")
    assert lines[0].endswith("MiB are free; point TMPDIR at a folder with more room")
    assert state(path) == before
    assert list(tiny_filesystem.iterdir()) == []  # nothing copied, nothing left


def test_dry_run_rehearses_on_a_temporary_copy_it_deletes(tmp_path, legacy_db):
    path = legacy_db(n=200)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = state(path)
    done = dry_run_with_tmpdir(path, scratch)
    assert done.returncode == 0, done.stderr
    assert "would migrate 100 sessions, skip 0" in done.stdout
    assert state(path) == before
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("command", ["status", "verify", "backup", "migrate --dry-run", "migrate --backup"])
def test_a_wal_file_on_a_disk_with_no_room_left_is_one_line_and_no_sidecar(tiny_filesystem, command):
    """A full disk as SQLite meets it opening a WAL file: no room for the -shm file it needs
    (SQLITE_IOERR_SHMSIZE). One line saying the disk is full; no empty -wal or 3-byte -shm left."""
    path = tiny_filesystem / "s.sqlite"
    with SessionStore(path) as store:
        store.create_session(name="s", amp_prompt="p", repo_root="/r")
    with open(tiny_filesystem / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:  # no space left: the disk is full
            pass
    before = state(path)
    done = workers.run_cli(*command.split(), "--db-path", str(path))
    assert done.returncode == 2
    assert done.stderr == f"error: {path}: the disk is full: disk I/O error\n", done.stderr
    assert state(path) == before
