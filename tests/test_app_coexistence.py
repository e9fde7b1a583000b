"""Living beside the orchestrator app: its schema, its `T-` thread ids, and losses judged from
the record of migrated threads (migration 4), never from what the app rewrites.

The app's own writes are made here with raw SQL, exactly as its code runs them (its
`updateSessionThreadId`, its `Thread <threadId>` rows, its rebuild of `sessions`); files made
by the real app are in `test_app_fixtures.py`.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
import workers
from cli_support import APP_TABLES, invoke

from sessionorm import SessionStore, ValidationError, verify
from sessionorm.backends import backend_of
from sessionorm.backends.sqlite_files import open_sqlite
from sessionorm.runner import MigrationRunner

BEFORE_0_3 = "0002_orchestrator_index_names"  # what sessionorm 0.2.0 shipped


def migrated_as_0_2(path: Path, bare_threads: int = 0) -> Path:
    """`path` (a legacy file) migrated as sessionorm 0.2.0 left it: migrations 1 and 2, and
    `bare_threads` threads its `create_thread` made (bare UUID ids), each with two messages."""
    db = open_sqlite(path, 5.0)
    try:
        MigrationRunner(db).up(target=BEFORE_0_3)
    finally:
        db.close()
    with sqlite3.connect(path) as con:
        sessions = [r[0] for r in con.execute("SELECT id FROM sessions ORDER BY id")]
        for n in range(bare_threads):
            tid = str(uuid.uuid4())
            con.execute(
                "INSERT INTO threads VALUES (?, ?, 'mine', '2025-09-01T00:00:00.000Z',"
                " '2025-09-01T00:00:00.000Z', 'active')",
                (tid, sessions[n]),
            )
            for idx in range(2):
                con.execute(
                    "INSERT INTO thread_messages VALUES (?, ?, 'user', 'hi', '2025-09-01T00:00:00.000Z', ?)",
                    (str(uuid.uuid4()), tid, idx),
                )
    return path


def rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(sql, params).fetchall()


def one(path: Path, sql: str, params: tuple = ()):
    return rows(path, sql, params)[0][0]


def ok(*args) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


# -- the app's schema ----------------------------------------------------------------------------


def test_a_new_file_carries_the_apps_newest_schema(db_path: Path) -> None:
    SessionStore(db_path).close()
    threads = {r[1]: r for r in rows(db_path, "PRAGMA table_info(threads)")}
    sessions = {r[1]: r for r in rows(db_path, "PRAGMA table_info(sessions)")}
    assert "ampMode" in threads
    assert {"mode", "autoCommit", "ampMode"} <= set(sessions)
    assert sessions["ampPrompt"][3] == 0  # nullable: the app's rebuild never runs
    tables = {r[0] for r in rows(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(APP_TABLES) <= tables
    assert "threadId" in {r[1] for r in rows(db_path, "PRAGMA table_info(batch_items)")}
    with pytest.raises(sqlite3.IntegrityError):  # the app's CHECK
        with sqlite3.connect(db_path) as con:
            con.execute("UPDATE threads SET ampMode = 'nonsense'")
            con.execute(
                "INSERT INTO sessions (id, name, ampPrompt, repoRoot, baseBranch, branchName,"
                " worktreePath, status, createdAt) VALUES ('s', 'n', NULL, '/r', 'main', 'b',"
                " '/w', 'idle', '2025-01-01T00:00:00.000Z')"
            )
            con.execute(
                "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, ampMode)"
                " VALUES ('T-x', 's', 'n', 'c', 'u', 'nonsense')"
            )


def test_migrating_a_pre_layout_file_makes_ampprompt_nullable_without_losing_a_row(legacy_db, dump) -> None:
    path = migrated_as_0_2(legacy_db(n=12, threaded=8, iterations=1))
    before = {
        t: one(path, f"SELECT count(*) FROM {t}")
        for t in ("sessions", "threads", "thread_messages", "iterations", "tool_calls")
    }
    ok("migrate", "--db-path", path)
    after = {t: one(path, f"SELECT count(*) FROM {t}") for t in before}
    assert after == before
    assert [r[3] for r in rows(path, "PRAGMA table_info(sessions)") if r[1] == "ampPrompt"] == [0]
    assert rows(path, "PRAGMA foreign_key_check") == []
    assert verify(path).ok


def test_a_column_nobody_knows_is_a_note_not_drift(db_path: Path) -> None:
    SessionStore(db_path).close()
    with sqlite3.connect(db_path) as con:
        con.execute("ALTER TABLE threads ADD COLUMN futureAppColumn TEXT")
    report = verify(db_path)
    assert report.ok, report.problems
    assert any("threads has a column futureAppColumn" in n for n in report.notes)
    result = invoke("diff", "--db-path", db_path)
    assert result.exit_code == 0 and "drop" not in result.stdout


# -- T- ids --------------------------------------------------------------------------------------


def test_create_thread_makes_t_ids(store: SessionStore, session) -> None:
    thread = store.create_thread(session.id, "Feature Discussion", amp_mode="local-cli").id
    assert thread.startswith("T-") and uuid.UUID(thread[2:]).version == 4
    assert store.get_thread(thread).amp_mode == "local-cli"


def test_create_thread_refuses_an_amp_mode_the_app_refuses(store: SessionStore, session) -> None:
    with pytest.raises(ValidationError, match="amp_mode"):
        store.create_thread(session.id, "x", amp_mode="prod")
    assert store.get_session_threads(session.id) == []


def test_migrate_renames_bare_thread_ids_messages_following_and_rollback_puts_them_back(legacy_db) -> None:
    path = migrated_as_0_2(legacy_db(n=10, threaded=6), bare_threads=3)
    before = rows(
        path,
        "SELECT t.id, count(m.id) FROM threads t LEFT JOIN thread_messages m"
        " ON m.threadId = t.id GROUP BY t.id ORDER BY t.id",
    )
    assert not any(tid.startswith("T-") for tid, _ in before)
    ok("migrate", "--db-path", path)
    after = rows(
        path,
        "SELECT t.id, count(m.id) FROM threads t LEFT JOIN thread_messages m"
        " ON m.threadId = t.id GROUP BY t.id ORDER BY t.id",
    )
    assert sorted(after) == sorted(("T-" + tid, n) for tid, n in before)
    recorded = {r[0] for r in rows(path, 'SELECT "threadId" FROM sessionorm_migrated_threads')}
    assert len(recorded) == 6 and all(t.startswith("T-") for t in recorded)
    assert verify(path).ok
    ok("rollback", "--db-path", path)  # 0007: the search index goes
    ok("rollback", "--db-path", path)  # 0006: no agent items, its tables go
    ok("rollback", "--db-path", path)  # 0005: the old ids back
    back = rows(
        path,
        "SELECT t.id, count(m.id) FROM threads t LEFT JOIN thread_messages m"
        " ON m.threadId = t.id GROUP BY t.id ORDER BY t.id",
    )
    assert back == before
    assert not any(
        r[0].startswith("T-") for r in rows(path, 'SELECT "threadId" FROM sessionorm_migrated_threads')
    )
    assert rows(path, "PRAGMA foreign_key_check") == []


# -- what verify counts --------------------------------------------------------------------------


def migrated(legacy_db, **options) -> Path:
    path = legacy_db(**{"n": 12, "threaded": 8, **options})
    ok("migrate", "--db-path", path)
    return path


def test_the_app_rewriting_thread_ids_is_no_loss(legacy_db) -> None:
    path = migrated(legacy_db)
    with sqlite3.connect(path) as con:  # updateSessionThreadId, then its ensureThreadRecord
        for (sid,) in con.execute("SELECT id FROM sessions WHERE threadId != '' LIMIT 3").fetchall():
            new = f"T-{uuid.uuid4()}"
            con.execute("UPDATE sessions SET threadId = ? WHERE id = ?", (new, sid))
            con.execute(
                "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, status)"
                " VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z',"
                " 'active')",
                (new, sid, f"Thread {new}"),
            )
        # syncAllSessionThreadIds: sessions without a threadId get the current one
        con.execute("UPDATE sessions SET threadId = 'T-current' WHERE threadId IS NULL OR threadId = ''")
    report = verify(path)
    assert report.ok, report.problems
    assert [n for n in report.notes if "backfill" in n] == [
        "4 sessions carry a threadId and have no thread for it yet (created, or given their "
        "threadId, after the migration): `sessionorm backfill` (or "
        "SessionStore.migrate_session_thread_ids()) creates them"
    ]
    assert not any("gone" in n or "cannot be told" in n for n in report.notes)
    before = one(path, "SELECT count(*) FROM threads")
    assert invoke("backfill", "--db-path", path).exit_code == 0
    assert one(path, "SELECT count(*) FROM threads") == before + 4  # the synced ones, made now


def test_a_users_delete_thread_is_no_loss_and_backfill_does_not_bring_it_back(legacy_db) -> None:
    path = migrated(legacy_db)
    migrated_thread = one(path, 'SELECT "threadId" FROM sessionorm_migrated_threads LIMIT 1')
    with SessionStore(path) as store:
        store.delete_thread(migrated_thread)
    assert verify(path).ok
    ok("backfill", "--db-path", path)
    assert rows(path, "SELECT 1 FROM threads WHERE id = ?", (migrated_thread,)) == []
    assert one(path, "SELECT count(*) FROM threads") == 7


def test_threads_deleted_behind_sessionorms_back_are_named_and_restored_from_a_backup(
    legacy_db, tmp_path: Path
) -> None:
    path = migrated(legacy_db)
    backup = tmp_path / "before.sqlite"
    ok("backup", "--db-path", path, "-o", backup)
    with SessionStore(path) as store:  # rows written after the backup must survive the restore
        sid = one(path, "SELECT id FROM sessions LIMIT 1")
        newer = store.create_thread(sid, "newer").id
        store.add_thread_message(newer, "user", "written after the backup")
    lost = [
        r[0]
        for r in rows(path, 'SELECT "threadId" FROM sessionorm_migrated_threads ORDER BY "threadId" LIMIT 3')
    ]
    with sqlite3.connect(path) as con:  # as the app's rebuild does: threads gone, sessions kept
        con.execute("PRAGMA foreign_keys = ON")
        con.executemany("DELETE FROM threads WHERE id = ?", [(t,) for t in lost])
    report = verify(path)
    assert not report.ok
    assert len(report.problems) == 1
    problem = report.problems[0]
    assert problem.startswith("3 migrated threads are gone")
    assert all(t in problem for t in lost) and "restore-threads --from BACKUP" in problem
    dry = invoke("restore-threads", "--db-path", path, "--from", backup, "--dry-run")
    assert dry.exit_code == 0 and "would restore 3 threads with 3 messages" in dry.stdout
    assert not verify(path).ok  # the dry run changed nothing
    out = ok("restore-threads", "--db-path", path, "--from", backup)
    assert "restored 3 threads with 3 messages" in out
    assert verify(path).ok
    assert one(path, "SELECT count(*) FROM thread_messages WHERE threadId = ?", (newer,)) == 1
    again = ok("restore-threads", "--db-path", path, "--from", backup)
    assert again.startswith("nothing to restore")


def test_restore_threads_does_not_bring_back_a_thread_deleted_through_sessionorm(
    legacy_db, tmp_path: Path
) -> None:
    path = migrated(legacy_db)
    backup = tmp_path / "before.sqlite"
    ok("backup", "--db-path", path, "-o", backup)
    gone = one(path, 'SELECT "threadId" FROM sessionorm_migrated_threads LIMIT 1')
    with SessionStore(path) as store:
        store.delete_thread(gone)
    assert ok("restore-threads", "--db-path", path, "--from", backup).startswith("nothing to restore")


def test_restore_threads_refuses_a_backup_without_threads_and_changes_nothing(legacy_db, file_digest) -> None:
    path = migrated(legacy_db)
    not_migrated = legacy_db(name="plain.db")
    before = file_digest(path)
    result = invoke("restore-threads", "--db-path", path, "--from", not_migrated)
    assert result.exit_code == 2
    assert "the backup has no threads table" in result.stderr
    assert file_digest(path) == before


def test_files_migrated_before_the_record_get_it_once_and_unmatched_sessions_are_counted(legacy_db) -> None:
    path = migrated_as_0_2(legacy_db(n=12, threaded=8))
    # the app's rebuild: every migrated thread gone with its messages, then its start-up
    # makes `Thread <threadId>` rows for some sessions
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM thread_messages")
        con.execute("DELETE FROM threads")
        for sid, tid in con.execute(
            "SELECT id, threadId FROM sessions WHERE threadId != '' LIMIT 5"
        ).fetchall():
            con.execute(
                "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, status)"
                " VALUES (?, ?, ?, '2099-01-01T00:00:00.000Z', '2099-01-01T00:00:00.000Z',"
                " 'active')",
                (tid, sid, f"Thread {tid}"),
            )
    ok("migrate", "--db-path", path)
    report = verify(path)
    assert report.ok, report.problems  # it cannot be told: a note, never "deleted"
    note = next(n for n in report.notes if "cannot be told" in n)
    assert note.startswith("8 sessions had a threadId but no migrated thread")
    assert "deleted" not in note and "restore the backup" not in note
    assert one(path, "SELECT count(*) FROM sessionorm_unmatched_sessions") == 8
    ok("backfill", "--db-path", path)
    assert one(path, "SELECT count(*) FROM threads") == 5  # nothing made for the unmatched


def test_the_apps_duplicate_thread_beside_a_migrated_one_is_a_note(legacy_db) -> None:
    path = migrated(legacy_db)
    with sqlite3.connect(path) as con:
        sid, legacy = con.execute(
            'SELECT "sessionId", "legacyThreadId" FROM sessionorm_migrated_threads LIMIT 1'
        ).fetchone()
        con.execute(
            "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, status)"
            " VALUES (?, ?, ?, 'c', 'u', 'active')",
            (legacy, sid, f"Thread {legacy}"),
        )
    report = verify(path)
    assert report.ok
    assert any(
        n.startswith("1 sessions have the orchestrator app's own `Thread <threadId>` thread")
        for n in report.notes
    )


def test_deleting_the_session_of_a_migrated_thread_is_no_loss(legacy_db) -> None:
    path = migrated(legacy_db)
    sid = one(path, 'SELECT "sessionId" FROM sessionorm_migrated_threads LIMIT 1')
    with sqlite3.connect(path) as con:  # the app's deleteSession
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("DELETE FROM sessions WHERE id = ?", (sid,))
    assert verify(path).ok


# -- delete_session ------------------------------------------------------------------------------


def test_delete_session_deletes_the_apps_rows_in_its_order_and_says_what(legacy_db) -> None:
    path = migrated(legacy_db, iterations=2)
    sid = one(path, 'SELECT "sessionId" FROM sessionorm_migrated_threads LIMIT 1')
    with sqlite3.connect(path) as con:
        con.execute(
            "INSERT INTO merge_history VALUES ('m1', ?, 's', NULL, 'main', 'squash', 'ok', NULL, NULL)",
            (sid,),
        )
        con.execute("INSERT INTO stream_events VALUES ('e1', ?, 't', 'ts', '{}')", (sid,))
    with SessionStore(path) as store:
        deleted = store.delete_session(sid)
    assert deleted == {
        "tool_calls": 2,
        "iterations": 2,
        "merge_history": 1,
        "stream_events": 1,
        "thread_messages": 1,
        "threads": 1,
        "sessions": 1,
    }
    for table in ("iterations", "tool_calls", "merge_history", "stream_events", "threads"):
        column = "sessionId"
        assert one(path, f'SELECT count(*) FROM {table} WHERE "{column}" = ?', (sid,)) == 0
    assert rows(path, "PRAGMA foreign_key_check") == []
    assert verify(path).ok


def test_delete_session_refuses_rows_of_a_table_it_does_not_know_and_deletes_nothing(legacy_db, dump) -> None:
    path = migrated(legacy_db, iterations=1)
    sid = one(path, "SELECT id FROM sessions LIMIT 1")
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO swebench_runs (id, name, casesDir, createdAt) VALUES ('r', 'n', 'd', 'c')")
        con.execute(
            "INSERT INTO swebench_case_results (runId, caseId, sessionId, status) VALUES ('r', 'c', ?, 'ok')",
            (sid,),
        )
    before = dump(path)
    with (
        SessionStore(path) as store,
        pytest.raises(ValidationError, match=r"swebench_case_results \(1 rows\)"),
    ):
        store.delete_session(sid)
    assert dump(path) == before


def test_a_thread_made_later_without_a_t_id_is_a_note_and_backfill_renames_it(legacy_db) -> None:
    path = migrated(legacy_db)
    sid = one(path, "SELECT id FROM sessions LIMIT 1")
    with sqlite3.connect(path) as con:  # the app at 3b7ef7d: createThread makes a bare UUID
        bare = str(uuid.uuid4())
        con.execute(
            "INSERT INTO threads (id, sessionId, name, createdAt, updatedAt, status)"
            " VALUES (?, ?, 'app thread', 'c', 'u', 'active')",
            (bare, sid),
        )
        con.execute(
            "INSERT INTO thread_messages VALUES (?, ?, 'user', 'hi', 'c', 0)", (str(uuid.uuid4()), bare)
        )
    report = verify(path)
    assert report.ok
    assert (
        "1 threads have an id without `T-`, which the orchestrator app does not list: "
        "`sessionorm backfill` renames them to `T-<id>`" in report.notes
    )
    ok("backfill", "--db-path", path)
    assert one(path, "SELECT count(*) FROM thread_messages WHERE threadId = ?", ("T-" + bare,)) == 1
    assert not any("without `T-`" in n for n in verify(path).notes)


@pytest.mark.parametrize("via", ["postgresql", "pgbouncer"])
def test_on_postgresql_losses_come_from_the_record_and_come_back_from_a_backup(
    via: str, tmp_path: Path
) -> None:
    import psycopg
    from pg_support import pg_database

    with pg_database(via) as database:
        with SessionStore(database.target) as store:
            sessions = [
                store.create_session(name=f"s{n}", amp_prompt="p", repo_root="/r", thread_id=f"T-legacy-{n}")
                for n in range(4)
            ]
            made = store.migrate_session_thread_ids()
            assert made.migrated == 4
            recorded = [t for s in sessions for t in store.get_session_threads(s.id)]
            assert all(t.id.startswith("T-") for t in recorded)
            store.delete_thread(recorded[0])  # the user's own deletion: no loss
        backup = tmp_path / "backup.sqlite"
        ok("copy", "--from", database.target, "--to", backup)
        with psycopg.connect(database.direct, autocommit=True) as con:  # behind sessionorm's back
            con.execute("DELETE FROM threads WHERE id = %s", (recorded[1].id,))
            con.execute(
                'UPDATE sessions SET "threadId" = %s WHERE id = %s', ("T-rewritten", sessions[2].id)
            )  # the app's rewrite: no loss
        report = verify(database.target)
        assert report.problems == [
            next(
                p
                for p in report.problems
                if p.startswith(
                    f"1 migrated threads are gone, with all their messages (at least their 1 migration "
                    f"markers), while their sessions remain: {recorded[1].id};"
                )
            )
        ]
        out = ok("restore-threads", "--db-url", database.target, "--from", backup)
        assert out.endswith(f"restored 1 threads with 1 messages from {backup}\n")
        assert verify(database.target).ok
        with SessionStore(database.target) as store:
            assert [m.content for m in store.get_thread_messages(recorded[1].id)] == [
                "Thread migrated from legacy threadId: T-legacy-1"
            ]


def schema_and_shape(path: Path) -> tuple[list, dict]:
    """Every schema object (quotes aside), and per table its row count, with the `T-` threads
    and the recorded threads whose marker is theirs. Renames are left out: made at once, the
    threads never had another id, so there is nothing for a rollback of 0005 to put back."""
    objects = [
        (kind, name, table, (sql or "").replace('"', ""))
        for kind, name, table, sql in rows(
            path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 1, 2"
        )
    ]
    tables = [
        r[1]
        for r in objects
        if r[0] == "table"
        and not r[1].startswith("sqlite_")
        and r[1] not in ("sessionorm_renamed_threads", *workers.FTS_SEGMENTS)
    ]
    shape = {t: (one(path, f'SELECT count(*) FROM "{t}"'),) for t in tables}
    shape["threads"] += (one(path, "SELECT count(*) FROM threads WHERE id LIKE 'T-%'"),)
    shape["sessionorm_migrated_threads"] += (
        one(
            path,
            "SELECT count(*) FROM sessionorm_migrated_threads r JOIN threads t"
            ' ON t.id = r."threadId" JOIN thread_messages m ON m.id = r."markerId"'
            ' AND m."threadId" = t.id',
        ),
    )
    return objects, shape


def migrate_one_by_one(db) -> None:
    """Every migration in its own step (no script applies others with it), then close `db`."""
    try:
        runner = MigrationRunner(db)
        for migration in runner.migrations():
            runner.up(target=migration.name)
        backend_of(db).search.catch_up()  # as `sessionorm migrate` does after the migrations
    finally:
        db.close()


@pytest.mark.parametrize("flavor", ["pre", "final"])
def test_migrations_1_to_5_at_once_leave_what_they_leave_one_by_one(legacy_db, flavor) -> None:
    at_once = legacy_db(n=30, threaded=20, duplicates=3, iterations=1, flavor=flavor, name="a.db")
    one_by_one = legacy_db(n=30, threaded=20, duplicates=3, iterations=1, flavor=flavor, name="b.db")
    ok("migrate", "--db-path", at_once)
    migrate_one_by_one(open_sqlite(one_by_one, 5.0))
    assert schema_and_shape(at_once) == schema_and_shape(one_by_one)
    assert verify(at_once).ok and verify(one_by_one).ok


@pytest.mark.parametrize("via", ["postgresql"])
def test_on_postgresql_migrations_1_to_5_at_once_leave_what_they_leave_one_by_one(via) -> None:
    import psycopg
    from pg_support import legacy_rows, pg_database

    from sessionorm.backends.pg_connections import open_url

    def shape(url: str) -> tuple:
        with psycopg.connect(url) as con:
            constraints = con.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
            ).fetchall()
            index_defs = con.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
            counts = con.execute(
                "SELECT (SELECT count(*) FROM threads), (SELECT count(*) FROM threads WHERE id LIKE 'T-%'),"
                " (SELECT count(*) FROM thread_messages), (SELECT count(*) FROM sessionorm_migrated_threads r"
                ' JOIN thread_messages m ON m.id = r."markerId" AND m."threadId" = r."threadId")'
            ).fetchone()
        return constraints, index_defs, counts

    with pg_database(via) as at_once, pg_database(via) as one_by_one:
        for database in (at_once, one_by_one):
            database.load_legacy(legacy_rows())
        ok("migrate", "--db-url", at_once.target)
        migrate_one_by_one(open_url(one_by_one.target, 5.0))
        assert shape(at_once.direct) == shape(one_by_one.direct)


def test_delete_session_refuses_rows_that_reference_its_rows_and_deletes_nothing(legacy_db, dump) -> None:
    path = migrated(legacy_db, iterations=1)
    sid, iteration = rows(path, "SELECT sessionId, id FROM iterations LIMIT 1")[0]
    with sqlite3.connect(path) as con:  # another program's table, under iterations
        con.execute(
            "CREATE TABLE audit (id TEXT PRIMARY KEY, iterationId TEXT NOT NULL REFERENCES iterations(id))"
        )
        con.execute("INSERT INTO audit VALUES ('a', ?)", (iteration,))
    before = dump(path)
    with SessionStore(path) as store, pytest.raises(ValidationError, match="nothing was deleted"):
        store.delete_session(sid)
    assert dump(path) == before
