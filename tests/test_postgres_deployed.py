"""PostgreSQL as deployed (issue 14): behind pgbouncer, bulk-loaded, analyzed, failing cleanly.

The `pg` fixture hands each test a fresh database on the test server, reached directly and
through the pgbouncer (transaction pooling, default settings) that `.ci/run` starts; see
`pg_support.py` for the variables. Some tests take `backend` instead, which adds SQLite,
where the rule is the same on both. Other sessions are plain psycopg connections to the
server itself.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from cli_support import invoke, one_error_line, run_module, shipped_script
from pg_support import Backend, appenders_never_collide, legacy_rows, pg_database

from sessionorm import (
    DatabaseBusyError,
    SessionStore,
    ValidationError,
    commands,
    thread_record,
)
from sessionorm.backends import pg_backup, pg_migrator
from sessionorm.backends.pg_connections import linear_plans, open_url
from sessionorm.backends.postgresql import orphans_sql
from sessionorm.database import redact
from sessionorm.legacy_threads import HAS_THREAD_ID, NOT_YET_MIGRATED_PG
from sessionorm.sql_log import capturing

MIGRATION = "0001_session_thread_relationship"
BUSY = "database is busy"
# What PostgreSQL named the constraints when migration 1 created the tables with them, and
# migration 3's CHECK on threads.ampMode.
CONSTRAINTS = [
    ("thread_messages", "thread_messages_pkey", "PRIMARY KEY (id)"),
    (
        "thread_messages",
        "thread_messages_role_check",
        "CHECK ((role = ANY (ARRAY['user'::text, 'assistant'::text, 'system'::text])))",
    ),
    (
        "thread_messages",
        "thread_messages_threadId_fkey",
        'FOREIGN KEY ("threadId") REFERENCES threads(id) ON DELETE CASCADE',
    ),
    ("thread_messages", "thread_messages_threadId_idx_key", 'UNIQUE ("threadId", idx)'),
    (
        "threads",
        "threads_ampMode_check",
        """CHECK (("ampMode" = ANY (ARRAY['production'::text, 'local-cli'::text])))""",
    ),
    ("threads", "threads_pkey", "PRIMARY KEY (id)"),
    (
        "threads",
        "threads_sessionId_fkey",
        'FOREIGN KEY ("sessionId") REFERENCES sessions(id) ON DELETE CASCADE',
    ),
]


@pytest.fixture(params=["postgresql", "pgbouncer"])
def pg(request, tmp_path: Path, monkeypatch) -> Iterator[Backend]:
    """A fresh empty PostgreSQL database, direct or through pgbouncer; backups land in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESSIONORM_DB_URL", raising=False)
    with pg_database(request.param) as database:
        yield database


@pytest.fixture
def legacy(pg: Backend) -> Backend:
    pg.load_legacy(legacy_rows())
    return pg


@pytest.fixture
def migrated(legacy: Backend) -> Backend:
    commands.migrate(legacy.target)
    return legacy


def thread_of(store: SessionStore) -> str:
    session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
    return store.create_thread(session.id, "t").id


def dumps(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.dump*")) + sorted(directory.glob(".*.dump*"))


@contextlib.contextmanager
def holding(db: Backend, *statements: str) -> Iterator[object]:
    """Another session that ran `statements` in an open transaction, rolled back after."""
    with db.connect() as other:
        other.execute("BEGIN")
        for sql in statements:
            other.execute(sql)
        try:
            yield other
        finally:
            other.execute("ROLLBACK")


def timed(call) -> tuple[float, object]:
    start = time.monotonic()
    try:
        result = call()
    except Exception as exc:  # the caller looks at it
        result = exc
    return time.monotonic() - start, result


# -- pgbouncer: nothing lives in the session ---------------------------------------------------


def test_the_lock_timeout_lasts_one_transaction_and_never_stays_on_the_connection(pg):
    with pg.store(busy_timeout=0.25) as store:
        thread_id = thread_of(store)
        store.add_thread_message(thread_id, "user", "hi")
        seen = store.db.execute_sql("SELECT current_setting('lock_timeout')").fetchone()[0]
        with store.db.atomic():
            in_transaction = store.db.execute_sql("SHOW lock_timeout").fetchone()[0]
        raw = store.db.connection().execute("SHOW lock_timeout").fetchone()[0]
        prepared = store.db.connection().execute("SELECT count(*) FROM pg_prepared_statements")
        assert (seen, in_transaction) == ("250ms", "250ms")
        assert raw == "0"  # the server's default: nothing was SET for the session
        assert prepared.fetchone()[0] == 0  # no server-side prepared statement either
    with pg.connect() as other:  # nor on whatever server connection the pool hands out next
        assert other.execute("SHOW lock_timeout").fetchone()[0] == "0"


@pytest.mark.parametrize(
    "write",
    [
        lambda s, t: s.add_thread_message(t, "user", "blocked").id,
        lambda s, t: s.add_thread_messages(t, [("user", "a"), ("assistant", "b")]),
        lambda s, t: s.update_thread_timestamp(t),
        lambda s, t: s.delete_thread(t),
    ],
)
def test_a_held_row_lock_raises_busy_within_the_busy_timeout(pg, write):
    with pg.store(busy_timeout=0.3) as store:
        thread_id = thread_of(store)
        with holding(pg, f"SELECT id FROM threads WHERE id = '{thread_id}' FOR UPDATE"):
            seconds, outcome = timed(lambda: write(store, thread_id))
        assert isinstance(outcome, DatabaseBusyError), outcome
        assert 0.3 <= seconds < 5, seconds  # waited the busy timeout, not for ever
        store.add_thread_message(thread_id, "user", "released")


@pytest.mark.parametrize(
    "call",
    [
        lambda s, t: s.get_thread(t),
        lambda s, t: s.get_thread_messages(t, last=5),
        lambda s, t: s.get_session_threads(s.get_thread(t).session_id),
        lambda s, t: s.add_thread_message(t, "user", "x").id,
    ],
)
def test_a_held_table_lock_makes_reads_and_writes_busy_within_the_busy_timeout(pg, call):
    with pg.store(busy_timeout=0.3) as store:
        thread_id = thread_of(store)
        session_id = store.get_thread(thread_id).session_id
        assert store.get_session_threads(session_id)
        with holding(pg, "LOCK TABLE thread_messages IN ACCESS EXCLUSIVE MODE"):
            seconds, outcome = timed(lambda: call(store, thread_id))
        assert isinstance(outcome, DatabaseBusyError), outcome
        assert 0.3 <= seconds < 5, seconds


WRITERS, APPENDS = 8, 300


def append_after_a_history_of_its_own(db: Backend, thread_id: str, writer: int, barrier, errors) -> None:
    """One process: a writer-specific run of other statements, then APPENDS appends.

    Each connection numbers the statements it would prepare in the order it meets them, so
    through a pooler a shared name would point at a different statement on another server.
    """
    try:
        with db.store() as store:
            own = store.create_session(name=f"writer {writer}", amp_prompt="p", repo_root="/r").id
            for n in range(writer * 3):
                mine = store.create_thread(own, f"{writer}-{n}").id
                for _ in range(writer % 3 + 1):
                    store.update_thread_timestamp(mine)
            barrier.wait(timeout=60)
            for n in range(APPENDS):
                if n % 50 == 49:
                    store.add_thread_messages(thread_id, [("assistant", f"{writer}:{n}")])
                else:
                    store.add_thread_message(thread_id, "user", f"{writer}:{n}")
    except BaseException as exc:  # reported to the parent: the test wants zero of these
        errors.put(f"writer {writer}: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_eight_appenders_with_different_statement_histories_get_exact_idx(pg):
    with pg.store() as store:
        thread_id = thread_of(store)
    appenders_never_collide(pg, thread_id, append_after_a_history_of_its_own, WRITERS, APPENDS)


# -- connecting ----------------------------------------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_silent_server_gives_up_after_the_urls_connect_timeout():
    with silent_server() as port:
        start = time.monotonic()
        done = run_module("status", "--db-url", f"postgresql://u:pw@127.0.0.1:{port}/db?connect_timeout=2")
        seconds = time.monotonic() - start
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith(f"error: cannot connect to postgresql://u:***@127.0.0.1:{port}/db"), line
    assert seconds < 15, seconds


@pytest.mark.slow
def test_a_silent_server_gives_up_after_ten_seconds_by_default():
    with silent_server() as port:
        start = time.monotonic()
        done = run_module("verify", "--db-url", f"postgresql://u@127.0.0.1:{port}/db", timeout=120)
        seconds = time.monotonic() - start
    assert done.returncode == 2
    assert one_error_line(done.stderr).startswith("error: cannot connect to"), done.stderr
    assert 9 <= seconds < 40, seconds


# -- passwords -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://u@h/db?password=s3cret&sslmode=prefer",
            "postgresql://u@h/db?password=***&sslmode=prefer",
        ),
        (
            "postgresql://u:s%40cret@h/db?sslpassword=key&PASSWORD=x",
            "postgresql://u:***@h/db?sslpassword=***&PASSWORD=***",
        ),
        ("postgresql://h/db?sslmode=require", "postgresql://h/db?sslmode=require"),
    ],
)
def test_redact_hides_every_password_of_a_url(url, shown):
    assert redact(url) == shown


def test_a_password_in_the_query_string_never_shows(legacy):
    parts = urllib.parse.urlsplit(legacy.target)
    secret = "pw-in-the-query-" + uuid.uuid4().hex[:8]  # the test server trusts local users
    url = urllib.parse.urlunsplit(parts._replace(query=f"password={secret}"))
    bad = urllib.parse.urlunsplit(parts._replace(path="/no_such_database", query=f"password={secret}"))
    results = [
        invoke(*args, "--db-url", url)
        for args in (
            ["migrate", "--dry-run"],
            ["migrate", "--backup"],
            ["status"],
            ["verify"],
            ["diff"],
            ["backup"],
            ["rollback"],
        )
    ]
    results += [invoke("verify", "--db-url", bad), invoke("verify", "-v", "--db-url", bad)]
    for result in results:
        assert secret not in result.output + (result.stderr or "")
    assert results[0].exit_code == 0 and results[1].exit_code == 0, results[1].output
    assert "password=***" in results[4].stdout  # diff names the database, redacted
    assert one_error_line(results[-2].stderr).startswith("error: cannot connect to")


# -- every command honours --busy-timeout; a busy database means no backup -----------------------


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["verify"],
        ["migrate"],
        ["migrate", "--backup"],
        ["migrate", "--dry-run"],
        ["backup"],
        ["rollback"],
    ],
)
def test_a_command_facing_a_held_lock_is_busy_within_its_busy_timeout(migrated, args, tmp_path):
    before = migrated.snapshot()
    with holding(migrated, "LOCK TABLE migrations, sessions IN ACCESS EXCLUSIVE MODE"):
        seconds, result = timed(lambda: invoke(*args, "--busy-timeout", "0.3", *migrated.cli_args))
    assert result.exit_code == 2, result.output
    assert BUSY in one_error_line(result.stderr)
    assert "--busy-timeout" in result.stderr
    assert seconds < 5, seconds
    assert dumps(tmp_path) == []
    assert migrated.snapshot() == before


def test_rollback_facing_a_writer_is_busy_and_takes_no_backup(migrated, tmp_path):
    before = migrated.snapshot()
    thread = migrated.query("SELECT id FROM threads LIMIT 1")[0][0]
    with holding(migrated, f"UPDATE threads SET name = name WHERE id = '{thread}'"):
        seconds, result = timed(lambda: invoke("rollback", "--busy-timeout", "0.3", *migrated.cli_args))
    assert result.exit_code == 2, result.output
    assert BUSY in one_error_line(result.stderr)
    assert seconds < 5
    assert dumps(tmp_path) == []
    assert migrated.snapshot() == before
    assert invoke("rollback", *migrated.cli_args).exit_code == 0  # and once released, it goes


def test_migrate_backup_facing_a_writer_is_busy_and_takes_no_backup(legacy, tmp_path):
    before = legacy.snapshot()
    sid = legacy_rows()[0][0]
    with holding(legacy, f"UPDATE sessions SET notes = 'x' WHERE id = '{sid}'"):
        result = invoke("migrate", "--backup", "--busy-timeout", "0.3", *legacy.cli_args)
    assert result.exit_code == 2
    assert BUSY in one_error_line(result.stderr)
    assert dumps(tmp_path) == []
    assert legacy.snapshot() == before


def test_a_pg_dump_that_waits_behind_a_queued_lock_reports_busy(legacy, tmp_path):
    """pg_dump queues behind another session's ACCESS EXCLUSIVE request and runs out of time."""
    database = open_url(legacy.target, busy_timeout=0.3)
    waiter_done = threading.Event()
    try:
        with database.atomic():
            pg_backup.lock_for_backup(database)

            def exclusive() -> None:  # waits for our ACCESS SHARE, queued ahead of pg_dump
                with legacy.connect() as other, contextlib.suppress(Exception):
                    other.execute("SET lock_timeout = '20s'")
                    other.execute("BEGIN")
                    other.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
                    other.execute("ROLLBACK")
                waiter_done.set()

            waiter = threading.Thread(target=exclusive)
            waiter.start()
            for _ in range(200):
                if legacy.query(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'"
                )[0][0]:
                    break
                time.sleep(0.05)
            with pytest.raises(DatabaseBusyError, match=BUSY):
                pg_backup.dump(
                    legacy.target,
                    tmp_path / "queued.dump",
                    0.3,
                    database,
                    pg_backup.find_tool("pg_dump"),
                    pg_backup.find_tool("pg_restore"),
                )
    finally:
        database.close()
    assert waiter_done.wait(30)
    assert dumps(tmp_path) == []


# -- NUL characters ------------------------------------------------------------------------------

NUL_CALLS = {
    "session name": lambda s, t, sid: s.create_session(name="a\x00b", amp_prompt="p", repo_root="/r"),
    "amp_prompt": lambda s, t, sid: s.create_session(name="n", amp_prompt="\x00", repo_root="/r"),
    "other column": lambda s, t, sid: s.create_session(
        name="n", amp_prompt="p", repo_root="/r", notes="x\x00"
    ),
    "thread name": lambda s, t, sid: s.create_thread(sid, "t\x00").id,
    "content": lambda s, t, sid: s.add_thread_message(t, "user", "hello\x00world").id,
    "batch": lambda s, t, sid: s.add_thread_messages(t, [("user", "ok"), ("user", "\x00")]),
    "thread id": lambda s, t, sid: s.get_thread_messages(t + "\x00"),
    "session id": lambda s, t, sid: s.get_session("x\x00"),
}


@pytest.mark.parametrize("what", NUL_CALLS)
def test_a_nul_character_is_a_validation_error_before_any_sql_on_postgres(backend, what):
    with backend.store() as store:
        thread_id = thread_of(store)
        session_id = store.get_thread(thread_id).session_id
        before = backend.snapshot()
        statements: list[str] = []
        with capturing(lambda sql, params: statements.append(sql)):
            if backend.is_pg:
                with pytest.raises(ValidationError, match="NUL"):
                    NUL_CALLS[what](store, thread_id, session_id)
            elif what not in ("thread id", "session id"):
                NUL_CALLS[what](store, thread_id, session_id)  # SQLite keeps them (test_hostile_input)
        if backend.is_pg:
            assert statements == []
            assert backend.snapshot() == before


# -- another program's tables --------------------------------------------------------------------

FOREIGN = {
    "web sessions": (
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, data TEXT, expires TEXT);"
        "INSERT INTO sessions VALUES ('s1', '{}', 'never')",
        'the existing table sessions is not the orchestrator\'s: it has no column "name"',
    ),
    "legacy sessions without a key": (
        'CREATE TABLE sessions (id TEXT, name TEXT NOT NULL, "ampPrompt" TEXT NOT NULL,'
        ' "repoRoot" TEXT NOT NULL, "baseBranch" TEXT NOT NULL, "branchName" TEXT NOT NULL,'
        ' "worktreePath" TEXT NOT NULL, status TEXT NOT NULL, "threadId" TEXT,'
        ' "createdAt" TEXT NOT NULL)',
        'the existing table sessions is not the orchestrator\'s: its primary key is not ("id")',
    ),
    "integer threads": (
        "CREATE TABLE threads (id INTEGER PRIMARY KEY, title TEXT)",
        "the existing threads and thread_messages tables: they differ from "
        "sessionorm's (threads lacks column",
    ),
    "messages without unique": (
        'CREATE TABLE threads (id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL REFERENCES'
        ' sessions(id) ON DELETE CASCADE, name TEXT NOT NULL, "createdAt" TEXT NOT NULL,'
        " \"updatedAt\" TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active');"
        'CREATE TABLE thread_messages (id TEXT PRIMARY KEY, "threadId" TEXT NOT NULL REFERENCES'
        " threads(id) ON DELETE CASCADE, role TEXT NOT NULL, content TEXT NOT NULL,"
        ' "createdAt" TEXT NOT NULL, idx INTEGER NOT NULL)',
        'missing UNIQUE ("threadId", idx) on thread_messages',
    ),
    "another tool's migrations": (
        "CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT, run_on TEXT);"
        "INSERT INTO migrations VALUES (1, 'init', 'yesterday')",
        'the existing table migrations is not the orchestrator\'s: it has no column "version"',
    ),
}


@pytest.mark.parametrize("kind", FOREIGN)
@pytest.mark.parametrize("args", [["migrate", "--backup"], ["migrate", "--dry-run"], ["status"]])
def test_another_programs_table_is_refused_before_any_backup(backend, kind, args, tmp_path):
    ddl, message = FOREIGN[kind]
    if kind != "web sessions" and not kind.startswith("legacy"):
        backend.load_legacy(legacy_rows())
    with backend.connect() as con:
        for sql in ddl.split(";"):
            con.execute(sql)
    before = backend.snapshot()
    result = invoke(*args, *backend.cli_args)
    if args == ["status"] and "migrations" not in kind:  # status reads only the history
        assert (result.exit_code, result.stderr) == (1, "")
        assert "pending" in result.stdout
        return
    assert result.exit_code == 2, result.output
    line = one_error_line(result.stderr)
    assert message.lower() in line.lower()
    assert [p for p in tmp_path.iterdir() if ".backup-" in p.name or p.suffix == ".dump"] == []
    assert backend.snapshot() == before


# -- the bulk load -------------------------------------------------------------------------------


def constraints(db: Backend) -> list[tuple]:
    return db.query(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid IN ('threads'::regclass, 'thread_messages'::regclass) ORDER BY 1, 2"
    )


def shape(db: Backend) -> dict[str, list]:
    """Everything about the two tables but their rows: columns, constraints, indexes."""
    return {
        "columns": db.query(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_name IN ('threads', 'thread_messages')"
            " ORDER BY 1, 2"
        ),
        "constraints": constraints(db),
        "indexes": db.query(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE tablename IN ('threads', 'thread_messages') ORDER BY 1, 2"
        ),
    }


def test_the_bulk_load_ends_with_the_schema_migration_1_always_made(legacy):
    with pg_database("postgresql") as fresh:
        commands.migrate(fresh.target)  # no legacy rows: the tables are made with their keys on
        expected = shape(fresh)
    report = commands.migrate(legacy.target)
    assert (report.migrated, report.skipped) == (6, 0)
    assert shape(legacy) == expected
    assert [(t, n, d) for t, n, d in constraints(legacy)] == sorted(CONSTRAINTS)
    assert commands.verify(legacy.target).problems == []
    assert commands.diff(legacy.target) == []


def test_empty_tables_of_a_migrated_database_take_the_bulk_path_from_the_store_too(pg):
    with pg.store() as store:
        before = shape(pg)
        store.create_session(name="late", amp_prompt="p", repo_root="/r", thread_id="T-late")
        result = store.migrate_session_thread_ids()
        assert (result.migrated, result.skipped) == (1, 0)
        assert (store.migrate_session_thread_ids().migrated, shape(pg)) == (0, before)
    assert commands.verify(pg.target).problems == []


def test_a_foreign_key_into_threads_survives_the_bulk_load(pg):
    with pg.store():
        pass  # migrated, no rows
    pg.execute(
        'CREATE TABLE bookmarks (id TEXT PRIMARY KEY, "threadId" TEXT'
        " CONSTRAINT bookmarks_thread REFERENCES threads(id))"
    )
    with pg.store() as store:
        store.create_session(name="n", amp_prompt="p", repo_root="/r", thread_id="T-1")
        assert store.migrate_session_thread_ids().migrated == 1
    assert pg.query(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'bookmarks'::regclass AND contype = 'f'"
    ) == [("bookmarks_thread", 'FOREIGN KEY ("threadId") REFERENCES threads(id)')]


# -- statistics ----------------------------------------------------------------------------------


def analyzed(db: Backend) -> set[str]:
    return {
        r[0] for r in db.query("SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()")
    }


def test_migrate_analyzes_the_tables_it_wrote(legacy):
    assert not {"threads", "thread_messages"} & analyzed(legacy)
    assert invoke("migrate", *legacy.cli_args).exit_code == 0
    assert {"threads", "thread_messages", "migrations"} <= analyzed(legacy)


RECORD_TABLES = {"sessionorm_migrated_threads", "sessionorm_unmatched_sessions", "sessionorm_renamed_threads"}


def migrated_by_the_orchestrator(db: Backend, sessions: int) -> None:
    """A legacy database the orchestrator ran migration 1 on: keys on, no ANALYZE, ever."""
    module = shipped_script()
    rows = [
        (
            str(uuid.UUID(int=i + 1, version=4)),
            f"S{i}",
            "p",
            None,
            "/r",
            "main",
            f"b{i}",
            f"/w/{i}",
            "idle",
            None,
            None,
            f"T-{i}" if i % 2 else None,
            f"2025-01-01T00:00:{i % 60:02d}.000Z",
            None,
            None,
            False,
        )
        for i in range(sessions)
    ]
    db.load_legacy(rows)
    tables, indexes = module.statements()
    with db.connect() as con:
        for sql in tables:
            con.execute(sql)
        con.execute(
            "ALTER TABLE threads SET (autovacuum_enabled = off);"
            "ALTER TABLE thread_messages SET (autovacuum_enabled = off);"
            "ALTER TABLE sessions SET (autovacuum_enabled = off)"
        )
        con.execute(module.insert_both_sql_postgres())
        for sql in indexes:
            con.execute(sql)
        con.execute(
            "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL);"
            "INSERT INTO migrations VALUES (1, 'session-thread-relationship', 'then')"
        )


def migrate_without_statistics(db: Backend) -> None:
    """sessionorm's 0002-0005, with their ANALYZE left out: migrations 4 and 5 write the record
    and rename every thread, and migrate would analyze what they wrote; here nothing has
    statistics, as on a file whose tables were loaded and never analyzed."""
    with mock.patch.object(pg_migrator, "analyze_written", lambda database: []):
        commands.migrate(db.target)
    assert not {"sessions", "threads", "thread_messages", *RECORD_TABLES} & analyzed(db)


def migrated_without_statistics(db: Backend, sessions: int) -> None:
    migrated_by_the_orchestrator(db, sessions)
    migrate_without_statistics(db)


def test_verify_data_checks_hash_their_joins_without_statistics(pg):
    migrated_without_statistics(pg, 5000)
    before = analyzed(pg)
    database = open_url(pg.target)
    try:
        foreign_keys = [
            (t, fk) for t in ("threads", "thread_messages") for fk in database.get_foreign_keys(t)
        ]
        queries = [
            f"SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID} AND {NOT_YET_MIGRATED_PG}",
            shipped_script().foreign_rows_sql(),
            # verify's data check, from the record of migrated threads
            thread_record.data_counts_sql(True),
            thread_record.LOST_SHOWN.format(shown=5),
        ]
        queries += [orphans_sql(table, fk) for table, fk in foreign_keys]
        for sql in queries:
            with linear_plans(database):
                plan = "\n".join(r[0] for r in database.execute_sql(f"EXPLAIN {sql}"))
            assert "Nested Loop" not in plan, plan
            assert "SubPlan" not in plan, plan
    finally:
        database.close()
    report = commands.verify(pg.target)
    assert report.problems == []
    assert analyzed(pg) == before  # verify wrote nothing, statistics included


def test_verify_finds_a_lost_migrated_thread_without_statistics(pg):
    migrated_without_statistics(pg, 200)
    [(gone,)] = pg.query("SELECT min(id) FROM threads")
    pg.execute("DELETE FROM threads WHERE id = %s", (gone,))
    assert commands.verify(pg.target).problems == [
        f"1 migrated threads are gone, with all their messages (at least their 1 migration "
        f"markers), while their sessions remain: {gone}; `sessionorm restore-threads --from "
        "BACKUP` copies back what a backup holds of them and nothing else (see README, 'Living "
        "with the orchestrator')"
    ]


def test_verify_counts_sessions_migrated_twice_without_statistics(pg):
    """Another tool ran the data step again for two sessions: a note, counted per session.

    Before migration 4, which records every marker: the record is what verify counts."""
    migrated_by_the_orchestrator(pg, 200)
    pg.execute("""
        UPDATE migrations SET applied_at = '2030-01-01T00:00:00.000Z' WHERE version = 1;
        INSERT INTO threads SELECT 'again-' || t.id, t."sessionId", t.name, t."createdAt",
          t."updatedAt", 'active' FROM threads t ORDER BY t.id LIMIT 2;
        INSERT INTO thread_messages SELECT 'again-m-' || m.id, 'again-' || m."threadId", 'system',
          m.content, m."createdAt", 0 FROM thread_messages m
          WHERE m."threadId" IN (SELECT substr(id, 7) FROM threads WHERE left(id, 6) = 'again-')""")
    migrate_without_statistics(pg)
    report = commands.verify(pg.target)
    assert report.problems == []
    assert report.notes == [
        "2 sessions have more than one migrated thread (the migration ran "
        "again, e.g. the orchestrator's own runner: see README, 'Living with "
        "the orchestrator')"
    ]


# -- one clear line ------------------------------------------------------------------------------

BAD_MIGRATION = """
def up(migrator, db):
    db.execute_sql("CREATE TABLE extra (id TEXT PRIMARY KEY)")
    db.execute_sql("INSERT INTO sessions (id) VALUES ('no-name')")  # NOT NULL: DETAIL, failing row
"""


def test_a_driver_error_with_detail_lines_is_one_line_and_changes_nothing(migrated, tmp_path):
    scripts = tmp_path / "mine"
    scripts.mkdir()
    (scripts / "0008_bad.py").write_text(BAD_MIGRATION)  # after the shipped 0001-0007
    before = migrated.snapshot()
    result = invoke("migrate", "--migrations-dir", scripts, *migrated.cli_args)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line.startswith(
        "error: migration 0008_bad (up) failed, nothing of it was kept: IntegrityError: null value in column"
    ), line
    assert migrated.snapshot() == before


def test_migrating_a_database_of_another_program_says_so(backend):
    backend.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)")
    backend.execute("INSERT INTO invoices VALUES (1, 100)")
    plan = invoke("migrate", "--dry-run", *backend.cli_args)
    assert (
        "note: no sessions table; the orchestrator's tables would be added next to 1 other"
        " table(s): invoices\n" in plan.stdout
    )
    result = invoke("migrate", *backend.cli_args)
    assert result.exit_code == 0, result.output
    assert (
        "had no sessions table; the orchestrator's tables were added next to its 1 other"
        " table(s): invoices\n" in result.stdout
    )
    assert backend.query("SELECT total FROM invoices") == [(100,)]
