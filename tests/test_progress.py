"""Progress of long steps: on a terminal only, from SQLite's progress handler."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import peewee
from cli_support import SHIPPED_SCRIPTS

from sessionorm.backends import backend_of


def test_a_long_statement_reports_its_elapsed_time_repeatedly(tmp_path: Path) -> None:
    db = peewee.SqliteDatabase(str(tmp_path / "p.db"))
    seen: list[float] = []
    with backend_of(db).reporting(seen.append, every=0.05):
        db.execute_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000)"
            " SELECT count(*) FROM n"
        ).fetchone()
    assert len(seen) >= 2 and seen == sorted(seen)
    db.execute_sql("SELECT 1")  # the handler is gone: nothing more is reported
    assert len(seen) == len(set(seen))


def on_a_terminal(*args: str) -> tuple[subprocess.CompletedProcess, str]:
    """`sessionorm ARGS` with stderr on a pseudo-terminal: (the run, what the terminal showed)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sessionorm", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=60,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    return proc, b"".join(chunks).decode()


def test_migrate_on_a_terminal_shows_the_step_being_applied(legacy_db) -> None:
    path = legacy_db(n=30)
    proc, stderr = on_a_terminal("migrate", "--db-path", str(path))
    assert proc.returncode == 0
    assert f"applying {', '.join(SHIPPED_SCRIPTS)}: 0 s" in stderr
    assert "search index: 15 of 15 messages" in stderr  # then the index of the messages there
    assert "applied 0001_session_thread_relationship" in proc.stdout.decode()


def test_migrate_into_a_pipe_prints_no_progress(legacy_db) -> None:
    path = legacy_db(n=30)
    proc = subprocess.run(
        [sys.executable, "-m", "sessionorm", "migrate", "--db-path", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_backup_and_the_backup_of_migrate_show_a_percentage_on_a_terminal(legacy_db) -> None:
    path = legacy_db(n=3000)
    proc, stderr = on_a_terminal("backup", "--db-path", str(path))
    assert proc.returncode == 0, stderr
    assert "backup: 0%" in stderr and "backup: 100%" in stderr
    proc, stderr = on_a_terminal("migrate", "--backup", "--db-path", str(path))
    assert proc.returncode == 0, stderr
    assert "backup: 100%" in stderr and "applying 0001_session_thread_relationship" in stderr


def test_verify_on_a_terminal_names_each_step(legacy_db) -> None:
    path = legacy_db(n=30)
    subprocess.run(
        [sys.executable, "-m", "sessionorm", "migrate", "--db-path", str(path)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    proc, stderr = on_a_terminal("verify", "--db-path", str(path))
    assert proc.returncode == 0, stderr
    for step in ("migrations", "schema", "integrity", "data"):
        assert f"verify: {step}: 0 s" in stderr


def test_backup_and_verify_into_a_pipe_print_no_progress(legacy_db) -> None:
    path = legacy_db(n=300)
    for args in (("backup",), ("verify",)):
        proc = subprocess.run(
            [sys.executable, "-m", "sessionorm", *args, "--db-path", str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.stderr == "", args


def test_a_shorter_progress_line_clears_what_the_longer_one_left(capsys) -> None:
    from sessionorm.cli import ProgressLine

    line = ProgressLine()
    line("copying thread_messages: 480,000 rows, 95,000 rows/s")
    line("checksums: 2 s")
    shown = capsys.readouterr().err.split("\r")[-1]
    assert shown.startswith("  checksums: 2 s …")
    assert len(shown) == len("  copying thread_messages: 480,000 rows, 95,000 rows/s …")
    assert shown[len("  checksums: 2 s …") :].strip() == ""
