"""A damaged file (truncated, as `head -c` leaves it): `verify` answers with exit 1 and the
damage as problems; every other command fails in one line naming the file, exit 2; the
Python API raises `DatabaseDamagedError`. Nothing is written: not a byte, not a sidecar."""

from __future__ import annotations

import hashlib
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
        thread = store.create_thread(session, "t")
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
