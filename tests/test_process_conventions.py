"""Process conventions of the CLI, through real processes: Ctrl-C is exit 130 with one line and
changes nothing; a closed stdout or stderr neither prints a traceback nor lets output into the
database (the database would get the closed descriptor); a usage error is one line, exit 2."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import workers
from cli_support import REPO_ROOT
from legacy import make_legacy_db

from sessionorm import SessionStore


def start(*args: str, close: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sessionorm", *args],
        stdin=subprocess.DEVNULL,
        stdout=None if close == 1 else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        preexec_fn=(lambda: os.close(close)) if close is not None else None,
    )


def test_ctrl_c_is_exit_130_with_one_line_and_the_file_as_it_was(tmp_path: Path):
    db = make_legacy_db(tmp_path / "legacy.sqlite", 100_000, iterations=0)
    before = workers.fingerprint(db)
    proc = start("migrate", "--db-path", str(db))
    time.sleep(1.0)  # inside the migration's transaction
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished first on a fast machine: nothing to say about Ctrl-C
        return
    assert proc.returncode == 130, (out, err)
    assert err == "error: interrupted\n"
    assert workers.fingerprint(db) == before  # rolled back as a whole


def test_a_closed_stdout_writes_nothing_into_the_database(tmp_path: Path):
    db = tmp_path / "s.sqlite"
    with SessionStore(db) as store:
        store.create_session(name="s", amp_prompt="p", repo_root="/r")
    for command in (["status"], ["verify"], ["migrate"], ["diff"]):
        proc = start(*command, "--db-path", str(db), close=1)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (command, err)
        assert err == "", (command, err)  # no "Exception ignored", no traceback
        assert workers.integrity(db) == "ok"
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    proc = start("backup", "--db-path", str(db), "-o", str(tmp_path / "b.sqlite"), close=2)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_a_usage_error_is_one_line_exit_2(tmp_path: Path):
    for args, says in (
        (["status", "--bogus"], "error: No such option '--bogus'"),
        (["stauts"], "error: No such command 'stauts'"),
        (["status", "--db-path", ""], "error: --db-path is empty"),
    ):
        proc = start(*args)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith(says), (args, err)
        assert "--help)" in err and out == ""


def test_memory_is_an_in_memory_database_not_a_file(tmp_path: Path, monkeypatch):
    """`SessionStore(":memory:")`, as sqlite3 and peewee read the name: no file is made."""
    monkeypatch.chdir(tmp_path)
    with SessionStore(":memory:") as first, SessionStore(":memory:") as second:
        first.create_session(name="s", amp_prompt="p", repo_root="/r")
        assert len(first.list_sessions()) == 1 and second.list_sessions() == []
    assert list(tmp_path.iterdir()) == []
