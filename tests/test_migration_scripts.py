"""Migration scripts as the runner sees them: self-contained, told their options, answering
through the runner, owning their rollback check; migrators made safe by a mixin.
"""

from __future__ import annotations

import ast
import shutil
import sqlite3
from pathlib import Path

import pytest
from cli_support import invoke, one_error_line, query, shipped_script, write_migration

from sessionorm import MigrationError, commands, legacy_threads
from sessionorm.backends.sqlite_files import open_sqlite
from sessionorm.runner import MigrationRunner, file_sha256, migrations_dir
from sessionorm.verification import verify_database

SHIPPED = sorted(migrations_dir().glob("[0-9]*.py"))
DATA_STEP_LINE = 'THREAD_NAME_PREFIX = "Migrated Thread for "'


@pytest.mark.parametrize("script", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scripts_import_nothing_from_the_package_but_its_exception_classes(script: Path):
    """Everything a script runs is in its file, so its recorded sha256 covers all of it."""
    imported = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert {m for m in imported if m.split(".")[0] == "sessionorm"} <= {"sessionorm.errors"}
    assert imported <= {"sessionorm.errors", "peewee", "re", "contextlib", "datetime"}, imported


def test_verifys_conditions_are_the_ones_the_data_step_writes():
    """`legacy_threads` (verify's copy) and migration 1's own conditions must not drift apart."""
    script = shipped_script()
    for name in (
        "MESSAGE_PREFIX",
        "HAS_THREAD_ID",
        "HAS_MARKER_THREAD",
        "HAS_LEGACY_THREAD",
        "NOT_YET_MIGRATED",
        "NOT_YET_MIGRATED_PG",
    ):
        assert getattr(legacy_threads, name) == getattr(script, name), name


@pytest.fixture
def migrated(legacy_db) -> Path:
    path = legacy_db(12, threaded=6)
    commands.migrate(path)
    return path


def edited_copy(tmp_path: Path, old: str, new: str) -> Path:
    """The shipped scripts in a folder of their own, with `old` replaced by `new` in 0001."""
    folder = tmp_path / "shipped-edited"
    folder.mkdir()
    for script in SHIPPED:
        shutil.copy(script, folder / script.name)
    first = folder / SHIPPED[0].name
    text = first.read_text()
    assert old in text
    first.write_text(text.replace(old, new))
    return folder


def verify_with_scripts(path: Path, folder: Path | None) -> list[str]:
    db = open_sqlite(path)
    try:
        return verify_database(db, MigrationRunner(db, directory=folder)).problems
    finally:
        db.close()


def test_editing_the_data_step_is_caught_by_verify(migrated, tmp_path):
    assert verify_with_scripts(migrated, None) == []
    folder = edited_copy(tmp_path, DATA_STEP_LINE, 'THREAD_NAME_PREFIX = "Thread for "')
    problems = verify_with_scripts(migrated, folder)
    assert problems == [
        f"migration script {folder / SHIPPED[0].name} was edited after it was applied (sha256 differs)"
    ]


def test_an_unchanged_copy_of_the_scripts_verifies(migrated, tmp_path):
    folder = edited_copy(tmp_path, DATA_STEP_LINE, DATA_STEP_LINE)
    assert verify_with_scripts(migrated, folder) == []


@pytest.mark.parametrize(
    "recorded, clean",
    [
        ("7cea90db81064e3876c7b4f482f09c65f06a6417d46fd860dd07c33f4e68e7dd", True),  # 0.1.0's 0001
        ("0" * 64, False),
    ],
)
def test_the_digest_of_an_earlier_copy_with_the_same_effect_is_accepted(migrated, recorded, clean):
    """Files migrated by 0.1.0 recorded the sha256 of the script that imported its data step."""
    with sqlite3.connect(migrated) as con:
        con.execute("UPDATE migration_checksums SET sha256 = ? WHERE version = 1", (recorded,))
    con.close()
    report = commands.verify(migrated)
    assert report.ok is clean, report.problems
    assert recorded in shipped_script().PREVIOUS_SHA256 or not clean


def test_the_recorded_digest_is_the_script_file_itself(migrated):
    assert [p.name[:4] for p in SHIPPED] == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
    assert query(migrated, "SELECT version, sha256 FROM migration_checksums ORDER BY 1") == [
        (n, file_sha256(script)) for n, script in enumerate(SHIPPED, 1)
    ]


# -- options in, results out -------------------------------------------------------------------

PEEWEE_TEMPLATE = """
def up(migrator, database):
    database.execute_sql("CREATE TABLE plain_template (id INTEGER PRIMARY KEY)")


def down(migrator, database):
    database.execute_sql("DROP TABLE plain_template")
"""

WITH_OPTIONS = """
from sessionorm.errors import MigrationError


def up(migrator, db, options):
    db.execute_sql("CREATE TABLE own_notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute_sql("INSERT INTO own_notes (body) VALUES ('kept')")
    return {"rehearsal": options.rehearsal}


def check_down(db, options):
    rows = db.execute_sql("SELECT count(*) FROM own_notes").fetchone()[0]
    if rows and not options.force:
        raise MigrationError(f"refusing to roll back: own_notes holds {rows} rows")


def down(migrator, db, options):
    check_down(db, options)
    db.execute_sql("DROP TABLE own_notes")
"""


@pytest.fixture
def own_scripts(tmp_path: Path) -> Path:
    folder = tmp_path / "own-migrations"
    write_migration(folder, "0008_plain_template.py", PEEWEE_TEMPLATE)
    write_migration(folder, "0009_own_notes.py", WITH_OPTIONS)
    return folder


def test_scripts_with_and_without_options_both_run_and_results_come_back(tmp_path, own_scripts):
    path = tmp_path / "new.db"
    db = open_sqlite(path, create=True)
    try:
        runner = MigrationRunner(db, extra_dirs=[own_scripts])
        applied = runner.up()
    finally:
        db.close()
    assert applied[-2:] == ["0008_plain_template", "0009_own_notes"]
    assert runner.results["0009_own_notes"] == {"rehearsal": False}
    assert "0008_plain_template" not in runner.results  # returned nothing
    assert query(path, "SELECT body FROM own_notes") == [("kept",)]


def test_a_dry_run_tells_scripts_it_is_a_rehearsal_on_postgresql_only_through_options(tmp_path, own_scripts):
    """On SQLite the dry run is a real run on a copy: the script is told nothing else."""
    report = commands.migrate(tmp_path / "new.db", dry_run=True, migrations_dir=own_scripts)
    assert "0009_own_notes" in report.pending and not (tmp_path / "new.db").exists()


def test_a_scripts_own_rollback_check_refuses_before_the_backup(tmp_path, own_scripts):
    path = tmp_path / "new.db"
    commands.migrate(path, migrations_dir=own_scripts)
    before = sorted(tmp_path.iterdir())
    result = invoke("rollback", "--db-path", path, "--migrations-dir", own_scripts)
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == ("error: refusing to roll back: own_notes holds 1 rows")
    assert sorted(tmp_path.iterdir()) == before  # no backup was taken
    assert query(path, "SELECT body FROM own_notes") == [("kept",)]
    forced = invoke("rollback", "--db-path", path, "--migrations-dir", own_scripts, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "own_notes" not in {r[0] for r in query(path, "SELECT name FROM sqlite_master")}


def test_backfill_runs_the_data_step_the_applied_script_offers(migrated):
    with sqlite3.connect(migrated) as con:
        columns = (
            "id, name, ampPrompt, followUpPrompts, repoRoot, baseBranch, branchName,"
            " worktreePath, status, scriptCommand, modelOverride, threadId, createdAt,"
            " lastRun, notes, contextIncluded"
        )
        con.execute(
            f"INSERT INTO sessions ({columns}) SELECT 'late-' || id, name, ampPrompt,"
            " followUpPrompts, repoRoot, baseBranch, branchName, worktreePath, status,"
            " scriptCommand, modelOverride, 'late-thread', '2999-01-01T00:00:00.000Z',"
            " lastRun, notes, contextIncluded FROM sessions LIMIT 2"
        )
    con.close()
    result = commands.backfill(migrated)
    assert (result.migrated, result.skipped) == (2, 6)
    made = query(
        migrated,
        'SELECT t.id, r."legacyThreadId" FROM threads t'
        ' JOIN sessionorm_migrated_threads r ON r."threadId" = t.id'
        " WHERE t.\"sessionId\" LIKE 'late-%'",
    )
    assert len(made) == 2 and all(tid.startswith("T-") and legacy == "late-thread" for tid, legacy in made), (
        made
    )  # T- ids, recorded
    assert commands.backfill(migrated).migrated == 0


# -- atomic = False ----------------------------------------------------------------------------

ORPHAN_OUTSIDE_A_TRANSACTION = """
atomic = False


def up(migrator, db):
    db.execute_sql("INSERT INTO thread_messages (id, \\"threadId\\", role, content, \\"createdAt\\", idx)"
                   " VALUES ('orphan', 'no-such-thread', 'user', 'x', '2025-01-01T00:00:00.000Z', 0)")


def down(migrator, db):
    pass
"""


def test_a_script_outside_a_transaction_is_not_reported_as_rolled_back(migrated, tmp_path):
    folder = tmp_path / "own"
    write_migration(folder, "0008_orphan.py", ORPHAN_OUTSIDE_A_TRANSACTION)
    with pytest.raises(MigrationError) as failure:
        commands.migrate(migrated, migrations_dir=folder)
    message = str(failure.value)
    assert "foreign key check failed, ran outside a transaction, its changes stay" in message
    assert "rolled back" not in message
    assert query(migrated, "SELECT id FROM thread_messages WHERE id = 'orphan'") == [("orphan",)]


CONCURRENT_INDEX = """
atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction


def up(migrator, db):
    db.execute_sql('CREATE INDEX CONCURRENTLY "idx_sessions_name" ON sessions (name)')


def down(migrator, db):
    db.execute_sql('DROP INDEX CONCURRENTLY "idx_sessions_name"')
"""


def test_postgresql_runs_a_script_that_asks_for_no_transaction_outside_one(tmp_path, monkeypatch):
    """`atomic = False` is honoured: inside a transaction PostgreSQL refuses this statement."""
    from pg_support import pg_database

    monkeypatch.chdir(tmp_path)  # rollback's backup lands here
    folder = tmp_path / "own"
    write_migration(folder, "0008_concurrent_index.py", CONCURRENT_INDEX)
    with pg_database("postgresql") as pg:
        report = commands.migrate(pg.target, migrations_dir=folder)
        assert report.applied[-1] == "0008_concurrent_index"
        indexes = {row[0] for row in pg.query("SELECT indexname FROM pg_indexes")}
        assert "idx_sessions_name" in indexes
        assert commands.rollback(pg.target, migrations_dir=folder).reverted == ["0008_concurrent_index"]
        assert "idx_sessions_name" not in {row[0] for row in pg.query("SELECT indexname FROM pg_indexes")}
