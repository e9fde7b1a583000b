"""The command layer is thin: arguments become a `Target`, every runner comes from
`runner_for` (with the project's own scripts), every database from `opening.opened`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cli_support import invoke, one_error_line, query, write_migration

import sessionorm
from sessionorm import commands
from sessionorm.backends.sqlite_files import open_sqlite
from sessionorm.runner import runner_for
from sessionorm.target import Target

PACKAGE = Path(sessionorm.__file__).parent

OWN_BACKFILL = """
def up(migrator, db):
    db.execute_sql("CREATE TABLE own_backfills (id INTEGER PRIMARY KEY, note TEXT)")


def down(migrator, db):
    db.execute_sql("DROP TABLE own_backfills")


def backfill(db):
    db.execute_sql("INSERT INTO own_backfills (note) VALUES ('ran')")
    return {"migrated": 1, "skipped": 0}
"""


@pytest.fixture
def own_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "own-migrations"
    write_migration(folder, "0008_own_backfill.py", OWN_BACKFILL)
    return folder


def test_backfill_runs_the_data_step_of_the_projects_own_script(legacy_db, own_dir):
    path = legacy_db(4, threaded=2)
    migrated = invoke("migrate", "--db-path", path, "--migrations-dir", own_dir)
    assert migrated.exit_code == 0, migrated.stderr
    assert query(path, "SELECT count(*) FROM own_backfills") == [(0,)]
    result = invoke("backfill", "--db-path", path, "--migrations-dir", own_dir)
    assert result.exit_code == 0, result.stderr
    assert query(path, "SELECT note FROM own_backfills") == [("ran",)]
    assert result.stdout.startswith("threads created: 1;")  # the shipped step had nothing to do
    assert commands.backfill(path, migrations_dir=own_dir).migrated == 1  # the API: the same
    assert query(path, "SELECT count(*) FROM own_backfills") == [(2,)]


def test_backfill_refuses_while_the_projects_own_script_is_pending(legacy_db, own_dir):
    path = legacy_db(4, threaded=2)
    assert invoke("migrate", "--db-path", path).exit_code == 0  # the shipped scripts only
    result = invoke("backfill", "--db-path", path, "--migrations-dir", own_dir)
    assert result.exit_code == 2
    assert "has pending migrations (0008_own_backfill)" in one_error_line(result.stderr)
    assert "own_backfills" not in {r[0] for r in query(path, "SELECT name FROM sqlite_master")}


def test_runner_for_adds_the_targets_own_folder_unless_told_not_to(tmp_path, own_dir):
    db = open_sqlite(tmp_path / "new.db", create=True)
    try:
        target = Target.of(tmp_path / "new.db", migrations_dir=own_dir)
        assert [m.name for m in runner_for(target, db).migrations()][-1] == "0008_own_backfill"
        assert "0008_own_backfill" not in [
            m.name for m in runner_for(target, db, own_scripts=False).migrations()
        ]
        assert runner_for(None, db).extra_dirs == []
    finally:
        db.close()


def test_the_runner_names_the_script_that_makes_the_thread_tables(tmp_path):
    """What `verify` and `verify --exercise` ask instead of knowing a migration's number."""
    db = open_sqlite(tmp_path / "new.db", create=True)
    try:
        runner = runner_for(None, db)
        maker = runner.adopter("threads")
        assert maker is not None and maker.name == "0001_session_thread_relationship"
        assert runner.adopter("no_such_table") is None
        assert not runner.is_recorded(maker)
        runner.up()
        assert runner.is_recorded(maker) and not runner.is_recorded(None)
    finally:
        db.close()


def calls(module: Path) -> set[str]:
    """Names called in `module`: `f(…)` and `x.f(…)`."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                found.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                found.add(node.func.attr)
    return found


# Modules that build a runner of their own, and why (each a target for `runner_for`).
OWN_RUNNERS = {
    "runner.py": "defines it",
    "scaffold.py": "the runner of the folder it writes into, not of a target",
    "transfer.py": "takes a list of folders, not a Target (to move to runner_for)",
}
# Modules that open a database without `opened`, and why.
OWN_OPENS = {
    "database.py": "defines the openers",
    "opening.py": "is `opened`",
    "store.py": "a SessionStore keeps its connection beyond any block",
    "transfer.py": "the copy's temporary file, before it has a name of its own",
}


def test_runners_come_from_runner_for_and_databases_from_opened():
    for module in sorted(PACKAGE.glob("*.py")):
        called = calls(module)
        if "MigrationRunner" in called:
            assert module.name in OWN_RUNNERS, f"{module.name} builds a MigrationRunner: use runner_for"
        if called & {"open_sqlite", "open_url"}:
            assert module.name in OWN_OPENS, f"{module.name} opens a database: use opening.opened"


def test_commands_only_turn_arguments_into_calls():
    """No driver, no SQL, no runner of its own: the work is in the modules it calls."""
    tree = ast.parse((PACKAGE / "commands.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert not imported & {"peewee", "sqlite3", ".database", "database", "runner.MigrationRunner"}
    assert "execute_sql" not in calls(PACKAGE / "commands.py")
    assert "is_server" not in (PACKAGE / "commands.py").read_text()
