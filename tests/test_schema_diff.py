"""`sessionorm diff`, `makemigration`, drift and checksums in `verify` (issue 4)."""

from __future__ import annotations

import sqlite3
import textwrap
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from sessionorm import SessionStore
from sessionorm.cli import cli

PRIORITY_MODELS = """
from peewee import IntegerField, TextField
from sessionorm.models import MigrationRecord, Session, Thread, ThreadMessage

class PriorityThread(Thread):
    priority = IntegerField(default=0)
    class Meta:
        table_name = "threads"
        indexes = ((("session", "updated_at"), False), (("priority",), False))

MODELS = [Session, PriorityThread, ThreadMessage, MigrationRecord]
"""

# The README's own example: the index declared on the field, so `add_column` makes it.
FIELD_INDEX_MODELS = """
from peewee import IntegerField
from sessionorm.models import MigrationRecord, Session, Thread, ThreadMessage

class PriorityThread(Thread):
    priority = IntegerField(default=0, index=True)
    class Meta:
        table_name = "threads"

MODELS = [Session, PriorityThread, ThreadMessage, MigrationRecord]
"""

RENAMED_MODELS = """
from peewee import TextField
from sessionorm.models import MigrationRecord, Session, Thread, ThreadMessage

class RenamedThread(Thread):
    title = TextField(null=True)
    class Meta:
        table_name = "threads"
        indexes = ((("session", "updated_at"), False),)

RenamedThread._meta.remove_field("name")
MODELS = [Session, RenamedThread, ThreadMessage, MigrationRecord]
"""

NOT_NULL_MODELS = """
from peewee import TextField
from sessionorm.models import MigrationRecord, Session, Thread, ThreadMessage

class LabelledThread(Thread):
    label = TextField()
    class Meta:
        table_name = "threads"
        indexes = ((("session", "updated_at"), False),)

MODELS = [Session, LabelledThread, ThreadMessage, MigrationRecord]
"""


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def make_migration(name: str, migrated: Path, spec: str, folder: Path):
    """`sessionorm makemigration NAME` against `migrated`, with the models `spec`, into `folder`."""
    return run(
        "makemigration", name, "--db-path", str(migrated), "--models", spec, "--migrations-dir", str(folder)
    )


@pytest.fixture
def migrated(legacy_db) -> Path:
    path = legacy_db(n=20, iterations=1)
    assert run("migrate", "--db-path", str(path)).exit_code == 0
    return path


@pytest.fixture
def models_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write `source` as an importable module in tmp_path; return its `module:MODELS` spec."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"models_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return f"{name}:MODELS"

    return write


def test_diff_is_clean_and_exits_0_on_a_migrated_database(migrated: Path) -> None:
    result = run("diff", "--db-path", str(migrated))
    assert result.exit_code == 0, result.output
    assert result.output == f"{migrated}: in sync with the models\n"


@pytest.mark.parametrize("flavor", ["pre", "final"])
def test_orchestrator_extra_session_columns_are_not_drift(legacy_db, flavor: str) -> None:
    path = legacy_db(n=5, flavor=flavor)
    assert run("migrate", "--db-path", str(path)).exit_code == 0
    assert run("diff", "--db-path", str(path)).exit_code == 0


def test_diff_lists_an_index_dropped_by_hand_and_exits_1(migrated: Path) -> None:
    with sqlite3.connect(migrated) as con:
        con.execute('DROP INDEX "idx_thread_messages_role"')
    result = run("diff", "--db-path", str(migrated))
    assert result.exit_code == 1
    assert result.output == "add index thread_messages (role)\n"


def test_diff_notes_a_column_only_in_the_database_and_keeps_it(migrated: Path) -> None:
    """Another program's column on threads is a note (exit 0), not a drop to propose."""
    with sqlite3.connect(migrated) as con:
        con.execute("ALTER TABLE threads ADD COLUMN scratch TEXT")
    result = CliRunner().invoke(cli, ["diff", "--db-path", str(migrated)], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout == f"{migrated}: in sync with the models\n"
    assert result.stderr == (
        "note: threads has a column scratch that sessionorm does not know (kept; another program's)\n"
    )


def test_diff_flags_a_column_only_in_the_database_as_destructive_when_a_model_column_is_missing(
    migrated: Path, models_module
) -> None:
    """A likely rename: the table lacks a model column, so its unknown columns are drops."""
    spec = models_module(RENAMED_MODELS)
    with sqlite3.connect(migrated) as con:
        con.execute("ALTER TABLE threads ADD COLUMN scratch TEXT")
    result = run("diff", "--db-path", str(migrated), "--models", spec)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "add column threads.title",
        "drop column threads.name  [destructive]",
        "drop column threads.scratch  [destructive]",
    ]


def test_diff_reports_type_not_null_and_default_differences(tmp_path: Path) -> None:
    path = tmp_path / "drifted.db"
    SessionStore(path).close()
    with sqlite3.connect(path) as con:  # rebuild threads with three changes
        con.executescript("""
            PRAGMA foreign_keys = OFF;
            CREATE TABLE threads_new (id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL,
              name TEXT, "createdAt" TEXT NOT NULL, "updatedAt" INTEGER NOT NULL,
              status TEXT NOT NULL,
              FOREIGN KEY("sessionId") REFERENCES sessions(id) ON DELETE CASCADE);
            DROP TABLE threads;
            ALTER TABLE threads_new RENAME TO threads;
        """)
    lines = run("diff", "--db-path", str(path)).output.splitlines()
    assert "change threads.name: database NULL, model NOT NULL" in lines
    assert "change type threads.updatedAt: database INTEGER, model TEXT" in lines
    assert "change default threads.status: database None, model 'active'" in lines


def test_diff_needs_an_existing_database(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = CliRunner().invoke(cli, ["diff", "--db-path", str(missing)])
    assert result.exit_code == 2
    assert "no database at" in result.stderr
    assert not missing.exists()


def test_makemigration_writes_nothing_when_in_sync(migrated: Path, tmp_path: Path) -> None:
    result = run(
        "makemigration", "noop", "--db-path", str(migrated), "--migrations-dir", str(tmp_path / "mig")
    )
    assert result.exit_code == 0
    assert "in sync" in result.output
    assert not (tmp_path / "mig").exists()


def test_worked_example_add_field_and_index_then_migrate_diff_clean_and_rollback(
    migrated: Path, tmp_path: Path, models_module, dump
) -> None:
    spec = models_module(PRIORITY_MODELS)
    mig = tmp_path / "mig"
    before = dump(migrated)

    drift = run("diff", "--db-path", str(migrated), "--models", spec)
    assert drift.exit_code == 1
    assert drift.output.splitlines() == ["add column threads.priority", "add index threads (priority)"]

    made = make_migration("add priority", migrated, spec, mig)
    assert made.exit_code == 0, made.output
    script = mig / "0008_add_priority.py"
    assert f"wrote {script}" in made.output
    text = script.read_text()
    assert "def up(migrator, db):" in text and "def down(migrator, db):" in text
    assert "add_column('threads', 'priority'" in text and "add_index('threads', ('priority',)" in text
    assert "drop_column('threads', 'priority')" in text

    dry = run("migrate", "--dry-run", "--db-path", str(migrated), "--migrations-dir", str(mig))
    assert "pending: 0008_add_priority" in dry.output
    assert dump(migrated) == before

    applied = run("migrate", "--backup", "--db-path", str(migrated), "--migrations-dir", str(mig))
    assert applied.exit_code == 0, applied.output
    assert "applied 0008_add_priority" in applied.output
    assert run("diff", "--db-path", str(migrated), "--models", spec).exit_code == 0
    verified = run("verify", "--db-path", str(migrated), "--models", spec, "--migrations-dir", str(mig))
    assert verified.exit_code == 0, verified.output

    undone = run("rollback", "--db-path", str(migrated), "--migrations-dir", str(mig))
    assert undone.exit_code == 0, undone.output
    assert "reverted 0008_add_priority" in undone.output
    assert run("diff", "--db-path", str(migrated)).exit_code == 0
    assert run("status", "--db-path", str(migrated), "--migrations-dir", str(mig)).exit_code == 1


def test_makemigration_numbers_after_existing_scripts_and_never_overwrites(
    migrated: Path, tmp_path: Path, models_module
) -> None:
    spec = models_module(PRIORITY_MODELS)
    mig = tmp_path / "mig"
    mig.mkdir()
    (mig / "0008_earlier.py").write_text("def up(migrator, db):\n    pass\n")
    made = make_migration("add priority", migrated, spec, mig)
    assert made.exit_code == 0
    assert (mig / "0009_add_priority.py").exists()  # after the shipped 0001-0007 and this 0006
    assert (mig / "0008_earlier.py").read_text() == "def up(migrator, db):\n    pass\n"


def test_makemigration_flags_a_likely_rename_and_the_destructive_drop(
    migrated: Path, tmp_path: Path, models_module
) -> None:
    spec = models_module(RENAMED_MODELS)
    made = make_migration("rename name", migrated, spec, tmp_path / "mig")
    assert made.exit_code == 0
    assert "destructive: drop column threads.name" in made.output
    assert "todo: threads: name -> title looks like a rename" in made.output
    text = (tmp_path / "mig" / "0008_rename_name.py").read_text()
    assert "# DESTRUCTIVE: drop column threads.name" in text
    assert "rename_column('threads', 'name', 'title')" in text


def test_makemigration_leaves_a_todo_for_a_not_null_column_without_default(
    migrated: Path, tmp_path: Path, models_module
) -> None:
    spec = models_module(NOT_NULL_MODELS)
    made = make_migration("add label", migrated, spec, tmp_path / "mig")
    assert made.exit_code == 0
    text = (tmp_path / "mig" / "0008_add_label.py").read_text()
    assert "# TODO: threads.label: not-null column needs a default" in text


def test_verify_names_a_migration_script_edited_after_it_was_applied(
    migrated: Path, tmp_path: Path, models_module
) -> None:
    spec = models_module(PRIORITY_MODELS)
    mig = tmp_path / "mig"
    make_migration("add priority", migrated, spec, mig)
    assert run("migrate", "--db-path", str(migrated), "--migrations-dir", str(mig)).exit_code == 0
    script = mig / "0008_add_priority.py"
    script.write_text(script.read_text() + "# edited later\n")
    result = run("verify", "--db-path", str(migrated), "--models", spec, "--migrations-dir", str(mig))
    assert result.exit_code == 1
    assert (
        f"problem: migration script {script} was edited after it was applied (sha256 differs)"
        in result.output
    )


def test_applied_migrations_record_their_script_checksum(migrated: Path) -> None:
    import hashlib

    from sessionorm.runner import migrations_dir

    scripts = sorted(migrations_dir().glob("000[1-7]_*.py"))
    assert [s.name[:4] for s in scripts] == ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
    with sqlite3.connect(migrated) as con:
        rows = con.execute("SELECT version, sha256 FROM migration_checksums ORDER BY 1").fetchall()
    assert rows == [(n, hashlib.sha256(s.read_bytes()).hexdigest()) for n, s in enumerate(scripts, 1)]


def test_a_not_null_field_with_a_constant_default_gets_that_sql_default(
    migrated: Path, tmp_path: Path, models_module
) -> None:
    spec = models_module(PRIORITY_MODELS)
    mig = tmp_path / "mig"
    made = make_migration("add priority", migrated, spec, mig)
    assert made.exit_code == 0, made.output
    text = (mig / "0008_add_priority.py").read_text()
    assert (
        "migrator.migrate(migrator.add_column('threads', 'priority', "
        "IntegerField(default=0, constraints=[SQL('DEFAULT 0')])))"
    ) in text
    assert run("migrate", "--db-path", str(migrated), "--migrations-dir", str(mig)).exit_code == 0
    with SessionStore(migrated) as store:
        session = store.list_sessions()[0]
        thread = store.create_thread(session, "inserted by code that knows no priority").id
        assert store.db.execute_sql("SELECT priority FROM threads WHERE id = ?", (thread,)).fetchone() == (0,)
    assert run("diff", "--db-path", str(migrated), "--models", spec).exit_code == 0
    verified = run("verify", "--db-path", str(migrated), "--models", spec, "--migrations-dir", str(mig))
    assert verified.exit_code == 0, verified.output


def test_makemigration_without_a_folder_writes_to_migrations_in_the_current_folder(
    migrated: Path, tmp_path: Path, models_module
) -> None:
    from sessionorm.runner import migrations_dir

    spec = models_module(PRIORITY_MODELS)  # also makes tmp_path the current folder
    shipped = sorted(p.name for p in migrations_dir().iterdir())
    made = run("makemigration", "add priority", "--db-path", str(migrated), "--models", spec)
    assert made.exit_code == 0, made.output
    assert (tmp_path / "migrations" / "0008_add_priority.py").exists()
    assert f"wrote {tmp_path / 'migrations' / '0008_add_priority.py'}" in made.output
    assert sorted(p.name for p in migrations_dir().iterdir()) == shipped


def test_the_todo_summary_lists_every_todo_in_the_file(migrated: Path, tmp_path: Path, models_module) -> None:
    spec = models_module(NOT_NULL_MODELS)
    made = make_migration("add label", migrated, spec, tmp_path / "mig")
    assert made.exit_code == 0
    text = (tmp_path / "mig" / "0008_add_label.py").read_text()
    in_file = [line.removeprefix("# TODO: ") for line in text.splitlines() if line.startswith("# TODO: ")]
    printed = [line.removeprefix("todo: ") for line in made.output.splitlines() if line.startswith("todo: ")]
    assert in_file and printed == in_file
    assert any("threads.label: not-null column needs a default" in line for line in printed)


def test_an_index_declared_on_a_new_field_is_dropped_by_the_name_up_gives_it(
    migrated: Path, tmp_path: Path, models_module, dump
) -> None:
    """`index=True` on an added field: `add_column` names the index `threads_priority`, and
    down() drops that name (it dropped `prioritythread_priority`, so rollback failed)."""
    spec = models_module(FIELD_INDEX_MODELS)
    mig = tmp_path / "mig"
    before = dump(migrated)
    made = make_migration("add priority", migrated, spec, mig)
    assert made.exit_code == 0, made.output
    text = (mig / "0008_add_priority.py").read_text()
    assert "migrator.drop_index('threads', 'threads_priority')" in text, text
    assert run("migrate", "--db-path", str(migrated), "--migrations-dir", str(mig)).exit_code == 0
    with sqlite3.connect(migrated) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "threads_priority" in names
    assert run("diff", "--db-path", str(migrated), "--models", spec).exit_code == 0
    undone = run("rollback", "--db-path", str(migrated), "--migrations-dir", str(mig))
    assert undone.exit_code == 0, undone.output
    rows = [line for line in dump(migrated) if line.startswith("INSERT")]
    assert rows == [line for line in before if line.startswith("INSERT")]  # the table was rebuilt
    assert run("diff", "--db-path", str(migrated)).exit_code == 0
