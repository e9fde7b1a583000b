"""Concurrent writers in separate processes: no lost, duplicated or failed appends.

Each worker is a fresh interpreter (multiprocessing "spawn") with its own SessionStore, as
separate programs sharing one file would be; a barrier makes them start together.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
import workers

from sessionorm import SessionStore

pytestmark = pytest.mark.slow

APPENDERS = 8
MESSAGES_EACH = 500


def test_eight_processes_appending_to_one_thread_get_contiguous_idx_and_no_errors(db_path: Path):
    with SessionStore(db_path) as store:
        session = store.create_session(name="busy", amp_prompt="p", repo_root="/r")
        thread_id = store.create_thread(session.id, "shared").id
    results, start = workers.SPAWN.Queue(), workers.SPAWN.Barrier(APPENDERS)
    began = time.monotonic()
    procs = workers.start_processes(
        workers.append_messages,
        [(str(db_path), thread_id, MESSAGES_EACH, n, start, results) for n in range(APPENDERS)],
    )
    reports = workers.collect(results, APPENDERS, procs)
    seconds = time.monotonic() - began

    errors = [detail for _, status, detail in reports if status != "ok"]
    assert errors == []
    assert [p.exitcode for p in procs] == [0] * APPENDERS
    con = sqlite3.connect(db_path)
    try:
        idx = [
            r[0]
            for r in con.execute(
                'SELECT idx FROM thread_messages WHERE "threadId" = ? ORDER BY idx', (thread_id,)
            )
        ]
    finally:
        con.close()
    assert len(idx) == APPENDERS * MESSAGES_EACH
    assert idx == list(range(APPENDERS * MESSAGES_EACH))
    with SessionStore(db_path) as store:
        assert store.get_thread(thread_id).message_count == APPENDERS * MESSAGES_EACH
        messages = store.get_thread_messages(thread_id)
    # they really ran at the same time: the workers' messages interleave
    owners = [m.content.split(" message ")[0] for m in messages]
    switches = sum(a != b for a, b in zip(owners, owners[1:], strict=False))
    assert switches > 2 * APPENDERS  # one after another would be 7
    # each worker's own messages keep their order
    for n in range(APPENDERS):
        mine = [m.content for m in messages if m.content.startswith(f"worker {n} ")]
        assert mine == [f"worker {n} message {i}" for i in range(MESSAGES_EACH)]
    print(
        f"\n{APPENDERS} appenders x {MESSAGES_EACH}: {seconds:.1f} s, "
        f"slowest worker {max(d for _, _, d in reports):.1f} s, {switches} writer switches"
    )


WRITERS = 8
SESSIONS = 50
ROUNDS = 250


def test_listing_while_eight_processes_write_never_errors_and_never_goes_backwards(db_path: Path):
    with SessionStore(db_path) as store:
        session_ids = [
            store.create_session(name=f"s{i}", amp_prompt="p", repo_root="/r").id for i in range(SESSIONS)
        ]
    results, start, stop = workers.SPAWN.Queue(), workers.SPAWN.Barrier(WRITERS + 1), workers.SPAWN.Event()
    began = time.monotonic()
    lister = workers.start_processes(
        workers.list_until_stopped, [(str(db_path), session_ids, start, stop, results)]
    )
    writers = workers.start_processes(
        workers.write_threads_and_messages,
        [(str(db_path), session_ids, ROUNDS, n, start, results) for n in range(WRITERS)],
    )
    reports = workers.collect(results, WRITERS, writers)
    stop.set()
    reports += workers.collect(results, 1, lister)
    seconds = time.monotonic() - began

    errors = [(who, detail) for who, status, detail in reports if status != "ok"]
    assert errors == []
    listing = next(detail for who, _, detail in reports if who == "lister")
    assert listing["errors"] == []
    assert listing["backwards"] == []
    assert listing["passes"] >= 3  # it really listed while the writers wrote
    created = sum(d[0] for who, _, d in reports if who.startswith("writer"))
    written = sum(d[1] for who, _, d in reports if who.startswith("writer"))
    # its last pass, after every writer finished, saw everything
    assert (listing["threads"], listing["messages"]) == (created, written)
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("SELECT count(*) FROM threads").fetchone()[0] == created
        assert con.execute("SELECT count(*) FROM thread_messages").fetchone()[0] == written
        gaps = con.execute(
            'SELECT "threadId" FROM thread_messages GROUP BY "threadId"'
            " HAVING min(idx) != 0 OR max(idx) != count(*) - 1 OR count(DISTINCT idx) != count(*)"
        ).fetchall()
        assert gaps == []
    finally:
        con.close()
    print(
        f"\n{WRITERS} writers + 1 lister over {SESSIONS} sessions: {created} threads, "
        f"{written} messages, {listing['passes']} listing passes, {seconds:.1f} s"
    )


def test_backup_under_load_holds_every_message_committed_before_it_started(db_path: Path):
    with SessionStore(db_path) as store:
        session = store.create_session(name="loaded", amp_prompt="p", repo_root="/r")
        thread_id = store.create_thread(session.id, "appended to").id
        # a few MB, so that a backup takes long enough to overlap many appends
        store.add_thread_messages(thread_id, [("user", "seed " + "y" * 1000)] * 5000)
    results, started, stop = workers.SPAWN.Queue(), workers.SPAWN.Event(), workers.SPAWN.Event()
    procs = workers.start_processes(
        workers.keep_appending, [(str(db_path), thread_id, started, stop, results)]
    )
    checked = []
    try:
        assert started.wait(60)
        for _ in range(3):
            con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
            try:  # every message up to here is committed: each append is its own transaction
                committed = con.execute("SELECT count(*) FROM thread_messages").fetchone()[0]
            finally:
                con.close()
            done = workers.run_cli("backup", "--db-path", str(db_path))
            assert done.returncode == 0, done.stderr
            backup = Path(done.stdout.strip().removeprefix("backup: "))
            assert workers.integrity(backup) == "ok"
            bcon = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
            try:
                count, low, high = bcon.execute(
                    "SELECT count(*), min(idx), max(idx) FROM thread_messages"
                ).fetchone()
            finally:
                bcon.close()
            assert count >= committed
            assert (low, high) == (0, count - 1)  # a consistent snapshot: no gap, no torn batch
            assert workers.run_cli("verify", "--db-path", str(backup)).returncode == 0
            checked.append((committed, count))
    finally:
        stop.set()
        reports = workers.collect(results, 1, procs)
    assert [status for _, status, _ in reports] == ["ok"], reports
    appended = reports[0][2]
    with SessionStore(db_path) as store:
        total = store.get_thread(thread_id).message_count
    assert total == 5000 + appended
    assert total > max(count for _, count in checked)  # the appender kept going past the backups
    names = sorted(p.name for p in workers.backups_of(db_path)[0])
    assert len(names) == 3
    print(f"\nbackups under load: (committed before, in backup) = {checked}; appended {appended}")
