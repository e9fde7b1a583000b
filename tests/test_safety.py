"""The SQLite safety rules of the contract "Known gaps", each with a test that fails without it.

Scratch migration scripts in tmp_path run through `MigrationRunner(db, directory=...)`, the
same runner `sessionorm migrate` uses, on real files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_support import (
    copy_real_migration,
    invoke,
    one_error_line,
    query,
    raw,
    with_app_schema,
    write_migration,
)

from sessionorm import MigrationError
from sessionorm.backends.sqlite_files import open_sqlite
from sessionorm.runner import MigrationRunner

FLAVOURS = ["pre", "final"]

PROBE = """\
import json
import re
from pathlib import Path


def up(migrator, db):
    connection = db.connection()
    Path({out!r}).write_text(json.dumps({{
        "foreign_keys": db.execute_sql("PRAGMA foreign_keys").fetchone()[0],
        "in_transaction": connection.in_transaction,
    }}))
"""

REBUILD_THREADS = """\
from playhouse.migrate import migrate


def up(migrator, db):
    # peewee rebuilds the table: create a copy, DROP the original, rename the copy.
    migrate(migrator.drop_not_null("threads", "name", legacy=True))
"""

REBUILD_SESSIONS = """\
from playhouse.migrate import migrate


def up(migrator, db):
    migrate(migrator.drop_column({table!r}, {column!r}, legacy=True))
"""

ORPHAN_THREAD = """\
def up(migrator, db):
    db.execute_sql(
        "INSERT INTO threads (id, \\"sessionId\\", name, \\"createdAt\\", \\"updatedAt\\")"
        " VALUES ('00000000-0000-4000-8000-000000000000', 'no-such-session', 'orphan',"
        " '2025-08-01T00:00:00.000Z', '2025-08-01T00:00:00.000Z')")
"""

TRIGGER = (
    "CREATE TRIGGER sessions_touch AFTER UPDATE OF status ON sessions BEGIN"
    " UPDATE sessions SET notes = 'touched' WHERE id = NEW.id; END"
)
VIEW = "CREATE VIEW open_sessions AS SELECT id, name, \"threadId\" FROM sessions WHERE status != 'done'"


@pytest.fixture(params=FLAVOURS)
def flavor(request) -> str:
    return request.param


@pytest.fixture
def legacy(flavor, legacy_db) -> Path:
    return legacy_db(8, flavor=flavor, threaded=5, duplicates=2, iterations=2)


@pytest.fixture
def migrated(legacy) -> Path:
    assert invoke("migrate", "--db-path", legacy).exit_code == 0
    return legacy


@pytest.fixture
def scripts(tmp_path) -> Path:
    """A scratch migrations folder."""
    return tmp_path / "scratch_migrations"


@pytest.fixture
def opened():
    """`opened(path)`: a sessionorm connection (foreign_keys=ON), closed after the test."""
    databases = []

    def open_(path: Path):
        db = open_sqlite(path)
        databases.append(db)
        return db

    yield open_
    for db in databases:
        db.close()


def message_count(path: Path) -> int:
    return query(path, "SELECT count(*) FROM thread_messages")[0][0]


def schema(path: Path) -> list[tuple]:
    return query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")


# -- (a) foreign keys off before the transaction, on again after ---------------------------


def test_foreign_keys_are_off_inside_the_migration_transaction(legacy, scripts, tmp_path, opened):
    out = tmp_path / "probe.json"
    write_migration(scripts, "0001_probe.py", PROBE.format(out=str(out)))
    db = opened(legacy)
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    MigrationRunner(db, directory=scripts).up()
    seen = json.loads(out.read_text())
    assert seen == {"foreign_keys": 0, "in_transaction": True}


def test_foreign_keys_are_on_again_after_the_migration(legacy, scripts, tmp_path, opened):
    write_migration(scripts, "0001_probe.py", PROBE.format(out=str(tmp_path / "probe.json")))
    db = opened(legacy)
    MigrationRunner(db, directory=scripts).up()
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_foreign_keys_are_on_again_after_a_failed_migration(migrated, scripts, opened):
    copy_real_migration(scripts)
    write_migration(scripts, "0008_orphan.py", ORPHAN_THREAD)
    db = opened(migrated)
    with pytest.raises(MigrationError):
        MigrationRunner(db, directory=scripts).up()
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_rebuilding_a_cascade_parent_keeps_its_children(migrated, scripts, opened):
    """DROP TABLE of the old `threads` must not cascade-delete thread_messages."""
    messages = message_count(migrated)
    assert messages > 0
    copy_real_migration(scripts)
    write_migration(scripts, "0008_rebuild_threads.py", REBUILD_THREADS)
    db = opened(migrated)
    assert MigrationRunner(db, directory=scripts).up() == ["0008_rebuild_threads"]
    db.close()
    assert message_count(migrated) == messages
    assert query(migrated, "SELECT \"notnull\" FROM pragma_table_info('threads') WHERE name = 'name'") == [
        (0,)
    ]  # the rebuild did happen
    assert query(migrated, "PRAGMA foreign_key_check") == []


# -- (b) never inside an already-open transaction ------------------------------------------


def test_runner_refuses_to_start_inside_an_open_transaction(legacy, opened, dump):
    before = dump(legacy)
    db = opened(legacy)
    runner = MigrationRunner(db)
    with pytest.raises(MigrationError, match="open transaction"):
        with db.atomic():
            runner.up()
    db.close()
    assert dump(legacy) == before


def test_runner_refuses_a_transaction_begun_on_the_raw_connection(legacy, opened, dump):
    before = dump(legacy)
    db = opened(legacy)
    db.connection().execute("BEGIN")
    with pytest.raises(MigrationError, match="open transaction"):
        MigrationRunner(db).up()
    db.connection().execute("ROLLBACK")
    db.close()
    assert dump(legacy) == before


def test_rebuild_inside_an_open_transaction_is_refused_and_children_survive(migrated, scripts, opened):
    messages = message_count(migrated)
    copy_real_migration(scripts)
    write_migration(scripts, "0008_rebuild_threads.py", REBUILD_THREADS)
    db = opened(migrated)
    runner = MigrationRunner(db, directory=scripts)
    with pytest.raises(MigrationError):
        with db.atomic():
            runner.up()
    db.close()
    assert message_count(migrated) == messages
    assert query(migrated, "SELECT version FROM migrations ORDER BY 1") == [(v,) for v in range(1, 8)]


# -- (c) a rebuild that would lose triggers, views, STRICT, generated columns is refused --


@pytest.mark.parametrize(
    "extra, named",
    [
        ([TRIGGER], ["trigger sessions_touch"]),
        ([VIEW], ["view open_sessions"]),
        ([TRIGGER, VIEW], ["trigger sessions_touch", "view open_sessions"]),
    ],
    ids=["trigger", "view", "both"],
)
def test_rebuild_of_a_table_with_triggers_or_views_is_refused_naming_them(
    legacy, scripts, opened, dump, extra, named
):
    with raw(legacy) as con:
        for sql in extra:
            con.execute(sql)
    before = dump(legacy)
    write_migration(scripts, "0001_drop_notes.py", REBUILD_SESSIONS.format(table="sessions", column="notes"))
    db = opened(legacy)
    with pytest.raises(MigrationError) as raised:
        MigrationRunner(db, directory=scripts).up()
    db.close()
    for name in named:
        assert name in str(raised.value)
    assert dump(legacy) == before


@pytest.mark.parametrize(
    "ddl, named",
    [
        ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, extra TEXT) STRICT", "STRICT"),
        (
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, extra TEXT,"
            " size INTEGER GENERATED ALWAYS AS (length(body)) VIRTUAL)",
            "generated columns",
        ),
        ("CREATE TABLE notes (id INTEGER PRIMARY KEY, -- the key\n body TEXT, extra TEXT)", "comments"),
    ],
    ids=["strict", "generated", "comment"],
)
def test_rebuild_of_a_table_the_regex_would_break_is_refused(legacy, scripts, opened, dump, ddl, named):
    with raw(legacy) as con:
        con.execute(ddl)
        con.execute("INSERT INTO notes (id, body, extra) VALUES (1, 'hello', 'x')")
    before = dump(legacy)
    write_migration(scripts, "0001_drop_extra.py", REBUILD_SESSIONS.format(table="notes", column="extra"))
    db = opened(legacy)
    with pytest.raises(MigrationError, match=named):
        MigrationRunner(db, directory=scripts).up()
    db.close()
    assert dump(legacy) == before


def test_refused_rebuild_through_the_cli_is_one_line_and_changes_nothing(migrated, scripts, dump):
    with raw(migrated) as con:
        con.execute(TRIGGER)
    before = dump(migrated)
    write_migration(scripts, "0008_drop_notes.py", REBUILD_SESSIONS.format(table="sessions", column="notes"))
    result = invoke("migrate", "--db-path", migrated, "--migrations-dir", scripts)
    assert result.exit_code == 2
    assert "trigger sessions_touch" in one_error_line(result.stderr)
    assert dump(migrated) == before


# -- (d) triggers and views over sessions come through `sessionorm migrate` intact ---------


def test_sessions_trigger_and_view_survive_migrate(legacy, flavor):
    """Trigger and view come through intact; `sessions` changes only as migration 3 says
    (the app's columns appended, ampPrompt nullable, by ALTER TABLE and a DDL edit: no rebuild)."""
    with raw(legacy) as con:
        con.execute(TRIGGER)
        con.execute(VIEW)
    objects = (
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name IN ('sessions_touch',"
        " 'open_sessions', 'sessions') ORDER BY name"
    )
    before, view_rows = query(legacy, objects), query(legacy, "SELECT * FROM open_sessions ORDER BY id")
    assert len(before) == 3
    result = invoke("migrate", "--db-path", legacy)
    assert result.exit_code == 0, result.stderr
    assert query(legacy, objects) == with_app_schema({"schema": before}, flavor)["schema"]
    assert query(legacy, "SELECT * FROM open_sessions ORDER BY id") == view_rows
    with raw(legacy) as con:  # the trigger still fires
        con.execute("UPDATE sessions SET status = 'done' WHERE rowid = 1")
        assert con.execute("SELECT notes FROM sessions WHERE rowid = 1").fetchone() == ("touched",)


# -- (e) a migration that would leave a foreign-key violation is rolled back ---------------


def test_foreign_key_violation_rolls_the_migration_back(migrated, scripts, opened, dump):
    before = dump(migrated)
    copy_real_migration(scripts)
    write_migration(scripts, "0008_orphan.py", ORPHAN_THREAD)
    db = opened(migrated)
    runner = MigrationRunner(db, directory=scripts)
    with pytest.raises(MigrationError, match="foreign key check failed"):
        runner.up()
    assert [m.name for m in runner.pending()] == ["0008_orphan"]
    db.close()
    assert dump(migrated) == before


def test_foreign_key_violation_through_the_cli_is_one_line_and_changes_nothing(migrated, scripts, dump):
    before = dump(migrated)
    write_migration(scripts, "0008_orphan.py", ORPHAN_THREAD)
    result = invoke("migrate", "--db-path", migrated, "--migrations-dir", scripts)
    assert result.exit_code == 2
    assert "foreign key check failed" in one_error_line(result.stderr)
    assert dump(migrated) == before


DELETE_PARENT_SESSION = """\
def up(migrator, db):
    # With foreign keys off, no cascade: the session's threads would be left orphaned.
    db.execute_sql('DELETE FROM sessions WHERE id IN (SELECT "sessionId" FROM threads LIMIT 1)')
"""


def test_rows_orphaned_in_a_table_the_migration_did_not_write_roll_it_back(migrated, scripts, opened, dump):
    before = dump(migrated)
    copy_real_migration(scripts)
    write_migration(scripts, "0008_delete_parent.py", DELETE_PARENT_SESSION)
    runner = MigrationRunner(opened(migrated), directory=scripts)
    with pytest.raises(MigrationError, match="foreign key check failed, rolled back: (iterations|threads) "):
        runner.up()
    runner.database.close()
    assert dump(migrated) == before


def test_only_written_tables_are_checked_before_commit_unless_a_table_was_rebuilt(migrated, scripts, opened):
    from sessionorm.sql_log import capturing

    copy_real_migration(scripts)
    write_migration(
        scripts,
        "0008_rename_threads.py",
        """\
def up(migrator, db):
    db.execute_sql("UPDATE threads SET name = name || '!'")
""",
    )
    write_migration(scripts, "0009_rebuild.py", REBUILD_THREADS)
    runner = MigrationRunner(opened(migrated), directory=scripts)
    statements: list[str] = []
    with capturing(lambda sql, params: statements.append(sql)):
        runner.up("0008_rename_threads")
    checks = [s for s in statements if re.match(r"PRAGMA (foreign_key|quick|integrity)_check", s)]
    assert checks == [  # threads, its child, and the history the runner wrote
        'PRAGMA foreign_key_check("migration_checksums")',
        'PRAGMA foreign_key_check("migrations")',
        'PRAGMA foreign_key_check("sessionorm_agent_sessions")',
        'PRAGMA foreign_key_check("thread_messages")',
        'PRAGMA foreign_key_check("threads")',
        'PRAGMA quick_check("migration_checksums")',
        'PRAGMA quick_check("migrations")',
        'PRAGMA quick_check("threads")',
    ]
    statements.clear()
    with capturing(lambda sql, params: statements.append(sql)):
        runner.up()
    checks = [s for s in statements if re.match(r"PRAGMA (foreign_key|quick|integrity)_check", s)]
    assert checks == ["PRAGMA foreign_key_check", "PRAGMA integrity_check"]
