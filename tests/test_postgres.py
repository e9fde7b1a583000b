"""The same store, migrations, CLI and concurrency on SQLite and on PostgreSQL (issue 6).

Every test takes `backend` (conftest.py), parametrised over `sqlite`, `postgresql` and
`pgbouncer`, which hands it a fresh, empty database of its own: a file in tmp_path, or a
database created on the server named by `$SESSIONORM_TEST_PG_URL` (its user needs CREATEDB)
and dropped afterwards (pg_support.py).
`pgbouncer` reaches that database through the pgbouncer (transaction pooling, default
settings) at `$SESSIONORM_TEST_PGBOUNCER_URL`. Without a variable its cases skip, saying
why; with `$CI` set as well, a server that does not answer fails them instead. The tests
look at the databases through the plain drivers (sqlite3, psycopg, connected to the server
itself), not through sessionorm.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import types
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import (
    APP_TABLES,
    CONTRACT_INDEXES,
    NEW_TABLES,
    SEARCH_TABLES_PG,
    SEARCH_TABLES_SQLITE,
    SHIPPED_MIGRATIONS,
    SHIPPED_SCRIPTS,
)
from click.testing import CliRunner, Result
from pg_support import (
    PG_URL_VAR,
    SESSION_COLUMNS,
    Backend,
    appenders_never_collide,
    legacy_rows,
    with_database,
)

from sessionorm import (
    NeedsMigrationError,
    NotFoundError,
    SessionStore,
    ValidationError,
    commands,
)
from sessionorm.backends import pg_backup, sqlite_backup
from sessionorm.cli import cli
from sessionorm.errors import DatabaseBusyError, MigrationError

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
T_UUID4 = re.compile(r"^T-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MIGRATION = "0001_session_thread_relationship"
INDEX_NAMES = "0002_orchestrator_index_names"
LATER = SHIPPED_SCRIPTS[2:]
ALL_MIGRATIONS = [MIGRATION, INDEX_NAMES, *LATER]


# -- fixtures on `backend` (conftest.py: a fresh database per test, on each backend) -------


@pytest.fixture
def store(backend: Backend) -> Iterator[SessionStore]:
    with backend.store() as opened:
        yield opened


@pytest.fixture
def session(store: SessionStore):
    return store.create_session(name="Fix the login bug", amp_prompt="Fix it", repo_root="/src/app")


@pytest.fixture
def thread_id(store: SessionStore, session) -> str:
    return store.create_thread(session.id, "Feature Discussion").id


@pytest.fixture
def legacy(backend: Backend) -> Backend:
    """`backend` holding the legacy `pre` layout with `legacy_rows()`."""
    backend.load_legacy(legacy_rows())
    return backend


def invoke(*args: str | os.PathLike) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


# -- schema ----------------------------------------------------------------------------------


def test_a_new_database_gets_the_contract_tables(store, backend):
    search = SEARCH_TABLES_PG if backend.is_pg else SEARCH_TABLES_SQLITE
    assert backend.tables() == {"sessions", *NEW_TABLES, *search} | (
        set() if backend.is_pg else set(APP_TABLES)
    )
    assert backend.query("SELECT version, name FROM migrations ORDER BY version") == SHIPPED_MIGRATIONS


def test_the_new_tables_have_camel_case_columns(store, backend):
    columns = {c.name for c in store.db.get_columns("thread_messages")}
    assert columns == {"id", "threadId", "role", "content", "createdAt", "idx"}
    assert {c.name for c in store.db.get_columns("threads")} == {
        "id",
        "sessionId",
        "name",
        "createdAt",
        "updatedAt",
        "status",
        "ampMode",
    }


def test_every_contract_index_exists(store):
    found = {
        (table, *i.columns) for table in ("threads", "thread_messages") for i in store.db.get_indexes(table)
    }
    for spec in [
        *CONTRACT_INDEXES,
        ("thread_messages", "threadId", "idx"),
        ("threads", "sessionId", "updatedAt"),
    ]:
        assert spec in found


def test_the_role_check_refuses_an_unknown_role(backend, thread_id):
    with pytest.raises(Exception, match="(?i)check"):
        backend.execute(
            'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
            " VALUES ('m1', ?, 'robot', 'x', 'now', 0)",
            (thread_id,),
        )


def test_thread_id_and_idx_are_unique_together(backend, store, thread_id):
    store.add_thread_message(thread_id, "user", "first")
    with pytest.raises(Exception, match="(?i)unique"):
        backend.execute(
            'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
            " VALUES ('m2', ?, 'user', 'x', 'now', 0)",
            (thread_id,),
        )


def test_a_new_database_verifies_and_has_no_drift(store, backend):
    assert commands.verify(backend.target).problems == []
    assert commands.diff(backend.target) == []


# -- the store API ---------------------------------------------------------------------------


def test_create_session_fills_the_legacy_defaults(session):
    assert UUID4.match(session.id)
    assert (session.base_branch, session.status, session.thread_id) == ("main", "idle", None)
    assert session.branch_name.startswith("amp/fix-the-login-bug/")
    assert session.worktree_path == f"/src/app/.worktrees/{session.id}"
    assert session.created_at.tzinfo is not None


def test_create_session_stores_other_columns_by_snake_case_name(store):
    made = store.create_session(
        name="n", amp_prompt="p", repo_root="/r", context_included=1, notes="note", thread_id="T-1"
    )
    again = store.get_session(made.id)
    assert (again.context_included, again.notes, again.thread_id) == (True, "note", "T-1")


def test_get_session_threads_counts_messages_newest_updated_first(store, session):
    older = store.create_thread(session.id, "older").id
    newer = store.create_thread(session.id, "newer").id
    store.add_thread_messages(older, [("user", "a"), ("assistant", "b")])
    store.add_thread_message(newer, "user", "c")
    listed = store.get_session_threads(session.id)
    assert [(t.id, t.message_count) for t in listed] == [(newer, 1), (older, 2)]
    assert listed[0].updated_at.tzinfo is not None


def test_messages_are_numbered_from_zero_in_order(store, thread_id):
    store.add_thread_message(thread_id, "user", "zero")
    ids = [m.id for m in store.add_thread_messages(thread_id, [("assistant", "one"), ("user", "two")])]
    messages = store.get_thread_messages(thread_id)
    assert [(m.idx, m.content) for m in messages] == [(0, "zero"), (1, "one"), (2, "two")]
    assert [m.id for m in messages[1:]] == ids
    assert store.get_thread(thread_id).message_count == 3


def test_adding_a_message_bumps_the_thread_updated_at(store, thread_id):
    before = store.get_thread(thread_id).updated_at
    store.add_thread_message(thread_id, "user", "hi")
    assert store.get_thread(thread_id).updated_at >= before


def test_get_thread_messages_pages_and_takes_the_last(store, thread_id):
    store.add_thread_messages(thread_id, [("user", str(i)) for i in range(10)])
    assert [m.idx for m in store.get_thread_messages(thread_id, after_idx=6)] == [7, 8, 9]
    assert [m.idx for m in store.get_thread_messages(thread_id, after_idx=2, limit=2)] == [3, 4]
    assert [m.idx for m in store.get_thread_messages(thread_id, last=3)] == [7, 8, 9]


def test_an_empty_batch_is_a_validation_error(store, thread_id):
    with pytest.raises(ValidationError):
        store.add_thread_messages(thread_id, [])


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_session("nope"),
        lambda s: s.delete_session("nope"),
        lambda s: s.get_thread("nope"),
        lambda s: s.get_session_threads("nope"),
        lambda s: s.get_thread_messages("nope"),
        lambda s: s.update_thread_timestamp("nope"),
        lambda s: s.delete_thread("nope"),
        lambda s: s.add_thread_message("nope", "user", "x").id,
        lambda s: s.add_thread_messages("nope", [("user", "x")]),
        lambda s: s.create_thread("nope", "x").id,
    ],
)
def test_an_unknown_id_raises_not_found_and_writes_nothing(store, backend, thread_id, call):
    before = backend.snapshot()
    with pytest.raises(NotFoundError):
        call(store)
    assert backend.snapshot() == before


def test_deleting_a_thread_deletes_its_messages(store, backend, thread_id):
    store.add_thread_messages(thread_id, [("user", "a"), ("user", "b")])
    store.delete_thread(thread_id)
    assert backend.query("SELECT count(*) FROM thread_messages") == [(0,)]


def test_deleting_a_session_cascades_to_threads_and_messages(store, backend, session, thread_id):
    store.add_thread_message(thread_id, "user", "a")
    store.delete_session(session.id)
    assert backend.query("SELECT count(*) FROM threads") == [(0,)]
    assert backend.query("SELECT count(*) FROM thread_messages") == [(0,)]


def test_deleting_a_session_deletes_the_orchestrator_apps_legacy_rows_of_it(legacy):
    """`iterations` is the app's: its rows of the session go first, in one transaction."""
    sid, other = legacy_rows()[3][0], legacy_rows()[2][0]
    with legacy.store(migrate=True) as store:
        for iteration, session_id in (("it-1", sid), ("it-2", other)):
            legacy.execute(
                'INSERT INTO iterations (id, "sessionId", "startTime") VALUES (?, ?, ?)',
                (iteration, session_id, "2025-08-01T00:00:00.000Z"),
            )
        assert store.delete_session(sid) == {
            "iterations": 1,
            "thread_messages": 1,
            "threads": 1,
            "sessions": 1,
        }
    assert legacy.query("SELECT id FROM iterations") == [("it-2",)]
    assert legacy.query("SELECT count(*) FROM sessions WHERE id = ?", (sid,)) == [(0,)]
    assert legacy.query('SELECT count(*) FROM threads WHERE "sessionId" = ?', (sid,)) == [(0,)]
    assert commands.verify(legacy.target).problems == []  # a deleted session is no loss


def test_deleting_a_session_still_referenced_by_another_programs_rows_is_refused(legacy):
    """A table the app does not delete with a session: refused by name, nothing deleted."""
    with legacy.store(migrate=True) as store:
        sid = legacy_rows()[3][0]
        legacy.execute(
            'CREATE TABLE audit_log (id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL REFERENCES sessions(id))'
        )
        legacy.execute('INSERT INTO audit_log (id, "sessionId") VALUES (?, ?)', ("a-1", sid))
        legacy.execute(
            'INSERT INTO iterations (id, "sessionId", "startTime") VALUES (?, ?, ?)',
            ("it-1", sid, "2025-08-01T00:00:00.000Z"),
        )
        before = legacy.snapshot()
        with pytest.raises(
            ValidationError,
            match=re.escape(
                f"session {sid} is still referenced by rows of tables the orchestrator app does "
                "not delete with it: audit_log (1 rows); nothing was deleted"
            ),
        ):
            store.delete_session(sid)
        assert legacy.snapshot() == before
        store.add_thread_message(store.get_session_threads(sid)[0].id, "user", "still usable")


# -- migrating a legacy database -------------------------------------------------------------


def expected_migration(rows: list[tuple]) -> list[tuple]:
    """(sessionId, thread name, createdAt, updatedAt, status, role, idx, content, message createdAt)."""
    return sorted(
        (
            r[0],
            f"Migrated Thread for {r[1]}",
            r[12],
            r[12],
            "active",
            "system",
            0,
            f"Thread migrated from legacy threadId: {r[11]}",
            r[12],
        )
        for r in rows
        if r[11]
    )


def migrated_rows(backend: Backend) -> list[tuple]:
    return sorted(
        backend.query(
            'SELECT t."sessionId", t.name, t."createdAt", t."updatedAt", t.status, m.role, m.idx,'
            ' m.content, m."createdAt" FROM threads t JOIN thread_messages m ON m."threadId" = t.id'
        )
    )


def test_opening_a_legacy_database_with_data_needs_migration(legacy):
    before = legacy.snapshot()
    with pytest.raises(NeedsMigrationError, match="--db-url" if legacy.is_pg else "--db-path"):
        legacy.store()
    assert legacy.snapshot() == before


def test_a_legacy_database_migrates_as_the_contract_says(legacy):
    columns = ", ".join(f'"{c}"' for c in SESSION_COLUMNS)
    sessions_before = legacy.query(f"SELECT {columns} FROM sessions ORDER BY id")
    report = commands.migrate(legacy.target)
    assert (report.applied, report.migrated, report.skipped) == (ALL_MIGRATIONS, 6, 0)
    assert migrated_rows(legacy) == expected_migration(legacy_rows())
    assert legacy.query(f"SELECT {columns} FROM sessions ORDER BY id") == sessions_before
    # Migration 3 adds the app's columns with the app's defaults.
    assert set(legacy.query('SELECT mode, "autoCommit", "ampMode" FROM sessions')) == {
        ("async", True if legacy.is_pg else 1, "production")
    }
    threads = legacy.query("SELECT id FROM threads")
    messages = legacy.query("SELECT id FROM thread_messages")
    assert len(threads) == 6 and all(T_UUID4.match(i) for (i,) in threads)  # migration 5
    assert len(messages) == 6 and all(UUID4.match(i) for (i,) in messages)
    assert commands.verify(legacy.target).problems == []


def test_sessions_sharing_a_thread_id_each_get_their_own_thread(legacy):
    commands.migrate(legacy.target)
    shared = legacy.query(
        'SELECT "sessionId" FROM threads t JOIN thread_messages m ON m."threadId" = t.id'
        " WHERE m.content = 'Thread migrated from legacy threadId: T-002'"
    )
    assert len(shared) == 2


def test_migrating_thread_ids_again_migrates_nothing_and_skips_the_migrated(legacy):
    with legacy.store(migrate=True) as store:
        result = store.migrate_session_thread_ids()
        assert (result.migrated, result.skipped) == (0, 6)
        store.create_session(name="late", amp_prompt="p", repo_root="/r", thread_id="T-late")
        result = store.migrate_session_thread_ids()
        assert (result.migrated, result.skipped) == (1, 6)
    assert len(migrated_rows(legacy)) == 7


def test_a_database_migrated_elsewhere_is_not_migrated_twice(legacy):
    commands.migrate(legacy.target)
    before = legacy.snapshot()
    report = commands.migrate(legacy.target)
    assert report.pending == [] and report.applied == []
    assert legacy.snapshot() == before


def test_rollback_refuses_to_destroy_threads_the_migration_did_not_create(legacy):
    commands.migrate(legacy.target)
    with legacy.store() as store:
        store.add_thread_message(store.create_thread(legacy_rows()[0][0], "mine").id, "user", "hi")
    for latest in reversed([INDEX_NAMES, *LATER]):  # one at a time, the latest first
        assert commands.rollback(legacy.target).reverted == [latest]
    before = legacy.snapshot()
    with pytest.raises(MigrationError, match="refusing to roll back: 1 threads and 1 messages"):
        commands.rollback(legacy.target)
    assert legacy.snapshot() == before
    report = commands.rollback(legacy.target, force=True)
    assert report.reverted == [MIGRATION]
    assert not {"threads", "thread_messages"} & legacy.tables()


# -- the command line ------------------------------------------------------------------------


def test_cli_status_lists_the_pending_migration_and_exits_1(legacy):
    result = invoke("status", *legacy.cli_args)
    assert result.exit_code == 1
    assert result.stdout == "".join(f"pending  {m}\n" for m in ALL_MIGRATIONS)


def test_cli_dry_run_prints_the_plan_and_changes_nothing(legacy):
    before = legacy.snapshot()
    result = invoke("migrate", "--dry-run", *legacy.cli_args)
    assert result.exit_code == 0, result.output
    assert f"pending: {MIGRATION}\n" in result.stdout
    assert "would migrate 6 sessions, skip 0\n" in result.stdout
    assert "INSERT INTO threads" in result.stdout and "CREATE TABLE IF NOT EXISTS threads" in result.stdout
    assert "SAVEPOINT" not in result.stdout
    assert legacy.snapshot() == before
    assert invoke("status", *legacy.cli_args).exit_code == 1


def test_cli_dry_run_of_an_up_to_date_database_says_so(legacy):
    assert invoke("migrate", *legacy.cli_args).exit_code == 0
    result = invoke("migrate", "--dry-run", *legacy.cli_args)
    assert result.exit_code == 0
    assert "up to date, nothing to migrate" in result.stdout


def test_cli_migrate_then_status_verify_and_diff_are_clean(legacy):
    result = invoke("migrate", *legacy.cli_args)
    assert result.exit_code == 0, result.output
    assert f"applied {MIGRATION}\n" in result.stdout
    assert "threads created: 6; sessions skipped (already migrated): 0\n" in result.stdout
    status = invoke("status", *legacy.cli_args)
    assert status.exit_code == 0 and status.stdout.startswith(f"applied  {MIGRATION}  ")
    verify = invoke("verify", *legacy.cli_args)
    assert verify.exit_code == 0, verify.output
    assert verify.stdout.endswith(": ok (migrations, schema, integrity, data)\n")
    assert invoke("diff", *legacy.cli_args).exit_code == 0


def test_cli_verify_names_a_missing_index(legacy):
    invoke("migrate", *legacy.cli_args)
    legacy.execute('DROP INDEX "idx_thread_messages_role"')
    result = invoke("verify", *legacy.cli_args)
    assert result.exit_code == 1
    assert "problem: add index thread_messages (role)" in result.stdout


def backup_pattern(backend: Backend) -> str:
    if backend.is_pg:
        name = urllib.parse.urlsplit(backend.target).path.lstrip("/")
        return rf"{re.escape(str(Path.cwd() / name))}\.backup-\d{{4}}-\d\d-\d\d-\d{{6}}\.dump"
    return rf"{re.escape(backend.target)}\.backup-\d{{4}}-\d\d-\d\d-\d{{6}}"


def test_cli_migrate_backup_writes_a_checked_timestamped_backup_first(legacy):
    result = invoke("migrate", "--backup", *legacy.cli_args)
    assert result.exit_code == 0, result.output
    match = re.search(rf"^backup: ({backup_pattern(legacy)}) \(checked: .+\)$", result.stdout, re.M)
    assert match, result.stdout
    assert Path(match.group(1)).stat().st_size > 0


def test_cli_backup_prints_the_new_file(legacy):
    result = invoke("backup", *legacy.cli_args)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"backup: {backup_pattern(legacy)}\n", result.stdout)


def test_backup_never_overwrites_it_numbers_the_next(legacy, monkeypatch, tmp_path):
    if legacy.is_pg:
        fixed = tmp_path / "db.backup-2025-01-01-000000.dump"
        monkeypatch.setattr(pg_backup, "backup_name", lambda database: fixed)
        expected = [
            fixed,
            tmp_path / "db.backup-2025-01-01-000000-2.dump",
            tmp_path / "db.backup-2025-01-01-000000-3.dump",
        ]
    else:
        fixed = Path(f"{legacy.target}.backup-2025-01-01-000000")
        monkeypatch.setattr(sqlite_backup, "backup_name", lambda path: fixed)
        expected = [fixed, Path(f"{fixed}-2"), Path(f"{fixed}-3")]
    made = [commands.backup(legacy.target) for _ in range(3)]
    assert made == expected
    assert len({p.read_bytes() for p in made}) >= 1  # three files, none replaced


def test_backup_to_an_existing_output_is_refused(legacy, tmp_path):
    taken = tmp_path / "taken.dump"
    taken.write_text("keep me")
    result = invoke("backup", *legacy.cli_args, "--output", taken)
    assert result.exit_code == 2
    assert "exists; refusing to overwrite it" in result.stderr
    assert taken.read_text() == "keep me"


def test_a_postgres_backup_restores_to_the_same_rows(legacy, tmp_path):
    if not legacy.is_pg:
        pytest.skip("pg_restore applies to PostgreSQL backups only")
    import psycopg

    commands.migrate(legacy.target)
    dump = commands.backup(legacy.target, tmp_path / "out.dump")
    listing = subprocess.run(
        [pg_backup.find_tool("pg_restore"), "--list", str(dump)], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public thread_messages" in listing
    copy = f"sessionorm_restore_{uuid.uuid4().hex[:12]}"
    server = os.environ[PG_URL_VAR]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{copy}"')
    try:
        target = with_database(server, copy)
        subprocess.run(
            [pg_backup.find_tool("pg_restore"), "--no-owner", f"--dbname={target}", str(dump)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert Backend("postgresql", target, target).snapshot() == legacy.snapshot()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def test_without_pg_dump_a_postgres_backup_is_refused_and_nothing_migrates(legacy, monkeypatch):
    if not legacy.is_pg:
        pytest.skip("pg_dump backs up PostgreSQL databases only")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(pg_backup, "glob", types.SimpleNamespace(glob=lambda pattern: []))
    before = legacy.snapshot()
    result = invoke("migrate", "--backup", *legacy.cli_args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: pg_dump not found")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert legacy.snapshot() == before


def test_cli_rollback_backs_up_then_reverts(legacy):
    invoke("migrate", *legacy.cli_args)
    first = invoke("rollback", *legacy.cli_args)
    assert first.exit_code == 0, first.output
    assert re.search(rf"^backup: {backup_pattern(legacy)}$", first.stdout, re.M), first.stdout
    assert f"reverted {LATER[-1]}\n" in first.stdout  # one migration at a time, latest first
    for later in reversed([INDEX_NAMES, *LATER[:-1]]):
        result = invoke("rollback", *legacy.cli_args)
        assert result.exit_code == 0, result.output
        assert f"reverted {later}\n" in result.stdout
    result = invoke("rollback", *legacy.cli_args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("backup: "), result.stdout
    assert f"reverted {MIGRATION}\n" in result.stdout
    assert not {"threads", "thread_messages"} & legacy.tables()
    assert invoke("status", *legacy.cli_args).exit_code == 1
    assert invoke("migrate", *legacy.cli_args).exit_code == 0
    assert migrated_rows(legacy) == expected_migration(legacy_rows())


def test_cli_rollback_refuses_to_destroy_user_threads_without_force(legacy):
    invoke("migrate", *legacy.cli_args)
    with legacy.store() as store:
        store.create_thread(legacy_rows()[0][0], "mine")
    for _ in range(6):  # 0007 (search), 0006 (no items), 0005 (ids), 0004 (record), 0003 (nothing), 0002
        assert invoke("rollback", *legacy.cli_args).exit_code == 0
    result = invoke("rollback", *legacy.cli_args)
    assert result.exit_code == 2
    assert "refusing to roll back" in result.stderr
    assert {"threads", "thread_messages"} <= legacy.tables()


def test_cli_output_never_shows_the_password(legacy):
    if not legacy.is_pg:
        pytest.skip("only URLs carry passwords")
    parts = urllib.parse.urlsplit(legacy.target)
    user = parts.username or "postgres"
    with legacy.connect() as con:  # the server may trust local users: a password does no harm
        password = con.info.password or "s3cret-never-shown"
    url = urllib.parse.urlunsplit(
        parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5432}")
    )
    for args in (["migrate"], ["status"], ["verify"], ["migrate", "--dry-run"]):
        result = invoke(*args, "--db-url", url)
        assert password not in result.output, args
        assert password not in (result.stderr or ""), args
    assert ":***@" in invoke("verify", "--db-url", url).stdout


# -- concurrency -----------------------------------------------------------------------------


def test_a_held_thread_lock_raises_database_busy_error_after_the_timeout(backend, thread_id):
    with backend.connect() as other, backend.store(busy_timeout=0.3) as store:
        if backend.is_pg:
            other.execute("BEGIN")
            other.execute("SELECT id FROM threads WHERE id = %s FOR UPDATE", (thread_id,))
        else:
            other.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseBusyError):
            store.add_thread_message(thread_id, "user", "blocked")
        other.execute("ROLLBACK")
        store.add_thread_message(thread_id, "user", "now it goes")
        assert [m.content for m in store.get_thread_messages(thread_id)] == ["now it goes"]


WRITERS, PER_WRITER = 8, 500


def append_messages(backend: Backend, thread_id: str, writer: int, barrier, errors) -> None:
    """One process: open its own store, wait for the others, append PER_WRITER messages."""
    try:
        with backend.store() as store:
            barrier.wait(timeout=60)
            for n in range(PER_WRITER):
                store.add_thread_message(thread_id, "user", f"{writer}:{n}")
    except BaseException as exc:  # reported to the parent: the test wants zero of these
        errors.put(f"writer {writer}: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_eight_processes_appending_to_one_thread_never_collide(backend, store, thread_id):
    appenders_never_collide(backend, thread_id, append_messages, WRITERS, PER_WRITER)
    assert store.get_thread(thread_id).message_count == WRITERS * PER_WRITER


def test_the_timestamps_round_trip_as_aware_utc(store, thread_id):
    store.add_thread_message(thread_id, "user", "x")
    message = store.get_thread_messages(thread_id)[0]
    assert message.created_at.utcoffset() == dt.timedelta(0)
