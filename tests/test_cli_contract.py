"""The command line's contract with scripts: exit codes, where the database is, option checks,
a closed stdout. In the CLI's own terms: exit codes and exact messages, through real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import REPO_ROOT, one_error_line
from legacy import make_legacy_db

from sessionorm import SessionStore

PYTHON = sys.executable


def sessionorm(
    *args: str | os.PathLike, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess:
    """`python -m sessionorm ARGS` with exactly the environment variables given in `env`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AMPSM_DB_PATH", "SESSIONORM_DB_URL", "SESSIONORM_MIGRATIONS_DIR")
    }
    return subprocess.run(
        [PYTHON, "-m", "sessionorm", *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        cwd=cwd,
        env={**clean, **(env or {}), "PYTHONPATH": str(REPO_ROOT)},
    )


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    path = tmp_path / "migrated.sqlite"
    SessionStore(path).close()
    return path


# -- exit codes: 0 clean, 1 an answer that is not clean, 2 failures ---------------------------------


@pytest.mark.parametrize("command", ["status", "verify", "diff", "backup", "rollback"])
def test_a_missing_database_is_a_failure_exit_2_not_an_answer(tmp_path, command):
    missing = tmp_path / "missing.sqlite"
    done = sessionorm(command, "--db-path", missing)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == f"error: no database at {missing}"
    assert not missing.exists()


@pytest.mark.parametrize("command", ["status", "verify", "diff"])
def test_not_a_database_is_exit_2(tmp_path, command):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 10)
    done = sessionorm(command, "--db-path", path)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == f"error: {path} is not a SQLite database"
    assert path.read_text() == "hello\n" * 10


def test_pending_is_exit_1_and_clean_is_exit_0(tmp_path, migrated):
    legacy = make_legacy_db(tmp_path / "legacy.sqlite", 3)
    assert sessionorm("status", "--db-path", legacy).returncode == 1
    assert sessionorm("status", "--db-path", migrated).returncode == 0
    assert sessionorm("verify", "--db-path", migrated).returncode == 0
    assert sessionorm("diff", "--db-path", migrated).returncode == 0


# -- where the database is ------------------------------------------------------------------------


def test_explicit_options_beat_environment_defaults(tmp_path, migrated):
    other = tmp_path / "other.sqlite"
    env = {
        "AMPSM_DB_PATH": str(tmp_path / "env-path.sqlite"),
        "SESSIONORM_DB_URL": f"sqlite:///{tmp_path / 'env-url.sqlite'}",
    }
    done = sessionorm("migrate", "--db-path", other, env=env)
    assert done.returncode == 0, done.stderr
    assert other.exists()
    done = sessionorm("status", "--db-path", migrated, env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "env-path.sqlite").exists() and not (tmp_path / "env-url.sqlite").exists()


def test_sessionorm_db_url_beats_ampsm_db_path(tmp_path):
    env = {
        "AMPSM_DB_PATH": str(tmp_path / "by-path.sqlite"),
        "SESSIONORM_DB_URL": f"sqlite:///{tmp_path / 'by-url.sqlite'}",
    }
    done = sessionorm("migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "by-url.sqlite").exists() and not (tmp_path / "by-path.sqlite").exists()


def test_ampsm_db_path_beats_the_default(tmp_path):
    done = sessionorm(
        "migrate", env={"AMPSM_DB_PATH": str(tmp_path / "by-path.sqlite"), "HOME": str(tmp_path / "home")}
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "by-path.sqlite").exists() and not (tmp_path / "home").exists()


def test_both_explicit_options_are_a_usage_error(tmp_path):
    done = sessionorm("status", "--db-path", tmp_path / "a", "--db-url", "sqlite:///b")
    assert done.returncode == 2
    assert "give --db-path or --db-url, not both" in done.stderr


def test_help_names_the_environment_variables_and_their_order():
    done = sessionorm("--help")
    text = " ".join(done.stdout.split())
    assert (
        "The database, in order: --db-path / --db-url; $SESSIONORM_DB_URL; $AMPSM_DB_PATH; "
        "~/.config/ampsm/sessions.sqlite."
    ) in text
    assert "$SESSIONORM_MIGRATIONS_DIR" in text
    option_help = " ".join(sessionorm("status", "--help").stdout.split())
    assert "$SESSIONORM_DB_URL" in option_help and "$SESSIONORM_MIGRATIONS_DIR" in option_help


# -- option checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nan", "inf", "-1", "soon"])
def test_busy_timeout_must_be_a_finite_number_of_seconds(migrated, bad):
    done = sessionorm("status", "--busy-timeout", bad, "--db-path", migrated)
    assert done.returncode == 2
    assert "Invalid value for '--busy-timeout'" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_migrations_dir_is_an_error(tmp_path, migrated):
    missing = tmp_path / "nope"
    for command in ("status", "migrate", "verify"):
        done = sessionorm(command, "--db-path", migrated, "--migrations-dir", missing)
        assert done.returncode == 2, command
        assert f"error: Invalid value for --migrations-dir: no folder '{missing}'" in done.stderr
    done = sessionorm("status", "--db-path", migrated, env={"SESSIONORM_MIGRATIONS_DIR": str(missing)})
    assert done.returncode == 2


# -- a closed stdout --------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "code"), [("status", 0), ("verify", 0), ("diff", 0), ("migrate", 0)])
def test_a_closed_stdout_ends_quietly_keeping_the_exit_code(migrated, command, code):
    proc = subprocess.Popen(
        [PYTHON, "-m", "sessionorm", command, "--db-path", str(migrated)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == code
    assert stderr == ""


def test_a_closed_stdout_keeps_a_pending_status_at_exit_1(tmp_path):
    legacy = make_legacy_db(tmp_path / "legacy.sqlite", 3)
    proc = subprocess.Popen(
        [PYTHON, "-m", "sessionorm", "status", "--db-path", str(legacy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    proc.stdout.close()
    assert proc.stderr.read().decode() == ""
    assert proc.wait(60) == 1


# -- verify answers, even on a damaged file ---------------------------------------------------------


def damage_a_data_page(path: Path) -> None:
    """Overwrite the middle of the file (table pages, not the schema on page 1) with garbage."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2 // 4096 * 4096)
        fh.write(b"\xff" * 4096)


def test_verify_on_a_damaged_file_is_an_answer_listing_its_integrity_problems(tmp_path):
    path = tmp_path / "damaged.sqlite"
    with SessionStore(path) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "t").id
        store.add_thread_messages(thread, [("user", "x" * 500)] * 2000)
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = DELETE")  # everything in the main file
    con.close()
    damage_a_data_page(path)
    done = sessionorm("verify", "--db-path", path)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    problems = [line for line in done.stdout.splitlines() if line.startswith("problem: ")]
    assert any(line.startswith("problem: integrity_check: ") for line in problems), done.stdout
    assert done.stdout.splitlines()[-1] == f"{path}: {len(problems)} problem(s)"


def test_verify_requires_the_role_check_in_either_spelling(tmp_path):
    import sqlite3

    path = tmp_path / "roles.sqlite"
    SessionStore(path).close()
    assert sessionorm("verify", "--db-path", path).returncode == 0
    con = sqlite3.connect(path)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'thread_messages'").fetchone()[0]
    spaced = sql.replace("'user','assistant','system'", "'user', 'assistant', 'system'")
    assert spaced != sql
    for new in (spaced, sql.replace(" CHECK(role IN ('user','assistant','system'))", "")):
        con.execute("PRAGMA writable_schema = ON")
        con.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'thread_messages'", (new,))
        con.commit()
        con.close()
        con = sqlite3.connect(path)
        done = sessionorm("verify", "--db-path", path)
        if new == spaced:
            assert done.returncode == 0, done.stdout
        else:
            assert done.returncode == 1
            assert (
                "problem: missing CHECK (role IN ('user','assistant','system')) on thread_messages"
            ) in done.stdout
    con.close()


def test_a_failing_migration_script_is_named_and_nothing_of_it_is_kept(tmp_path, migrated):
    scripts = tmp_path / "mine"
    scripts.mkdir()
    (scripts / "0008_explode.py").write_text(
        "def up(migrator, db):\n    db.execute_sql('CREATE TABLE half (x)')\n    raise RuntimeError('boom')\n"
    )
    done = sessionorm("migrate", "--db-path", migrated, "--migrations-dir", scripts)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        "error: migration 0008_explode (up) failed, nothing of it was kept: RuntimeError: boom"
    )
    import sqlite3

    con = sqlite3.connect(migrated)
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone() == (0,)
    con.close()


def test_verbose_shows_each_statement_with_its_own_time_commit_included(tmp_path):
    import re

    path = make_legacy_db(tmp_path / "legacy.sqlite", 20)
    done = sessionorm("migrate", "--verbose", "--db-path", path)
    assert done.returncode == 0, done.stderr
    statements = re.findall(r"^\[\d+\.\d{3}s\] (.*)$", done.stderr, re.M)
    assert "BEGIN IMMEDIATE" in statements and "COMMIT" in statements
    assert statements.index("BEGIN IMMEDIATE") < statements.index("COMMIT")
    first_commit = statements.index("COMMIT")
    migration = statements[: first_commit + 1]
    assert first_commit > max(i for i, s in enumerate(migration) if s.startswith("INSERT"))
    # then the messages already there go into the search index, a batch per transaction
    rest = statements[first_commit + 1 :]
    assert any("sessionorm_search" in s for s in rest) and rest.count("BEGIN IMMEDIATE") == rest.count(
        "COMMIT"
    )


# -- database URLs, read by playhouse.db_url ------------------------------------------------------


def test_a_sqlite_url_query_holds_options_never_part_of_the_file_name(tmp_path):
    done = sessionorm("migrate", "--db-url", f"sqlite:///{tmp_path / 'u.db'}?timeout=3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.db"]
    relative = sessionorm("migrate", "--db-url", "sqlite:///rel.db", cwd=tmp_path)
    assert relative.returncode == 0 and (tmp_path / "rel.db").exists()


def test_a_sqlite_url_timeout_is_the_busy_timeout(tmp_path):
    from sessionorm.target import Target

    assert Target.from_url(f"sqlite:///{tmp_path}/a.db?timeout=3").busy_timeout == 3
    assert Target.of(f"sqlite:///{tmp_path}/a.db?timeout=3", busy_timeout=1).busy_timeout == 1
    done = sessionorm("status", "--db-url", f"sqlite:///{tmp_path}/a.db?timeout=nan")
    assert done.returncode == 2
    assert "timeout must be a finite number of seconds >= 0" in one_error_line(done.stderr)


def test_every_sqlite_family_scheme_is_a_file(tmp_path):
    url = f"sqlite+pool:///{tmp_path / 'd.sqlite'}"
    assert sessionorm("migrate", "--db-url", url).returncode == 0
    done = sessionorm("backup", "--db-url", url)
    assert done.returncode == 0, done.stderr
    saved = Path(done.stdout.split("backup: ", 1)[1].strip())
    assert saved.name.startswith("d.sqlite.backup-")  # SQLite's online backup, not pg_dump
    assert saved.read_bytes()[:16] == b"SQLite format 3\x00"


@pytest.mark.parametrize("url", ["mysql://user:secret@host/db", "nonsense", "ftp://x/y"])
def test_an_unsupported_url_is_one_line_naming_what_is_supported_and_creates_nothing(tmp_path, url):
    done = sessionorm("migrate", "--db-url", url, cwd=tmp_path)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith("error: unsupported database URL ")
    assert line.endswith(
        "use sqlite:///file.db (any SQLite scheme, e.g. sqlite+pool) or postgresql://host/database"
    )
    assert "secret" not in line
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_url_without_a_file_is_refused(tmp_path):
    done = sessionorm("migrate", "--db-url", "sqlite://", cwd=tmp_path)
    assert done.returncode == 2
    assert "names no file" in one_error_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


def test_the_store_takes_a_path_or_a_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SessionStore("sqlite:///x.db") as store:
        store.create_session(name="n", amp_prompt="p", repo_root="/r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # no folder named "sqlite:"
    with SessionStore(url=f"sqlite:///{tmp_path / 'x.db'}?timeout=2") as store:
        assert len(store.list_sessions()) == 1
    with SessionStore(tmp_path / "x.db") as store:
        assert len(store.list_sessions()) == 1


def test_the_command_functions_take_one_parsed_target(tmp_path):
    from sessionorm import migrate, status
    from sessionorm.target import Target

    scripts = tmp_path / "mine"
    scripts.mkdir()
    (scripts / "0008_note.py").write_text(
        "def up(migrator, db):\n    db.execute_sql('CREATE TABLE note (x)')\n"
    )
    target = Target.of(tmp_path / "t.sqlite", busy_timeout=2, migrations_dir=scripts)
    assert "0008_note" in migrate(target).applied
    assert [m.name for m in status(target)][-1] == "0008_note"
