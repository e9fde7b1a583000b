"""Backups: online (WAL pages included), checked, named by UTC time, never overwriting.

the contract, CLI and Known gaps; issue 3.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
import workers
from cli_support import BACKUP_SUFFIX, invoke, one_error_line, query, run_module, tables

from sessionorm import MigrationError, commands
from sessionorm.backends.sqlite_backup import backup_name, check_copy, table_counts

FLAVOURS = ["pre", "final"]


@pytest.fixture(params=FLAVOURS)
def legacy(request, legacy_db) -> Path:
    return legacy_db(8, flavor=request.param, threaded=5, duplicates=2, iterations=2)


def printed_backup(output: str) -> Path:
    """The path after `backup: ` in a command's output."""
    match = re.search(r"^backup: (\S+)", output, re.M)
    assert match, output
    return Path(match.group(1))


def backups(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.backup-"))


@pytest.fixture
def wal_only_row(legacy):
    """A connection that committed a session which is only in the -wal file; kept open."""
    con = sqlite3.connect(legacy, isolation_level=None)
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute(
        "INSERT INTO sessions (id, name, ampPrompt, repoRoot, baseBranch, branchName,"
        " worktreePath, status, createdAt) VALUES ('wal-only', 'only in the WAL', 'p',"
        " '/r', 'main', 'b', '/w', 'idle', '2025-08-01T00:00:00.000Z')"
    )
    assert Path(f"{legacy}-wal").stat().st_size > 0
    copy = legacy.with_name("plain-copy.db")
    shutil.copy(legacy, copy)  # the known gap: a file copy misses the committed row
    assert query(copy, "SELECT count(*) FROM sessions WHERE id = 'wal-only'") == [(0,)]
    copy.unlink()
    yield con
    con.close()


def test_migrate_backup_is_named_after_the_database_and_utc_time(legacy):
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = invoke("migrate", "--backup", "--db-path", legacy)
    assert result.exit_code == 0, result.stderr
    path = printed_backup(result.stdout)
    assert re.fullmatch(re.escape(legacy.name) + BACKUP_SUFFIX, path.name)
    assert path.parent == legacy.parent and path.exists()
    stamp = dt.datetime.strptime(path.name[-17:], "%Y-%m-%d-%H%M%S").replace(tzinfo=dt.UTC)
    assert start <= stamp <= dt.datetime.now(dt.UTC)


def test_migrate_backup_holds_the_database_as_it_was_before(legacy, dump):
    before = dump(legacy)
    result = invoke("migrate", "--backup", "--db-path", legacy)
    saved = printed_backup(result.stdout)
    assert dump(saved) == before
    assert "threads" not in tables(saved) and "threads" in tables(legacy)


def test_migrate_backup_in_a_real_process(legacy, dump):
    before = dump(legacy)
    done = run_module("migrate", "--backup", "--db-path", legacy)
    assert done.returncode == 0, done.stderr
    saved = printed_backup(done.stdout)
    assert backups(legacy) == [saved]
    assert dump(saved) == before


def test_backup_includes_pages_another_open_connection_left_in_the_wal(legacy, wal_only_row):
    result = invoke("migrate", "--backup", "--db-path", legacy)
    assert result.exit_code == 0, result.stderr
    saved = printed_backup(result.stdout)
    assert query(saved, "SELECT name FROM sessions WHERE id = 'wal-only'") == [("only in the WAL",)]


def test_backup_command_includes_wal_pages_in_a_real_process(legacy, wal_only_row, dump):
    done = run_module("backup", "--db-path", legacy)
    assert done.returncode == 0, done.stderr
    saved = printed_backup(done.stdout)
    assert query(saved, "SELECT count(*) FROM sessions WHERE id = 'wal-only'") == [(1,)]
    assert dump(saved) == dump(legacy)


def test_backup_copy_passes_integrity_check_and_has_every_row(legacy, dump):
    saved = commands.backup(legacy)
    assert query(saved, "PRAGMA integrity_check") == [("ok",)]
    assert dump(saved) == dump(legacy)


def test_backup_never_overwrites_an_existing_file(legacy):
    now = dt.datetime.now(dt.UTC)
    taken = [backup_name(legacy, now + dt.timedelta(seconds=s)) for s in range(0, 4)]
    for path in taken:  # whichever second the backup lands in, its first name is taken
        path.write_text("precious, not a backup")
    result = invoke("backup", "--db-path", legacy)
    assert result.exit_code == 0, result.stderr
    saved = printed_backup(result.stdout)
    assert saved.name.endswith("-2") and saved.with_name(saved.name[:-2]) in taken
    assert all(p.read_text() == "precious, not a backup" for p in taken)
    assert query(saved, "PRAGMA integrity_check") == [("ok",)]


def test_two_backups_in_the_same_second_get_distinct_names(legacy):
    first, second = commands.backup(legacy), commands.backup(legacy)
    assert first != second
    if first.name[-17:] == second.name[-17:]:  # same second: numbered, not overwritten
        assert second.name == first.name + "-2"
    assert backups(legacy) == sorted([first, second])


def test_backup_output_refuses_an_existing_file_and_leaves_it_untouched(legacy, tmp_path):
    target = tmp_path / "keep.db"
    target.write_bytes(b"do not touch")
    result = invoke("backup", "--db-path", legacy, "--output", target)
    assert result.exit_code == 2
    assert "refusing to overwrite" in one_error_line(result.stderr)
    assert target.read_bytes() == b"do not touch"


def test_backup_output_writes_the_named_file(legacy, tmp_path, dump):
    target = tmp_path / "elsewhere.db"
    done = run_module("backup", "--db-path", legacy, "--output", target)
    assert done.returncode == 0, done.stderr
    assert printed_backup(done.stdout) == target
    assert dump(target) == dump(legacy)


def test_backup_check_rejects_a_copy_whose_row_counts_differ(legacy):
    saved = commands.backup(legacy)
    with contextlib.closing(sqlite3.connect(saved)) as con:
        counts = table_counts(con)
    check_copy(saved, counts)  # the real copy passes
    with pytest.raises(MigrationError, match="row counts differ"):
        check_copy(saved, {**counts, "sessions": counts["sessions"] + 1})


def test_backup_keeps_the_database_permission_bits(legacy):
    legacy.chmod(0o640)
    saved = commands.backup(legacy)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o640


def test_backup_leaves_no_temporary_files(legacy):
    before = set(legacy.parent.iterdir())
    saved = commands.backup(legacy)
    assert set(legacy.parent.iterdir()) - before == {saved}


def test_backup_does_not_change_the_database(legacy, file_digest):
    before = file_digest(legacy)
    commands.backup(legacy)
    assert file_digest(legacy) == before


def test_backup_removes_temp_files_left_by_a_killed_backup_but_not_a_running_ones(legacy):
    import os
    import subprocess
    import sys

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(finished.stdout)  # that process has exited
    stale = legacy.with_name(f".{legacy.name}.backup-2025-01-01-000000.partial-{dead_pid}")
    running = legacy.with_name(f".{legacy.name}.backup-2025-01-01-000000.partial-{os.getpid()}")
    stale.write_bytes(b"half a backup")
    running.write_bytes(b"a backup in progress")
    commands.backup(legacy)
    assert not stale.exists()
    assert running.read_bytes() == b"a backup in progress"


@pytest.fixture
def damaged(tmp_path) -> Path:
    """A database whose index does not match its table: 49 integrity_check problems."""
    path = tmp_path / "damaged.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE t (a, b)")
        con.execute("CREATE INDEX i ON t (a)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, -i) for i in range(50)])
        con.commit()
        con.execute("PRAGMA writable_schema = ON")  # the index now claims another column
        con.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX i ON t (b)' WHERE name = 'i'")
        con.commit()
    return path


def test_a_backup_failing_its_integrity_check_is_one_line_naming_the_first_problem(damaged):
    done = run_module("backup", "--db-path", damaged)
    assert done.returncode != 0
    assert one_error_line(done.stderr) == (
        "error: backup failed its integrity check: row 2 missing from index i "
        "(and 48 more; --verbose lists them)"
    )
    _, leftovers = workers.backups_of(damaged)
    assert leftovers == [] and workers.backups_of(damaged)[0] == []


def test_verbose_lists_every_integrity_problem_of_a_failed_backup(damaged):
    done = run_module("backup", "--verbose", "--db-path", damaged)
    assert done.returncode != 0
    listed = [
        line
        for line in done.stderr.splitlines()
        if re.fullmatch(r"  (row \d+ missing from index i|wrong # of entries in index i)", line)
    ]
    assert len(listed) == 49 and listed[0] == "  row 2 missing from index i"
