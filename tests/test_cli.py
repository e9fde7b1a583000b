"""The `sessionorm` command line: status, verify, errors, exit codes (the contract, CLI; issue 3).

Through click's CliRunner and through `python -m sessionorm` in a real process with stdin
closed, as scripts run it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_support import SHIPPED_SCRIPTS, invoke, one_error_line, query, raw, run_module, tables
from click.testing import CliRunner

from sessionorm.cli import cli

FLAVOURS = ["pre", "final"]


@pytest.fixture(params=FLAVOURS)
def legacy(request, legacy_db) -> Path:
    return legacy_db(8, flavor=request.param, threaded=5, duplicates=2, iterations=1)


@pytest.fixture
def migrated(legacy) -> Path:
    assert invoke("migrate", "--db-path", legacy).exit_code == 0
    return legacy


# -- entry points and usage ----------------------------------------------------------------


def test_python_dash_m_help_lists_every_command():
    done = run_module("--help")
    assert done.returncode == 0, done.stderr
    for command in ("migrate", "status", "verify", "rollback", "backup"):
        assert command in done.stdout


def test_command_help_shows_its_options():
    done = run_module("migrate", "--help")
    assert done.returncode == 0
    for option in ("--db-path", "--backup", "--dry-run", "--verbose"):
        assert option in done.stdout


def test_unknown_option_is_a_usage_error_exit_2(tmp_path):
    result = invoke("migrate", "--no-such-option", "--db-path", tmp_path / "x.db")
    assert result.exit_code == 2
    assert not (tmp_path / "x.db").exists()


def test_unknown_command_is_a_usage_error_exit_2():
    assert run_module("frobnicate").returncode == 2


def test_db_path_and_db_url_together_is_a_usage_error_exit_2(tmp_path):
    result = invoke("status", "--db-path", tmp_path / "a.db", "--db-url", f"sqlite:///{tmp_path}/b.db")
    assert result.exit_code == 2


def test_no_command_prompts_with_stdin_closed(legacy):
    for args in (("migrate", "--backup"), ("rollback",), ("backup",)):
        done = run_module(*args, "--db-path", legacy, timeout=30)
        assert done.returncode == 0, (args, done.stderr)


def test_db_path_defaults_to_ampsm_db_path(legacy):
    result = CliRunner(env={"AMPSM_DB_PATH": str(legacy)}).invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.stderr
    assert "threads" in tables(legacy)


# -- status --------------------------------------------------------------------------------


def test_status_lists_pending_and_exits_1_before_migrate(legacy):
    result = invoke("status", "--db-path", legacy)
    assert result.exit_code == 1
    assert "pending" in result.stdout and "0001_session_thread_relationship" in result.stdout


def test_status_exits_0_listing_applied_after_migrate(migrated):
    result = invoke("status", "--db-path", migrated)
    assert result.exit_code == 0, result.stdout
    assert "applied" in result.stdout and "0001_session_thread_relationship" in result.stdout
    assert "pending" not in result.stdout


def test_status_in_a_real_process(legacy):
    assert run_module("status", "--db-path", legacy).returncode == 1
    assert run_module("migrate", "--db-path", legacy).returncode == 0
    assert run_module("status", "--db-path", legacy).returncode == 0


def test_status_writes_nothing(legacy, file_digest):
    before, files = file_digest(legacy), sorted(legacy.parent.iterdir())
    invoke("status", "--db-path", legacy)
    assert file_digest(legacy) == before and sorted(legacy.parent.iterdir()) == files


# -- verify --------------------------------------------------------------------------------


def test_verify_passes_after_migrate(migrated):
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 0, result.stdout
    assert "ok" in result.stdout


def test_verify_fails_on_a_legacy_file_naming_the_pending_migration(legacy):
    result = invoke("verify", "--db-path", legacy)
    assert result.exit_code == 1
    assert "0001_session_thread_relationship" in result.stdout


def test_verify_names_an_index_dropped_by_hand(migrated):
    with raw(migrated) as con:
        con.execute("DROP INDEX idx_thread_messages_role")
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "thread_messages" in problems[0] and "role" in problems[0]


def test_verify_names_a_deleted_migrations_row(migrated):
    with raw(migrated) as con:
        con.execute("DELETE FROM migrations")
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert problems == [f"problem: migration {name} is not applied" for name in SHIPPED_SCRIPTS]


def test_verify_names_a_foreign_key_violation(migrated):
    with raw(migrated) as con:
        con.execute("PRAGMA foreign_keys = OFF")
        # migration 5 re-inserted every thread under its T- id: rowid 1 is gone, take the first
        assert (
            con.execute(
                "UPDATE threads SET \"sessionId\" = 'gone' WHERE rowid = (SELECT min(rowid) FROM threads)"
            ).rowcount
            == 1
        )
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 1
    assert "foreign_key_check" in result.stdout and "threads" in result.stdout


def test_verify_names_sessions_left_without_their_thread(migrated):
    with raw(migrated) as con:
        gone = con.execute("SELECT id FROM threads ORDER BY rowid LIMIT 1").fetchone()[0]
        assert con.execute("DELETE FROM threads WHERE id = ?", (gone,)).rowcount == 1
    result = invoke("verify", "--db-path", migrated)
    assert result.exit_code == 1
    assert (
        f"problem: 1 migrated threads are gone, with all their messages (at least their 1 "
        f"migration markers), while their sessions remain: {gone}; `sessionorm restore-threads "
        "--from BACKUP` copies back what a backup holds of them and nothing else (see README, "
        "'Living with the orchestrator')\n"
    ) in result.stdout


def test_verify_in_a_real_process(migrated):
    assert run_module("verify", "--db-path", migrated).returncode == 0
    with raw(migrated) as con:
        con.execute("DROP INDEX idx_thread_messages_role")
    done = run_module("verify", "--db-path", migrated)
    assert done.returncode == 1 and "role" in done.stdout


def test_verify_writes_nothing(migrated, file_digest):
    before, files = file_digest(migrated), sorted(migrated.parent.iterdir())
    invoke("verify", "--db-path", migrated)
    assert file_digest(migrated) == before and sorted(migrated.parent.iterdir()) == files


# -- errors: one line on stderr, non-zero exit, no traceback, file unchanged ---------------


@pytest.mark.parametrize("command", ["status", "verify", "rollback", "backup"])
def test_missing_database_is_one_line_and_creates_nothing(tmp_path, command):
    missing = tmp_path / "sub" / "missing.db"
    done = run_module(command, "--db-path", missing)
    assert done.returncode != 0
    assert str(missing) in one_error_line(done.stderr)
    assert not (tmp_path / "sub").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["status", "verify", "rollback", "backup"])
def test_missing_database_through_cli_runner(tmp_path, command):
    missing = tmp_path / "missing.db"
    result = invoke(command, "--db-path", missing)
    assert result.exit_code == 2
    assert "no database" in one_error_line(result.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def not_sqlite(tmp_path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    return path


@pytest.mark.parametrize("command", ["migrate", "status", "verify"])
def test_non_sqlite_file_is_one_clear_line_and_left_unchanged(not_sqlite, command, file_digest):
    before = file_digest(not_sqlite)
    done = run_module(command, "--db-path", not_sqlite)
    assert done.returncode != 0
    assert "not a SQLite database" in one_error_line(done.stderr)
    assert file_digest(not_sqlite) == before
    assert sorted(p.name for p in not_sqlite.parent.iterdir()) == [not_sqlite.name]


@pytest.mark.parametrize("command", ["migrate", "status", "verify"])
def test_non_sqlite_file_through_cli_runner(not_sqlite, command, file_digest):
    before = file_digest(not_sqlite)
    result = invoke(command, "--db-path", not_sqlite)
    assert result.exit_code == 2
    assert "not a SQLite database" in one_error_line(result.stderr)
    assert file_digest(not_sqlite) == before


def test_read_only_file_is_refused_by_migrate_and_left_unchanged(legacy, file_digest):
    legacy.chmod(0o444)
    before, files = file_digest(legacy), sorted(legacy.parent.iterdir())
    done = run_module("migrate", "--db-path", legacy)
    assert done.returncode != 0
    assert "read-only" in one_error_line(done.stderr)
    assert file_digest(legacy) == before and sorted(legacy.parent.iterdir()) == files


def test_read_only_file_can_still_be_checked(legacy):
    legacy.chmod(0o444)
    assert invoke("status", "--db-path", legacy).exit_code == 1  # pending, but readable
    assert invoke("backup", "--db-path", legacy).exit_code == 0


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_database_locked_by_another_writer_is_busy_then_migrates(legacy_db, wal, dump):
    path = legacy_db(6, threaded=3, iterations=1, wal=wal)
    before = dump(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute(
            "INSERT INTO iterations (id, sessionId, startTime)"
            " SELECT 'busy-writer', id, 'now' FROM sessions LIMIT 1"
        )
        done = run_module("migrate", "--db-path", path, "--busy-timeout", "0.2", timeout=30)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert done.returncode != 0
    assert "busy" in one_error_line(done.stderr)
    assert dump(path) == before
    assert "threads" not in tables(path)
    done = run_module("migrate", "--db-path", path, "--busy-timeout", "0.2")
    assert done.returncode == 0, done.stderr
    assert query(path, "SELECT count(*) FROM threads") == [(3,)]


def test_verbose_error_shows_the_traceback(not_sqlite):
    done = run_module("status", "--verbose", "--db-path", not_sqlite)
    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("error: ")


def test_verbose_migrate_shows_the_sql(legacy):
    done = run_module("migrate", "--verbose", "--db-path", legacy)
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE IF NOT EXISTS threads" in done.stderr
    assert "INSERT INTO threads" in done.stderr


def test_quiet_migrate_shows_no_sql(legacy):
    done = run_module("migrate", "--db-path", legacy)
    assert "CREATE TABLE" not in done.stdout + done.stderr
