"""A damaged file (truncated, as `head -c` leaves it): `verify` answers with exit 1 and the
damage as problems; every other command fails in one line naming the file, exit 2; the
Python API raises `DatabaseDamagedError`. Nothing is written: not a byte, not a sidecar."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from test_cli_contract import sessionorm

from sessionorm import SessionStore, verify
from sessionorm.errors import DatabaseDamagedError, DatabaseOpenError


def state(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def truncated(tmp_path: Path) -> Path:
    good = tmp_path / "good.sqlite"
    with SessionStore(good) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "t").id
        store.add_thread_messages(thread, [("user", "x" * 2000)] * 300)
    folder = tmp_path / "damaged"
    folder.mkdir()
    path = folder / "t.sqlite"
    path.write_bytes(good.read_bytes()[:100_000])
    return path


def test_verify_answers_a_damaged_file_with_exit_1(truncated: Path):
    before = state(truncated.parent)
    done = sessionorm("verify", "--db-path", truncated)
    assert done.returncode == 1, done.stderr
    assert (
        f"problem: {truncated} is damaged and cannot be opened (database disk image is malformed)"
        in done.stdout
    )
    assert "problem: integrity_check:" in done.stdout
    report = verify(truncated)
    assert not report.ok and "is damaged" in report.problems[0]
    assert state(truncated.parent) == before


@pytest.mark.parametrize(
    "command", [["status"], ["migrate"], ["backup"], ["rollback"], ["diff"], ["backfill"]]
)
def test_other_commands_fail_in_one_line_naming_the_file(truncated: Path, command: list[str]):
    before = state(truncated.parent)
    done = sessionorm(*command, "--db-path", truncated)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {truncated} is damaged (database disk image is malformed)")
    assert done.stderr.count("\n") == 1
    assert state(truncated.parent) == before


def test_the_store_raises_a_typed_error(truncated: Path):
    before = state(truncated.parent)
    with pytest.raises(DatabaseDamagedError, match="is damaged") as caught:
        SessionStore(truncated)
    assert isinstance(caught.value, DatabaseOpenError)
    assert state(truncated.parent) == before


def test_a_migration_that_fails_after_its_backup_names_the_backup(tmp_path: Path):
    """Under a file-size limit the backup (the size of the file) fits and the migration's
    writes do not: the one error line says where the backup is; the file is as it was."""
    import resource
    import subprocess
    import sys

    import workers
    from cli_support import REPO_ROOT
    from legacy import make_legacy_db

    db = make_legacy_db(tmp_path / "legacy.sqlite", 20_000, wal=False)
    before = workers.fingerprint(db)
    limit = db.stat().st_size + 4096

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "sessionorm", "migrate", "--backup", "--db-path", str(db)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        preexec_fn=limited,
        timeout=120,
    )
    backups = sorted(tmp_path.glob("legacy.sqlite.backup-*"))
    assert done.returncode == 2, done.stderr
    assert len(backups) == 1 and done.stderr.count("\n") == 1
    assert done.stderr.rstrip().endswith(f"(the backup taken before it failed: {backups[0]})"), done.stderr
    assert workers.fingerprint(backups[0]) == before  # the state before the migration
    assert workers.fingerprint(db) == before  # rolled back
