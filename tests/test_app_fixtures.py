"""Files the real orchestrator app made (tests/fixtures/app, see its README for how), each
ending in `verify`: the app first, sessionorm 0.2.0 then the app (its rebuild deleting
threads, its thread-id rewrites), and a copy of an app-used file.

Each test works on a copy of the committed fixture.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from cli_support import invoke
from pg_support import pg_database
from workers import FTS_SEGMENTS

from sessionorm import SessionStore, verify

FIXTURES = Path(__file__).with_name("fixtures") / "app"
COMMITS = ("3b7ef7d", "bcdd7f5", "f785b0c")


def fixture(name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    shutil.copyfile(FIXTURES / name, path)
    return path


def q(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(sql, params).fetchall()


def counts(path: Path) -> dict[str, int]:
    tables = [
        r[0]
        for r in q(path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    # FTS5's segment tables hold as many rows as the index was built in batches: not compared
    return {t: q(path, f'SELECT count(*) FROM "{t}"')[0][0] for t in tables if t not in FTS_SEGMENTS}


def migrate(path: Path) -> str:
    result = invoke("migrate", "--db-path", path)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def verified(path: Path):
    result = invoke("verify", "--db-path", path)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return verify(path)


@pytest.mark.parametrize("commit", COMMITS)
def test_app_first_migrates_keeps_every_row_and_verifies(commit: str, tmp_path: Path) -> None:
    path = fixture(f"app_first_{commit}.sqlite", tmp_path)
    before = counts(path)
    app_threads = q(
        path,
        "SELECT t.id, count(m.id) FROM threads t LEFT JOIN thread_messages m"
        " ON m.threadId = t.id GROUP BY t.id",
    )
    threaded = q(path, "SELECT count(*) FROM sessions WHERE threadId != ''")[0][0]
    migrate(path)
    after = counts(path)
    made = {"threads": threaded, "thread_messages": threaded}  # migration 1: one thread + marker each
    for table, n in before.items():
        assert after[table] == n + made.get(table, 0), table  # no other row removed or added
    expected = sorted((t if t.startswith("T-") else "T-" + t, n) for t, n in app_threads)
    migrated = q(path, "SELECT id FROM threads WHERE name LIKE 'Migrated Thread for %'")
    assert len(migrated) == threaded
    assert (
        sorted(
            q(
                path,
                "SELECT t.id, count(m.id) FROM threads t LEFT JOIN thread_messages m"
                " ON m.threadId = t.id WHERE t.name NOT LIKE 'Migrated Thread for %'"
                " GROUP BY t.id",
            )
        )
        == expected
    )
    report = verified(path)
    assert report.problems == []
    assert not any("cannot be told" in n for n in report.notes)


def test_the_newest_app_first_is_adopted_with_its_amp_mode_column(tmp_path: Path) -> None:
    path = fixture("app_first_f785b0c.sqlite", tmp_path)
    modes = q(path, "SELECT id, ampMode FROM threads ORDER BY id")
    migrate(path)
    assert (
        q(path, "SELECT id, ampMode FROM threads WHERE name NOT LIKE 'Migrated Thread for %' ORDER BY id")
        == modes
    )
    with SessionStore(path) as store:
        thread = store.get_thread(modes[0][0])
        assert thread.amp_mode == modes[0][1]


@pytest.mark.parametrize("commit", ("bcdd7f5", "f785b0c"))
def test_after_the_apps_rebuild_deleted_the_migrated_threads_verify_says_it_cannot_tell(
    commit: str, tmp_path: Path
) -> None:
    """0.2.0 migrated 8 threads; the app's rebuild of `sessions` deleted them all and made 7
    empty `Thread <threadId>` rows. 0.2.0's verify said "1 missing"."""
    path = fixture(f"so020_then_app_{commit}.sqlite", tmp_path)
    assert q(path, "SELECT count(*) FROM thread_messages") == [(0,)]
    migrate(path)
    report = verified(path)
    note = next(n for n in report.notes if "cannot be told" in n)
    assert note.startswith("8 sessions had a threadId but no migrated thread")
    assert "deleted" not in note
    assert q(path, "SELECT count(*) FROM sessionorm_unmatched_sessions") == [(8,)]
    before = counts(path)
    assert invoke("backfill", "--db-path", path).exit_code == 0
    assert counts(path) == before  # nothing is made for sessions whose fate cannot be told


def test_when_iterations_blocked_the_rebuild_the_apps_duplicates_are_notes(tmp_path: Path) -> None:
    path = fixture("so020_then_app_iterations_f785b0c.sqlite", tmp_path)
    migrate(path)
    report = verified(path)
    assert report.problems == []
    assert any(
        n.startswith("7 sessions have the orchestrator app's own `Thread <threadId>` thread")
        for n in report.notes
    )
    assert q(path, "SELECT count(*) FROM threads WHERE substr(id, 1, 2) != 'T-'") == [(0,)]


def test_the_apps_thread_id_rewrites_are_no_loss(tmp_path: Path) -> None:
    path = fixture("so020_rewrites_f785b0c.sqlite", tmp_path)
    migrate(path)
    report = verified(path)
    assert report.problems == []
    assert not any("are gone" in line for line in report.problems + report.notes)


def test_a_file_0_2_0_refused_after_the_app_migrates_now(tmp_path: Path) -> None:
    path = fixture("app_then_so020_f785b0c.sqlite", tmp_path)
    migrate(path)
    assert verified(path).problems == []


def test_a_users_delete_thread_on_an_app_file_is_no_loss(tmp_path: Path) -> None:
    path = fixture("so020_then_app_iterations_f785b0c.sqlite", tmp_path)
    migrate(path)
    migrated_thread = q(path, 'SELECT "threadId" FROM sessionorm_migrated_threads LIMIT 1')[0][0]
    with SessionStore(path) as store:
        store.delete_thread(migrated_thread)
    assert verified(path).problems == []


def app_used(tmp_path: Path) -> Path:
    path = fixture("so020_then_app_iterations_f785b0c.sqlite", tmp_path)
    migrate(path)
    return path


def test_copy_of_an_app_used_file_to_sqlite_carries_the_apps_tables_and_columns(tmp_path: Path) -> None:
    path = app_used(tmp_path)
    target = tmp_path / "copy.sqlite"
    result = invoke("copy", "--from", path, "--to", target)
    assert result.exit_code == 0, result.stderr
    assert counts(target) == counts(path)
    for table in ("threads", "sessions", "iterations", "sessionorm_migrated_threads"):
        assert sorted(q(target, f'SELECT * FROM "{table}"')) == sorted(q(path, f'SELECT * FROM "{table}"'))
    assert verified(target).problems == []


@pytest.mark.parametrize("via", ["postgresql", "pgbouncer"])
def test_copy_of_an_app_used_file_to_postgresql_and_back(via: str, tmp_path: Path) -> None:
    path = app_used(tmp_path)
    with pg_database(via) as database:
        there = invoke("copy", "--from", path, "--to", database.target)
        assert there.exit_code == 0, there.stderr
        assert invoke("verify", "--db-url", database.target).exit_code == 0
        back = tmp_path / "back.sqlite"
        result = invoke("copy", "--from", database.target, "--to", back)
        assert result.exit_code == 0, result.stderr
    assert counts(back) == counts(path)
    for table in ("threads", "thread_messages", "sessionorm_migrated_threads", "iterations"):
        assert sorted(q(back, f'SELECT * FROM "{table}"')) == sorted(q(path, f'SELECT * FROM "{table}"'))
    assert verified(back).problems == []


# -- sessionorm first, then the app ------------------------------------------------------------


def import_fixture_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixture_tool", FIXTURES / "fixture_tool.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_objects(path: Path) -> list[tuple]:
    return [
        (kind, name, (sql or "").replace('"', ""))
        for kind, name, sql in q(path, "SELECT type, name, sql FROM sqlite_master ORDER BY 1, 2")
    ]


@pytest.mark.parametrize("commit", ("bcdd7f5", "f785b0c"))
def test_the_app_changes_nothing_of_a_file_sessionorm_migrated(commit: str, tmp_path: Path) -> None:
    """The fixture: the same legacy file (same seed) migrated by this sessionorm, then the app's
    start-up, a thread, messages and thread-id rewrites of its own. Made again here and
    migrated, it must have exactly the fixture's schema: the app added or rebuilt nothing."""
    ours = tmp_path / "ours.sqlite"
    import_fixture_tool().legacy(ours, "pre", set(), 1)
    migrate(ours)
    used = fixture(f"so030_then_app_{commit}.sqlite", tmp_path)
    assert schema_objects(used) == schema_objects(ours)
    columns = [r[1] for r in q(ours, "PRAGMA table_info(sessions)") if r[1] != "threadId"]
    listed = ", ".join(f'"{c}"' for c in columns)
    assert q(used, f"SELECT {listed} FROM sessions ORDER BY id") == q(
        ours, f"SELECT {listed} FROM sessions ORDER BY id"
    )
    report = verified(used)
    assert report.problems == []
    assert all(t.startswith("T-") for (t,) in q(used, "SELECT id FROM threads"))


def test_the_search_index_stops_the_oldest_apps_rebuild(tmp_path: Path) -> None:
    """3b7ef7d rebuilds `sessions` on every start. With the search index's triggers (migration 7)
    SQLite refuses the rebuild's DROP TABLE, the app rolls it back silently, and every migrated
    thread is still there (before migration 7 the rebuild deleted all 8: see the README)."""
    path = fixture("so030_then_app_3b7ef7d.sqlite", tmp_path)
    assert q(path, "SELECT count(*) FROM threads WHERE name LIKE 'Migrated Thread for %'") == [(8,)]
    result = invoke("verify", "--db-path", path)
    assert result.exit_code == 0, result.output


def test_the_oldest_app_deleted_threads_where_sessionorm_0_2_migrated_and_verify_says_so(
    tmp_path: Path,
) -> None:
    """A file 0.2.0 migrated, opened by 3b7ef7d: every thread gone, before any record existed."""
    path = fixture("so020_then_app_3b7ef7d.sqlite", tmp_path)
    assert q(path, "SELECT count(*) FROM threads") == [(0,)]
    migrate(path)
    result = invoke("verify", "--db-path", path)
    assert result.exit_code == 0
    assert "8 sessions had a threadId but no migrated thread" in result.stdout


def test_iterations_protect_a_file_from_the_oldest_apps_rebuild(tmp_path: Path) -> None:
    path = fixture("so030_iterations_then_app_3b7ef7d.sqlite", tmp_path)
    report = verified(path)
    assert report.problems == []


@pytest.mark.parametrize("commit", ("bcdd7f5", "f785b0c"))
def test_app_first_then_sessionorm_then_the_app_again(commit: str, tmp_path: Path) -> None:
    path = fixture(f"app_first_then_so030_{commit}.sqlite", tmp_path)
    assert verified(path).problems == []


@pytest.mark.parametrize("commit", COMMITS)
def test_on_an_app_first_file_dry_run_and_store_migrate_work_too(commit: str, tmp_path: Path) -> None:
    path = fixture(f"app_first_{commit}.sqlite", tmp_path)
    before = path.read_bytes()
    dry = invoke("migrate", "--dry-run", "--db-path", path)
    assert dry.exit_code == 0, dry.stderr
    assert "would migrate 2 sessions" in dry.stdout
    assert path.read_bytes() == before
    with SessionStore(path, migrate=True) as store:
        assert store.migrate_session_thread_ids().migrated == 0  # backfill: nothing left to do
    assert verified(path).problems == []


AGENT_ITEMS = json.loads((FIXTURES / "agent_items.json").read_text())


@pytest.mark.parametrize("commit", ("bcdd7f5", "f785b0c"))
def test_agent_memory_survives_the_app_and_reads_its_message(commit: str, tmp_path: Path) -> None:
    """Agent sessions written by sessionorm, then the app's start-up, an append of its own to the
    agent's thread and its thread-id sync: every item comes back exactly, the app's message after
    them as a message item, the metadata too, and verify passes."""
    from sessionorm.agents import SessionormSession

    path = fixture(f"so060_agent_then_app_{commit}.sqlite", tmp_path)
    appended = {"role": "user", "content": "Appended by the app to the agent's thread"}
    with SessionormSession("agent-1", path) as one, SessionormSession("agent-2", path) as two:
        assert asyncio.run(one.get_items()) == [*AGENT_ITEMS["agent-1"], appended]
        assert asyncio.run(two.get_items()) == AGENT_ITEMS["agent-2"]
        assert asyncio.run(one.get_metadata()) == AGENT_ITEMS["metadata"]["agent-1"]
        assert asyncio.run(one.pop_item()) == appended
    listed = {i.session_id: i.item_count for i in SessionormSession.list(path)}
    assert listed == {"agent-1": 5, "agent-2": 1}
    result = invoke("verify", "--db-path", path)
    assert result.exit_code == 0, result.output


def test_the_oldest_app_keeps_the_agent_sessions_of_a_file_with_the_search_index(tmp_path: Path) -> None:
    """3b7ef7d's start-up rebuild of `sessions` is refused (the search index's triggers), so the
    agent sessions stay whole, and its append to the agent's thread is read back too."""
    from sessionorm.agents import SessionormSession

    path = fixture("so060_agent_then_app_3b7ef7d.sqlite", tmp_path)
    appended = {"role": "user", "content": "Appended by the app to the agent's thread"}
    with SessionormSession("agent-1", path) as one:
        assert asyncio.run(one.get_items()) == [*AGENT_ITEMS["agent-1"], appended]
    assert invoke("verify", "--db-path", path).exit_code == 0


@pytest.mark.parametrize("commit", COMMITS)
def test_search_finds_what_the_app_wrote_and_nothing_it_deleted(commit: str, tmp_path: Path) -> None:
    """The index built by `sessionorm migrate`, then the app at each commit: its start-up, an
    append to a migrated thread, a deleteSession. Search finds the app's message, nothing of the
    deleted session, and verify passes."""
    path = fixture(f"so070_search_then_app_{commit}.sqlite", tmp_path)
    with SessionStore(path, readonly=True) as store:
        (hit,) = store.search("zebra")
        assert hit.message.content == "a zebra crossing appended by the app"
        assert hit.message.thread.name == "Migrated Thread for Legacy Session 02"
        assert (
            store.count_matches('"migrated from legacy"')
            == q(path, "SELECT count(*) FROM thread_messages")[0][0] - 1
        )
    result = invoke("verify", "--db-path", path)
    assert result.exit_code == 0, result.output


# -- export, import, prune and restore on files the app used ----------------------------------

USED_BY_THE_APP = [
    *(f"so070_search_then_app_{c}.sqlite" for c in COMMITS),
    *(f"so060_agent_then_app_{c}.sqlite" for c in COMMITS),
    "so020_then_app_iterations_f785b0c.sqlite",
]


def used_by_the_app(name: str, tmp_path: Path) -> Path:
    """A copy of the fixture, migrated to this version (a no-op for those at migration 7)."""
    path = fixture(name, tmp_path)
    migrate(path)
    return path


@pytest.mark.parametrize("name", USED_BY_THE_APP)
def test_export_import_export_of_a_file_the_app_used_is_byte_identical(name: str, tmp_path: Path) -> None:
    path = used_by_the_app(name, tmp_path)
    first, second, target = tmp_path / "first.jsonl", tmp_path / "second.jsonl", tmp_path / "new.sqlite"
    assert invoke("export", "--db-path", path, "-o", first).exit_code == 0
    migrate(target)
    result = invoke("import", first, "--db-path", target)
    assert result.exit_code == 0, result.output
    assert invoke("export", "--db-path", target, "-o", second).exit_code == 0
    assert second.read_bytes() == first.read_bytes()
    for table in ("sessions", "threads", "thread_messages", "sessionorm_agent_items"):
        assert sorted(q(target, f'SELECT * FROM "{table}"')) == sorted(q(path, f'SELECT * FROM "{table}"'))
    assert verified(target).problems == []


@pytest.mark.parametrize("name", USED_BY_THE_APP)
def test_prune_of_a_file_the_app_used_deletes_what_its_dry_run_listed_and_verifies(
    name: str, tmp_path: Path, file_digest
) -> None:
    path = used_by_the_app(name, tmp_path)
    before = file_digest(path)
    dry = invoke("prune", "--older-than", "0s", "--dry-run", "--json", "--db-path", path)
    assert dry.exit_code == 0, dry.output
    assert file_digest(path) == before
    listed = json.loads(dry.stdout)
    assert listed["sessions"], "the fixture's sessions are all older than now"
    done = invoke("prune", "--older-than", "0s", "--json", "--db-path", path)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["sessions"] == listed["sessions"] and report["tables"] == listed["tables"]
    kept = {r[0] for r in q(path, "SELECT id FROM sessions")}
    assert kept == set(report["running_kept"]) | set(report["unreadable_kept"])
    for table in ("iterations", "tool_calls"):
        if q(path, "SELECT 1 FROM sqlite_master WHERE name = ?", (table,)):
            assert q(
                path, f'SELECT count(*) FROM {table} WHERE "sessionId" NOT IN (SELECT id FROM sessions)'
            ) == [(0,)]
    assert verified(path).problems == []


@pytest.mark.parametrize("name", USED_BY_THE_APP)
def test_restore_of_a_file_the_app_used_brings_back_every_row(name: str, tmp_path: Path) -> None:
    path = used_by_the_app(name, tmp_path)
    before = counts(path)
    saved = tmp_path / "saved.sqlite"
    assert invoke("backup", "--db-path", path, "-o", saved).exit_code == 0
    assert invoke("prune", "--older-than", "0s", "--db-path", path).exit_code == 0
    assert counts(path) != before
    result = invoke("restore", saved, "--db-path", path)
    assert result.exit_code == 0, result.output
    assert counts(path) == before
    for table in ("sessions", "threads", "thread_messages"):
        assert sorted(q(path, f'SELECT * FROM "{table}"')) == sorted(q(saved, f'SELECT * FROM "{table}"'))
    assert verified(path).problems == []
