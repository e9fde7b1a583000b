"""The floor of `bench/verify_floor.py` (one hand-written statement doing verify's data checks)
finds what `verify` finds on a damaged database, on both engines: a benchmark against a floor
that checked less would flatter verify."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

import pytest
from cli_support import REPO_ROOT
from legacy import make_legacy_db
from pg_support import pg_database

from sessionorm import commands, copy

sys.path.insert(0, str(REPO_ROOT / "bench"))
import verify_floor  # noqa: E402

# verify's words for each count of the floor
WORDS = {
    "lost": r"(\d+) migrated threads are gone",
    "twice": r"(\d+) sessions have more than one migrated thread",
    "app_duplicates": r"(\d+) sessions have the orchestrator app's own",
    "late": r"(\d+) sessions carry a threadId and have no thread",
    "bare": r"(\d+) threads have an id without `T-`",
    "orphans threads.sessionId": r"(\d+) rows of threads reference missing sessions",
}


def damage(con, marker: str) -> None:
    """One of each: a lost thread, a session migrated twice, the app's duplicate, a late
    session, a thread without `T-`, and an orphan thread (foreign keys off); `marker` is the
    driver's parameter marker."""
    p = marker

    def one(sql: str, params: tuple = ()) -> tuple:
        return con.execute(sql.replace("?", p), params).fetchone()

    def run(sql: str, params: tuple = ()) -> None:
        con.execute(sql.replace("?", p), params)

    cols = [c for c in thread_columns(con, p)]
    names = ", ".join(f'"{c}"' for c in cols)

    def add_thread(new_id: str, session: str, name: str, like: str) -> None:
        values = ", ".join({"id": "?", "sessionId": "?", "name": "?"}.get(c, f'"{c}"') for c in cols)
        run(
            f"INSERT INTO threads ({names}) SELECT {values} FROM threads WHERE id = ?",
            (new_id, session, name, like),
        )

    recorded = con.execute(
        'SELECT "threadId", "sessionId", "legacyThreadId" FROM sessionorm_migrated_threads'
        ' ORDER BY "threadId"'
    ).fetchall()
    (gone, _, _), (kept, kept_session, legacy), (other, other_session, _) = recorded[:3]
    run('DELETE FROM thread_messages WHERE "threadId" = ?', (gone,))  # lost, as the cascade would
    run("DELETE FROM threads WHERE id = ?", (gone,))
    add_thread("T-twice", other_session, "again", other)  # migrated twice: a second recorded thread
    run(
        'INSERT INTO sessionorm_migrated_threads ("markerId", "threadId", "sessionId", "legacyThreadId",'
        ' "recordedAt") VALUES (?, ?, ?, ?, ?)',
        ("marker-twice", "T-twice", other_session, "legacy-twice", "2026-01-01T00:00:00Z"),
    )
    add_thread("T-app", kept_session, f"Thread {legacy}", kept)  # the app's own duplicate
    add_thread("bare-id", kept_session, "bare", kept)  # no `T-`
    (late,) = one(
        "SELECT min(s.id) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM sessionorm_migrated_threads r"
        ' WHERE r."sessionId" = s.id)'
    )
    run('UPDATE sessions SET "threadId" = ? WHERE id = ?', ("late-thread", late))
    add_thread("T-orphan", "no-such-session", "orphan", kept)


def thread_columns(con, p: str) -> list[str]:
    if p == "?":
        return [r[1] for r in con.execute("PRAGMA table_info(threads)")]
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = 'threads' ORDER BY ordinal_position"
        )
    ]


def said(report) -> dict[str, int]:
    """verify's problems and notes, as counts by the floor's names."""
    found: dict[str, int] = {}
    for line in report.problems + report.notes:
        if re.match(r"foreign_key_check: threads rowid \d+ references missing sessions", line):
            found["orphans threads.sessionId"] = (
                found.get("orphans threads.sessionId", 0) + 1
            )  # SQLite: a line a row
        for name, words in WORDS.items():
            match = re.search(words, line)
            if match:
                found[name] = int(match.group(1))
    return found


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


EXPECTED = {
    "lost": 1,
    "twice": 1,
    "app_duplicates": 1,
    "late": 1,
    "bare": 1,
    "orphans threads.sessionId": 1,
}


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    path = make_legacy_db(tmp_path / "store.db", 40)
    commands.migrate(path)
    return path


def test_the_sqlite_floor_finds_what_verify_finds(migrated):
    con = sqlite3.connect(migrated, isolation_level=None)
    con.execute("PRAGMA foreign_keys = OFF")
    damage(con, "?")
    con.close()
    report = commands.verify(migrated)
    con = sqlite3.connect(f"file:{migrated}?mode=ro", uri=True)
    try:
        floor = verify_floor.floor(con, postgres=False)
    finally:
        con.close()
    assert said(report) == EXPECTED
    assert nonzero(floor) == EXPECTED


def test_the_postgres_floor_finds_what_verify_finds(migrated):
    import psycopg

    with pg_database("postgresql") as server:
        copy(migrated, server.target)
        with psycopg.connect(server.target, autocommit=True) as con:
            con.execute("SET session_replication_role = replica")  # foreign keys off, for the orphan
            damage(con, "%s")
        report = commands.verify(server.target)
        with psycopg.connect(server.target, autocommit=True) as con:
            floor = verify_floor.floor(con, postgres=True)
    assert said(report) == EXPECTED
    assert nonzero(floor) == EXPECTED


def test_the_floor_finds_nothing_on_a_sound_database(migrated):
    con = sqlite3.connect(f"file:{migrated}?mode=ro", uri=True)
    try:
        assert nonzero(verify_floor.floor(con, postgres=False)) == {}
    finally:
        con.close()
    assert commands.verify(migrated).problems == []
