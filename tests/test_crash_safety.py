"""SIGKILL at random moments: `migrate`, `rollback` and `backup` are all or nothing.

Each test times one uninterrupted run of the command (as a subprocess, start to exit), then
kills a fresh copy's run at 20 seeded random moments spread over that time, one in each
twentieth. After every kill the file passes `integrity_check` and holds exactly the state
before, exactly the state after, or (for `migrate`, which applies each migration in a
transaction of its own) exactly the state after migration 1 with 0002 pending -- compared by
fingerprints: counts and digests of rows, independent of random ids; the next run completes
and `verify` passes. Backups: nothing that looks like a finished backup is left unless it is one.
"""

from __future__ import annotations

import collections
import os
import stat
from pathlib import Path

import pytest
import workers
from cli_support import migrate_to_version_1
from click.testing import CliRunner
from legacy import make_legacy_db

from sessionorm.cli import cli
from sessionorm.commands import migrate

pytestmark = pytest.mark.slow

KILLS = 20
# The kill moments of one test in two interleaved halves, run as two tests: pytest-xdist runs
# them side by side, and together they are the 20 moments, one in each twentieth of the run.
HALVES = pytest.mark.parametrize("half", [0, 1], ids=["even-moments", "odd-moments"])
SESSIONS = 50_000  # half of them carry a legacy threadId: 25,000 threads and messages to create


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def legacy_file(folder: Path) -> Path:
    """A checkpointed 50,000-session legacy database (no -wal file): copy, never modify."""
    return make_legacy_db(folder / "legacy.db", SESSIONS, iterations=0)


@pytest.fixture(scope="module")
def migrated_file(folder: Path, legacy_file: Path) -> Path:
    """The same, migrated: copy, never modify."""
    path = folder / "migrated.db"
    workers.copy_database(legacy_file, path)
    migrate(path)
    return path


@pytest.fixture(scope="module")
def version_1_file(folder: Path, legacy_file: Path) -> Path:
    """The same with migration 1 applied and 0002 pending (as migrated before 0002 shipped)."""
    path = folder / "version-1.db"
    workers.copy_database(legacy_file, path)
    return migrate_to_version_1(path)


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output)


def classify(path: Path, states: dict[str, dict]) -> str:
    """Which of `states` the file is in; fails the test if it is in none of them."""
    found = workers.fingerprint(path)
    assert found["integrity"] == ["ok"]
    for name, expected in states.items():
        if found == expected:
            return name
    diffs = {name: workers.fingerprint_diff(found, expected) for name, expected in states.items()}
    pytest.fail(f"{path} is in no known state: {diffs}")


def fastest_run(source: Path, work: Path, *args: str) -> float:
    """The shorter of two uninterrupted runs, each on a fresh copy of `source`: on a busy machine
    one slow run would spread the kill moments past the end of the others (the two halves run
    side by side, beside other tests)."""
    times = []
    for _ in range(2):
        workers.copy_database(source, work)
        times.append(workers.timed_run(*args))
        clean_backups(work)
    return min(times)


def clean_backups(db: Path) -> None:
    finished, other = workers.backups_of(db)
    for path in finished + other:
        path.unlink()


def summary(label: str, seconds: float, outcomes: collections.Counter, extra: str = "") -> None:
    print(f"\n{label}: uninterrupted run {seconds:.2f} s; {KILLS} kills -> {dict(outcomes)} {extra}")


@HALVES
def test_killing_migrate_leaves_the_database_untouched_or_fully_migrated(
    folder, legacy_file, version_1_file, migrated_file, half
):
    work = folder / f"migrate-kill-{half}.db"
    states = {
        "untouched": workers.fingerprint(legacy_file),
        "migrated": workers.fingerprint(migrated_file),
        "at version 1": workers.fingerprint(version_1_file),
    }
    seconds = fastest_run(legacy_file, work, "migrate", "--db-path", str(work))
    assert classify(work, states) == "migrated"

    outcomes: collections.Counter = collections.Counter()
    for delay in workers.kill_moments(seconds, KILLS, seed=1)[half::2]:
        workers.copy_database(legacy_file, work)
        exit_code = workers.run_and_kill(("migrate", "--db-path", str(work)), delay)
        wal_frames = workers.file_size(Path(f"{work}-wal")) > 0
        state = classify(work, states)
        if exit_code is not None:
            assert exit_code == 0
            outcomes["finished before the kill"] += 1
        else:
            outcomes[f"killed, {state}" + (" (-wal had frames)" if wal_frames else "")] += 1
        invoke("migrate", "--db-path", str(work))
        assert workers.table_counts(work) == states["migrated"]["counts"]
        invoke("verify", "--db-path", str(work))
    summary(f"migrate, {SESSIONS} sessions", seconds, outcomes)
    assert sum(n for k, n in outcomes.items() if k.startswith("killed")) >= KILLS // 4


@HALVES
def test_killing_rollback_leaves_the_database_fully_migrated_or_fully_rolled_back(
    folder, version_1_file, half
):
    """Rolling back migration 1 (the one that drops tables), 0002 not applied."""
    migrated_file = version_1_file
    work = folder / f"rollback-kill-{half}.db"
    seconds = fastest_run(migrated_file, work, "rollback", "--db-path", str(work))
    states = {"migrated": workers.fingerprint(migrated_file), "rolled back": workers.fingerprint(work)}
    assert "threads" not in states["rolled back"]["tables"]
    clean_backups(work)

    outcomes: collections.Counter = collections.Counter()
    partials = 0
    for delay in workers.kill_moments(seconds, KILLS, seed=2)[half::2]:
        workers.copy_database(migrated_file, work)
        exit_code = workers.run_and_kill(("rollback", "--db-path", str(work)), delay)
        wal_frames = workers.file_size(Path(f"{work}-wal")) > 0
        state = classify(work, states)
        outcomes[
            "finished before the kill"
            if exit_code is not None
            else f"killed, {state}" + (" (-wal had frames)" if wal_frames else "")
        ] += 1
        finished, other = workers.backups_of(work)
        check_leftovers(finished, other, states["migrated"]["counts"])
        partials += len(other)
        clean_backups(work)
        if state == "migrated":  # the next rollback completes
            invoke("rollback", "--db-path", str(work))
            assert workers.table_counts(work) == states["rolled back"]["counts"]
            clean_backups(work)
    # and a rolled-back file migrates again and verifies
    invoke("migrate", "--db-path", str(work))
    invoke("verify", "--db-path", str(work))
    summary(f"rollback, {SESSIONS} sessions", seconds, outcomes, f"; partial backups left: {partials}")
    assert sum(n for k, n in outcomes.items() if k.startswith("killed")) >= KILLS // 4


def check_leftovers(finished: list[Path], other: list[Path], counts: dict[str, int]) -> None:
    """Anything named like a finished backup is one; anything else cannot be taken for one."""
    for path in finished:
        assert workers.integrity(path) == "ok", path
        assert workers.table_counts(path) == counts, path
    for path in other:
        assert path.name.startswith(".") and ".partial-" in path.name, path  # hidden, says partial


def test_killing_backup_leaves_no_file_that_looks_like_a_finished_backup(folder, migrated_file):
    work = folder / "backup-kill.db"
    workers.copy_database(migrated_file, work)
    counts = workers.table_counts(work)
    seconds = workers.timed_run("backup", "--db-path", str(work))
    finished, other = workers.backups_of(work)
    assert len(finished) == 1 and other == []
    clean_backups(work)

    outcomes: collections.Counter = collections.Counter()
    partials: list[int] = []
    for delay in workers.kill_moments(seconds, KILLS, seed=3):
        exit_code = workers.run_and_kill(("backup", "--db-path", str(work)), delay)
        finished, other = workers.backups_of(work)
        check_leftovers(finished, other, counts)
        if exit_code is not None:
            outcomes["finished before the kill"] += 1
        else:
            outcomes["killed, finished backup left" if finished else "killed, no finished backup"] += 1
        partials += [p.stat().st_size for p in other]
        clean_backups(work)
    assert workers.integrity(work) == "ok" and workers.table_counts(work) == counts
    summary(
        f"backup, {SESSIONS} sessions",
        seconds,
        outcomes,
        f"; hidden .partial files left: {len(partials)} (sizes {sorted(partials)})",
    )
    assert sum(n for k, n in outcomes.items() if k.startswith("killed")) >= KILLS // 2


def test_killing_migrate_with_backup_leaves_either_state_and_only_finished_backups(folder):
    legacy = make_legacy_db(folder / "legacy-10k.db", 10_000, iterations=0)
    migrated = folder / "migrated-10k.db"
    workers.copy_database(legacy, migrated)
    migrate(migrated)
    version_1 = folder / "version-1-10k.db"
    workers.copy_database(legacy, version_1)
    migrate_to_version_1(version_1)
    states = {
        "untouched": workers.fingerprint(legacy),
        "migrated": workers.fingerprint(migrated),
        "at version 1": workers.fingerprint(version_1),
    }
    legacy_counts = workers.table_counts(legacy)
    work = folder / "migrate-backup-kill.db"
    workers.copy_database(legacy, work)
    seconds = workers.timed_run("migrate", "--backup", "--db-path", str(work))
    clean_backups(work)

    outcomes: collections.Counter = collections.Counter()
    for delay in workers.kill_moments(seconds, KILLS, seed=4):
        workers.copy_database(legacy, work)
        exit_code = workers.run_and_kill(("migrate", "--backup", "--db-path", str(work)), delay)
        state = classify(work, states)
        finished, other = workers.backups_of(work)
        check_leftovers(finished, other, legacy_counts)  # a backup of the file before the migration
        outcomes[
            "finished before the kill"
            if exit_code is not None
            else f"killed, {state}, {len(finished)} finished backup(s)"
        ] += 1
        clean_backups(work)
        invoke("migrate", "--backup", "--db-path", str(work))
        invoke("verify", "--db-path", str(work))
        clean_backups(work)
    summary("migrate --backup, 10000 sessions", seconds, outcomes)


# -- backup file permissions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "mode"),
    [
        ("backup", 0o600),
        ("backup", 0o640),
        ("backup", 0o400),
        ("migrate --backup", 0o600),
        ("migrate --backup", 0o640),
        ("rollback", 0o600),
        ("rollback", 0o640),
    ],
)
def test_backups_get_the_permission_bits_of_the_database_never_wider(tmp_path, command, mode):
    path = make_legacy_db(tmp_path / "perm.db", 20)
    if command == "rollback":
        migrate(path)
    os.chmod(path, mode)
    old_umask = os.umask(0)  # the most permissive umask: the bits must come from the database
    try:
        result = CliRunner().invoke(cli, [*command.split(), "--db-path", str(path)])
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    finished, other = workers.backups_of(path)
    assert len(finished) == 1 and other == []
    assert stat.S_IMODE(finished[0].stat().st_mode) == mode
