"""`--json` on every command: one JSON document on stdout with the Python report's fields, the
exit codes unchanged, and an error document for failures (issue 26)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from cli_support import SHIPPED_SCRIPTS, invoke, one_error_line, run_module
from pg_support import Backend

from sessionorm import SessionStore, commands
from sessionorm.cli import cli
from sessionorm.copy.checks import CopyReport
from sessionorm.documents import document
from sessionorm.planning import MigrateReport, RollbackReport
from sessionorm.thread_restore import RestoreReport
from sessionorm.verification import VerifyReport


def documented(*args: object, code: int = 0) -> object:
    """Run `sessionorm ARGS --json`; its exit code must be `code` and its stdout one JSON line."""
    result = invoke(*args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout.count("\n") == 1, result.stdout  # one document, one line
    return json.loads(result.stdout)


def fields_of(cls: type) -> set[str]:
    """A report's fields and public properties: the keys its document must have."""
    names = {f.name for f in dataclasses.fields(cls)}
    return names | {n for n in dir(cls) if not n.startswith("_") and isinstance(getattr(cls, n), property)}


def test_every_command_takes_json() -> None:
    for name, command in cli.commands.items():
        options = {opt for param in command.params for opt in param.opts}
        assert "--json" in options, f"sessionorm {name} has no --json"


def test_the_commands_of_a_migration_as_documents(legacy_db, tmp_path: Path, file_digest) -> None:
    path = legacy_db(8)
    db = ("--db-path", path)
    before = file_digest(path)
    plan = documented("migrate", "--dry-run", *db)
    assert set(plan) == fields_of(MigrateReport)
    assert plan["dry_run"] is True and plan["pending"] == plan["applied"] == SHIPPED_SCRIPTS  # rehearsed
    assert file_digest(path) == before
    assert plan["migrated"] > 0 and plan["statements"]

    pending = documented("status", *db, code=1)
    assert [(m["idx"], m["name"], m["applied"]) for m in pending] == [
        (n + 1, name, None) for n, name in enumerate(SHIPPED_SCRIPTS)
    ]

    done = documented("migrate", *db)
    assert (done["applied"], done["dry_run"]) == (SHIPPED_SCRIPTS, False)
    assert (done["migrated"], done["skipped"]) == (plan["migrated"], plan["skipped"]) == (4, 0)
    with sqlite3.connect(path) as con:
        assert done["indexed"] == con.execute("SELECT count(*) FROM thread_messages").fetchone()[0] > 0
    assert isinstance(done["seconds"], float)
    applied = documented("status", *db)
    assert all(m["applied"] for m in applied) and [m["name"] for m in applied] == SHIPPED_SCRIPTS

    checked = documented("verify", *db)
    assert set(checked) == fields_of(VerifyReport)
    assert checked == document(commands.verify(path))
    assert checked["ok"] is True and checked["problems"] == []

    assert documented("diff", *db) == document(commands.drift(path)) == {"problems": [], "notes": []}
    assert documented("backfill", *db) == {"migrated": 0, "skipped": 4}  # each already has its thread
    assert documented("agents", *db) == []

    backup = tmp_path / "b.sqlite"
    made = documented("backup", *db, "-o", backup)
    assert made == {"backup": str(backup), "checked": commands.backup_checked(path)} and backup.exists()

    dry = documented("restore-threads", *db, "--from", backup, "--dry-run")
    assert set(dry) == fields_of(RestoreReport)
    assert (dry["dry_run"], dry["threads"], dry["messages"], dry["backup"]) == (True, [], 0, str(backup))

    made_migration = documented("makemigration", "noop", *db, "--migrations-dir", tmp_path / "mine")
    assert made_migration == {"path": None, "destructive": [], "todos": []}

    copied = documented("copy", "--from", path, "--to", tmp_path / "copy.sqlite")
    assert set(copied) == fields_of(CopyReport)
    assert all(t["ok"] and t["rows"] == t["target_rows"] for t in copied["tables"])
    assert copied["rows"] == sum(t["rows"] for t in copied["tables"]) > 0

    undone = documented("rollback", *db)
    assert set(undone) == fields_of(RollbackReport)
    assert undone["reverted"] == [SHIPPED_SCRIPTS[-1]] and Path(undone["backup"]).exists()
    assert [m["applied"] is None for m in documented("status", *db, code=1)][-1]


def test_answers_that_are_not_clean_keep_exit_1(legacy_db) -> None:
    path = legacy_db(4)
    assert invoke("migrate", "--db-path", path).exit_code == 0
    with sqlite3.connect(path) as con:
        index = con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'threads' AND sql IS NOT NULL"
        ).fetchone()[0]
        con.execute(f'DROP INDEX "{index}"')
    checked = documented("verify", "--db-path", path, code=1)
    assert checked["ok"] is False and checked["problems"] == commands.verify(path).problems != []
    drift = documented("diff", "--db-path", path, code=1)
    assert drift["problems"] == commands.drift(path).problems != []
    assert documented("search", "nothing-matches-this", "--db-path", path, code=1) == []


def test_browse_and_search_documents(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SessionStore(path) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "t")
        message = store.add_thread_message(thread, "user", "the login page")
    [hit] = documented("search", "login", "--db-path", path)
    assert (hit["session"], hit["thread"], hit["message"], hit["role"]) == (
        session.id,
        thread.id,
        message.id,
        "user",
    )
    [listed] = documented("sessions", "--db-path", path)
    assert (listed["id"], listed["thread_count"], listed["message_count"]) == (session.id, 1, 1)
    shown = documented("show", thread.id, "--db-path", path)
    assert [m["id"] for m in shown["messages"]] == [message.id]


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "--db-path", "{missing}"),
        ("status", "--db-path", "{missing}"),
        ("show", "T-none", "--db-path", "{db}"),
        ("sessions", "--since", "soon", "--db-path", "{db}"),
    ],
)
def test_a_failure_is_an_error_document_and_one_line_on_stderr(tmp_path: Path, args: tuple[str, ...]) -> None:
    db = tmp_path / "db.sqlite"
    SessionStore(db).close()
    filled = [a.format(missing=tmp_path / "missing.db", db=db) for a in args]
    result = run_module(*filled, "--json")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert json.loads(result.stdout) == {"error": line.removeprefix("error: "), "exit": 2}
    assert not (tmp_path / "missing.db").exists()


def test_a_usage_error_is_a_document_too(tmp_path: Path) -> None:
    result = run_module("status", "--no-such-option", "--json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["exit"] == 2 and "--no-such-option" in doc["error"]


def test_documents_on_every_backend(backend: Backend) -> None:
    with backend.store() as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "t")
        store.add_thread_message(thread, "user", "the login page")
    target = backend.target
    assert [m["applied"] is not None for m in documented("status", *backend.cli_args)] == [True] * len(
        SHIPPED_SCRIPTS
    )
    checked = documented("verify", *backend.cli_args)
    assert checked["ok"] is True and checked == document(commands.verify(target))
    assert documented("migrate", *backend.cli_args)["pending"] == []
    [hit] = documented("search", "login", *backend.cli_args)
    assert hit["thread"] == thread.id
    [listed] = documented("sessions", *backend.cli_args)
    assert (listed["id"], listed["message_count"]) == (session.id, 1)
