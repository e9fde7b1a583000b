"""Files in use: every command reads through SQLite's locking, behind symlinks, after crashes.

Each case has another real process doing what the orchestrator does to the file: holding
committed rows in the -wal, committing in a loop in rollback-journal mode, dying mid-write
(a hot journal), or opening a brand-new file at the same moment.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import workers
from legacy import make_legacy_db

from sessionorm import NeedsMigrationError, SessionStore
from sessionorm.commands import backup, migrate

pytestmark = pytest.mark.slow

PYTHON = sys.executable
JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")  # the header of a rollback journal that is live


# -- other processes --------------------------------------------------------------------------

HOLD_WAL = textwrap.dedent("""
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("PRAGMA wal_autocheckpoint = 0")  # the rows stay in the -wal file
    con.execute("BEGIN")
    for i in range(int(sys.argv[2])):
        con.execute(
            "INSERT INTO sessions (id, name, ampPrompt, repoRoot, baseBranch, branchName,"
            " worktreePath, status, threadId, createdAt) VALUES (?, ?, 'p', '/r', 'main', 'b',"
            " '/r/w', 'idle', ?, '2025-09-01T00:00:00.000Z')",
            (f"wal-{i}", f"only in the WAL {i}", f"T-wal-{i}"))
    con.execute("COMMIT")
    print("ready", flush=True)
    sys.stdin.read()  # hold the connection (and the un-checkpointed WAL) until told to go
""")

LOOPING_WRITER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.execute("PRAGMA busy_timeout = 30000")
    con.execute("CREATE TABLE IF NOT EXISTS ticks (n INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    n = 0
    while True:
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO ticks (body) VALUES (?)", [("x" * 900,)] * 40)
        con.execute("COMMIT")
        n += 1
        if n == 5:
            print("ready", flush=True)
""")

CRASH_MID_TRANSACTION = textwrap.dedent("""
    import os, signal, sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("PRAGMA cache_size = 1")  # spill changed pages into the file before COMMIT
    con.execute("BEGIN")
    con.executemany("UPDATE sessions SET notes = ? WHERE rowid = ?",
                    [("crashed " * 50, i) for i in range(1, 400)])
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.fixture
def hold_wal_rows() -> Iterator:
    """`hold_wal_rows(path, n)`: another process commits `n` sessions into the -wal and keeps it."""
    started: list[subprocess.Popen] = []

    def start(path: Path, n: int) -> subprocess.Popen:
        proc = subprocess.Popen(
            [PYTHON, "-c", HOLD_WAL, str(path), str(n)],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in started:
        proc.stdin.close()
        proc.wait(30)


def main_file_sessions(path: Path) -> int:
    """Sessions in the main file alone, as a reader that ignores the -wal would count them."""
    con = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    finally:
        con.close()


def sessions_in(path: Path) -> int:
    return workers.table_counts(path)["sessions"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    return workers.run_cli(*map(str, args))


def printed_backup(stdout: str) -> Path:
    match = re.search(r"^backup: (\S+)", stdout, re.M)
    assert match, stdout
    return Path(match.group(1))


# -- a symlinked path, another process holding committed rows in the -wal -------------------------


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """(real file, symlink to it in another folder): a 25-session legacy database."""
    real_dir, link_dir = tmp_path / "real", tmp_path / "config"
    real_dir.mkdir()
    link_dir.mkdir()
    real = make_legacy_db(real_dir / "sessions.sqlite", 25)
    link = link_dir / "sessions.sqlite"
    link.symlink_to(real)
    return real, link


def test_backup_through_a_symlink_has_the_rows_another_process_holds_in_the_wal(linked, hold_wal_rows):
    real, link = linked
    hold_wal_rows(real, 10)
    assert main_file_sessions(real) == 25  # the 10 new rows are only in real's -wal

    done = cli("backup", "--db-path", link)
    assert done.returncode == 0, done.stderr
    saved = printed_backup(done.stdout)
    assert saved.parent == real.parent  # next to the real file, named after it
    assert saved.name.startswith(f"{real.name}.backup-")
    assert sessions_in(saved) == 35
    assert workers.integrity(saved) == "ok"
    assert not Path(f"{link}-wal").exists() and not Path(f"{link}-shm").exists()


def test_dry_run_through_a_symlink_counts_the_rows_in_the_wal(linked, hold_wal_rows):
    real, link = linked
    hold_wal_rows(real, 10)
    before = sha256(real)

    done = cli("migrate", "--dry-run", "--db-path", link)
    assert done.returncode == 0, done.stderr
    # 12 of the 25 legacy sessions carry a threadId, and all 10 rows in the -wal do
    assert "would migrate 22 sessions, skip 0" in done.stdout
    assert sha256(real) == before
    assert not Path(f"{link}-wal").exists()


def test_migrate_status_and_store_through_a_symlink_see_the_wal(linked, hold_wal_rows):
    real, link = linked
    hold_wal_rows(real, 10)

    done = cli("migrate", "--backup", "--db-path", link)
    assert done.returncode == 0, done.stderr
    assert "threads created: 22" in done.stdout
    assert sessions_in(printed_backup(done.stdout)) == 35
    # the migration itself is still in the -wal: the holder keeps it from being checkpointed
    assert Path(f"{real}-wal").stat().st_size > 0

    status = cli("status", "--db-path", link)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "pending" not in status.stdout
    verify = cli("verify", "--db-path", link)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    with SessionStore(link) as store:  # no NeedsMigrationError: it sees the applied migration
        assert len(store.get_session_threads("wal-3")) == 1


def test_store_through_a_symlink_refuses_a_legacy_file_whose_rows_are_in_the_wal(tmp_path, hold_wal_rows):
    real = make_legacy_db(tmp_path / "real.sqlite", 0)
    link = tmp_path / "link.sqlite"
    link.symlink_to(real)
    hold_wal_rows(real, 3)  # the only rows are in the -wal: the main file alone looks empty
    assert main_file_sessions(real) == 0

    with pytest.raises(NeedsMigrationError):
        SessionStore(link)


# -- a writer committing in a loop, in rollback-journal mode ---------------------------------------


def test_backups_under_a_looping_rollback_journal_writer_are_never_torn(tmp_path):
    db = make_legacy_db(tmp_path / "busy.sqlite", 200, wal=False)
    writer = subprocess.Popen(
        [PYTHON, "-c", LOOPING_WRITER, str(db)], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        seen = []
        for n in range(25):
            saved = backup(db, tmp_path / f"copy-{n}.sqlite")
            assert workers.integrity(saved) == "ok", n
            ticks = workers.table_counts(saved)["ticks"]
            assert ticks % 40 == 0  # whole transactions only
            seen.append(ticks)
        assert writer.poll() is None, writer.stderr.read()  # it was never starved into failing
    finally:
        writer.kill()
        writer.wait(30)
    assert seen == sorted(seen) and seen[-1] > seen[0]  # the writer kept committing between them
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # backups switch nothing
    con.close()


# -- a writer SIGKILLed mid-transaction: a hot journal ---------------------------------------------


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> dict[str, Path]:
    """Rollback-journal files whose writer died mid-transaction: a legacy and a migrated one.

    Copy them (with their -journal) before use; `expected` is what recovery must give back.
    """
    folder = tmp_path_factory.mktemp("crashed")
    legacy = make_legacy_db(folder / "legacy.sqlite", 400, wal=False)
    migrated = make_legacy_db(folder / "migrated.sqlite", 400)
    migrate(migrated)
    con = sqlite3.connect(migrated)
    con.execute("PRAGMA journal_mode = DELETE")  # as a rollback-journal orchestrator leaves it
    con.close()
    files = {"legacy": legacy, "migrated": migrated}
    for path in files.values():
        subprocess.run([PYTHON, "-c", CRASH_MID_TRANSACTION, str(path)], check=False)
        journal = Path(f"{path}-journal")
        assert journal.exists() and journal.stat().st_size > 0  # hot: the crash left it behind
    return files


@pytest.fixture
def hot(crashed, tmp_path) -> Iterator:
    """`hot(kind)`: a fresh copy of a crashed file and its hot journal."""

    def copy(kind: str) -> Path:
        target = tmp_path / f"{kind}.sqlite"
        shutil.copyfile(crashed[kind], target)
        shutil.copyfile(f"{crashed[kind]}-journal", f"{target}-journal")
        return target

    return copy


def assert_recovered(path: Path) -> None:
    """The crashed transaction was rolled back: no trace of it, and the file is intact."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert con.execute("SELECT count(*) FROM sessions WHERE notes LIKE 'crashed%'").fetchone() == (0,)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        con.close()
    journal = Path(f"{path}-journal")
    assert not journal.exists() or not journal.read_bytes().startswith(JOURNAL_MAGIC)


@pytest.mark.parametrize(
    ("kind", "args", "exit_code", "expect"),
    [
        ("migrated", ("status",), 0, "applied"),
        ("migrated", ("verify",), 0, ": ok ("),
        ("migrated", ("backup",), 0, "backup: "),
        ("migrated", ("migrate", "--dry-run"), 0, "up to date"),
        ("legacy", ("status",), 1, "pending"),
        ("legacy", ("migrate", "--dry-run"), 0, "would migrate 200 sessions"),
        ("legacy", ("backup",), 0, "backup: "),
        ("legacy", ("migrate", "--backup"), 0, "threads created: 200"),
    ],
)
def test_every_command_recovers_a_hot_journal_instead_of_calling_the_file_read_only(
    hot, kind, args, exit_code, expect
):
    path = hot(kind)
    done = cli(*args, "--db-path", path)
    assert "read-only" not in done.stderr and "readonly" not in done.stderr, done.stderr
    assert done.returncode == exit_code, done.stdout + done.stderr
    assert expect in done.stdout
    assert_recovered(path)
    if "backup: " in done.stdout:
        saved = printed_backup(done.stdout)
        assert workers.integrity(saved) == "ok"
        assert_recovered(saved)


def test_store_opens_a_file_with_a_hot_journal(hot):
    path = hot("migrated")
    with SessionStore(path) as store:
        session_id = store.db.execute_sql("SELECT id FROM sessions LIMIT 1").fetchone()[0]
        assert store.get_session(session_id).notes is None
        store.create_thread(session_id, "after the crash")
    assert_recovered(path)


def test_store_refuses_a_legacy_file_with_a_hot_journal_as_needing_migration(hot):
    path = hot("legacy")
    with pytest.raises(NeedsMigrationError):
        SessionStore(path)
    assert_recovered(path)


def test_a_really_read_only_file_with_a_hot_journal_gets_one_line_and_stays_as_it_is(hot):
    path = hot("migrated")
    path.chmod(0o444)
    before, journal = sha256(path), sha256(Path(f"{path}-journal"))
    for args in (("status",), ("verify",), ("backup",), ("migrate", "--dry-run")):
        done = cli(*args, "--db-path", path)
        assert done.returncode != 0, args
        line = done.stderr.strip()
        assert "\n" not in line and "Traceback" not in line, done.stderr
        assert line == (
            f"error: {path} is read-only and has a hot journal left by a crashed "
            "writer; make the file writable so SQLite can roll that transaction "
            "back before anything reads it"
        ), args
    assert sha256(path) == before and sha256(Path(f"{path}-journal")) == journal


# -- several processes on a brand-new file, and two migrations at once ---------------------------

OPEN_NEW_STORE = textwrap.dedent("""
    import sys, time
    from sessionorm import SessionStore
    go = float(sys.argv[2])
    time.sleep(max(0.0, go - time.time()))  # every process opens at the same moment
    with SessionStore(sys.argv[1]) as store:
        store.create_session(name="one", amp_prompt="p", repo_root="/r")
    print("ok")
""")


@pytest.mark.parametrize("attempt", range(5))
def test_four_processes_opening_a_new_file_at_once_all_succeed(tmp_path, attempt):
    db = tmp_path / "new.sqlite"
    go = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", OPEN_NEW_STORE, str(db), repr(go)],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outcomes = [(p.wait(60), *p.communicate()) for p in procs]
    assert [o[0] for o in outcomes] == [0, 0, 0, 0], "\n".join(o[2][-2000:] for o in outcomes)
    assert workers.table_counts(db)["sessions"] == 4
    shipped = list((Path(__file__).parents[1] / "migrations").glob("0*.py"))
    assert workers.table_counts(db)["migrations"] == len(shipped)


def start_migrate(db: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        workers.cli_command("migrate", *extra, "--db-path", str(db)),
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def legacy_20k(tmp_path_factory) -> Path:
    return make_legacy_db(tmp_path_factory.mktemp("two") / "legacy.sqlite", 20_000)


@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("with_backup", [False, True], ids=["plain", "backup"])
def test_two_concurrent_migrations_one_applies_the_other_finds_it_done(
    legacy_20k, tmp_path, with_backup, attempt
):
    # With --backup this once failed half the time: reading the file's header with open() and
    # close() dropped the POSIX write lock the migration held (now only SQLite opens the file).
    db = tmp_path / "sessions.sqlite"
    workers.copy_database(legacy_20k, db)
    extra = ("--backup",) if with_backup else ()
    procs = [start_migrate(db, *extra) for _ in range(2)]
    results = [(p.wait(120), *p.communicate()) for p in procs]

    assert [r[0] for r in results] == [0, 0], [r[2] for r in results]
    assert all(r[2] == "" for r in results), [r[2] for r in results]
    outputs = sorted(r[1] for r in results)
    applied = [o for o in outputs if "threads created: 10000" in o]
    up_to_date = [o for o in outputs if "up to date, nothing to migrate" in o]
    assert len(applied) == 1 and len(up_to_date) == 1, outputs
    counts = workers.table_counts(db)
    assert counts["threads"] == counts["thread_messages"] == 10_000  # nothing twice
    backups, partial = workers.backups_of(db)
    assert partial == []
    if with_backup:
        assert len(backups) == 1 and "backup: " in applied[0] and "backup" not in up_to_date[0]
        assert workers.table_counts(backups[0]) == workers.table_counts(legacy_20k)
    else:
        assert backups == []
    assert cli("verify", "--db-path", db).returncode == 0


def test_migrate_backup_facing_a_held_write_lock_fails_busy_and_takes_no_backup(legacy_db):
    db = legacy_db(n=50)
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            textwrap.dedent("""
            import sqlite3, sys
            con = sqlite3.connect(sys.argv[1], isolation_level=None)
            con.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            sys.stdin.read()
        """),
            str(db),
        ],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = cli("migrate", "--backup", "--busy-timeout", "0.3", "--db-path", db)
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert done.returncode != 0
    assert done.stderr.startswith("error: ") and "database is busy" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert workers.backups_of(db) == ([], [])  # no lock, no backup
    assert "migrations" not in workers.table_counts(db)


def test_four_migrate_commands_on_a_new_path_at_once_apply_everything_once(tmp_path):
    db = tmp_path / "fresh" / "sessions.sqlite"
    procs = [start_migrate(db) for _ in range(4)]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    assert [r[0] for r in results] == [0, 0, 0, 0], [r[2] for r in results]
    assert sum("applied 0001_session_thread_relationship" in r[1] for r in results) == 1
    assert sum("up to date, nothing to migrate" in r[1] for r in results) == 3
    assert cli("verify", "--db-path", db).returncode == 0
