"""A legacy orchestrator database of the `pre` flavour, fast enough for a million sessions.

A compact copy of the orchestrator's `make_legacy_db.py --flavor pre` (the benchmarks must not
depend on files outside the repository at run time): the same `sessions` layout, including
`contextIncluded` appended by `ALTER TABLE`, the other legacy tables (left empty), rows of
similar size, a `fraction` of sessions with a legacy threadId (`T-<uuid>`) and the rest with
NULL or ''. Rows go in with one `executemany` per chunk inside a single transaction; the file
is left in WAL mode, as the orchestrator leaves it.

    python bench/legacy_gen.py DB N [--fraction 0.5] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import sys
import uuid

SESSIONS_DDL = """
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  ampPrompt TEXT NOT NULL,
  followUpPrompts TEXT,
  repoRoot TEXT NOT NULL,
  baseBranch TEXT NOT NULL,
  branchName TEXT NOT NULL,
  worktreePath TEXT NOT NULL,
  status TEXT NOT NULL,
  scriptCommand TEXT,
  modelOverride TEXT,
  threadId TEXT,
  createdAt TEXT NOT NULL,
  lastRun TEXT,
  notes TEXT
);
ALTER TABLE sessions ADD COLUMN contextIncluded BOOLEAN;
"""

# The other legacy tables, abridged to the columns that matter (foreign keys to sessions).
OTHER_DDL = """
CREATE TABLE iterations (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, startTime TEXT NOT NULL, endTime TEXT,
  commitSha TEXT, changedFiles INTEGER NOT NULL DEFAULT 0, testResult TEXT, output TEXT,
  FOREIGN KEY(sessionId) REFERENCES sessions(id));
CREATE TABLE tool_calls (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, iterationId TEXT NOT NULL,
  timestamp TEXT NOT NULL, toolName TEXT NOT NULL, argsJson TEXT NOT NULL,
  success BOOLEAN NOT NULL, durationMs INTEGER, rawJson TEXT,
  FOREIGN KEY(sessionId) REFERENCES sessions(id),
  FOREIGN KEY(iterationId) REFERENCES iterations(id));
CREATE TABLE merge_history (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, startedAt TEXT NOT NULL, finishedAt TEXT,
  baseBranch TEXT NOT NULL, mode TEXT NOT NULL, result TEXT NOT NULL, conflictFiles TEXT,
  squashMessage TEXT, FOREIGN KEY(sessionId) REFERENCES sessions(id));
CREATE TABLE stream_events (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, type TEXT NOT NULL, timestamp TEXT NOT NULL,
  data TEXT NOT NULL, FOREIGN KEY(sessionId) REFERENCES sessions(id));
"""

COLUMNS = (
    "id",
    "name",
    "ampPrompt",
    "followUpPrompts",
    "repoRoot",
    "baseBranch",
    "branchName",
    "worktreePath",
    "status",
    "scriptCommand",
    "modelOverride",
    "threadId",
    "createdAt",
    "lastRun",
    "notes",
    "contextIncluded",
)
INSERT = f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
STATUSES = ("idle", "idle", "idle", "done", "error", "awaiting-input")
BASE = dt.datetime(2025, 8, 1, tzinfo=dt.UTC)
CHUNK = 50_000


def iso(t: dt.datetime) -> str:
    """JavaScript's toISOString(): 2025-08-24T12:34:56.789Z."""
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def rows(n: int, fraction: float, seed: int):
    """The session rows, deterministic for a seed."""
    rnd = random.Random(seed)
    threaded = set(rnd.sample(range(n), round(n * fraction)))
    getrandbits = rnd.getrandbits
    for i in range(n):
        sid = str(uuid.UUID(int=getrandbits(128), version=4))
        created = BASE + dt.timedelta(minutes=7 * i, milliseconds=rnd.randrange(1000))
        stamp = iso(created)
        name = f"Session {i:05d}" + (" (ünïcødé 'quote')" if i % 97 == 0 else "")
        repo = f"/tmp/repos/repo-{i % 13}"
        if i in threaded:
            thread_id = "T-" + str(uuid.UUID(int=getrandbits(128), version=4))
        else:
            thread_id = None if i % 2 == 0 else ""
        yield (
            sid,
            name,
            f"Do task number {i}",
            f'["follow-up {i}"]' if i % 5 == 0 else None,
            repo,
            "main",
            f"amp/session-{i:05d}/{stamp[:19].replace(':', '-')}",
            f"{repo}/.worktrees/{sid}",
            STATUSES[i % 6],
            "pnpm test" if i % 4 == 0 else None,
            "gpt-5" if i % 10 == 0 else None,
            thread_id,
            stamp,
            iso(created + dt.timedelta(minutes=3)) if i % 3 else None,
            None,
            i % 2,
        )


def make_legacy_db(path: str, n: int, fraction: float = 0.5, seed: int = 1) -> None:
    """Write a fresh `pre`-flavour legacy database with `n` sessions to `path`."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = OFF")
        con.executescript(SESSIONS_DDL + OTHER_DDL)
        con.execute("BEGIN")
        chunk = []
        for row in rows(n, fraction, seed):
            chunk.append(row)
            if len(chunk) == CHUNK:
                con.executemany(INSERT, chunk)
                chunk.clear()
        if chunk:
            con.executemany(INSERT, chunk)
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db")
    ap.add_argument("n", type=int)
    ap.add_argument("--fraction", type=float, default=0.5, help="fraction of sessions with a threadId")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    make_legacy_db(args.db, args.n, args.fraction, args.seed)
    print(f"created {args.db}: {args.n} sessions, {round(args.n * args.fraction)} with a threadId")
    return 0


if __name__ == "__main__":
    sys.exit(main())
