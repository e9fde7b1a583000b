"""Build legacy orchestrator databases (before the session-thread migration) for tests.

`make_legacy_db(path, n)` writes a file of either layout from `legacy_schema.sql` with
deterministic rows, in the shape the TypeScript orchestrator leaves behind: camelCase
columns, JavaScript ISO timestamps (`2025-08-01T00:07:00.123Z`), lowercase v4 UUID ids,
WAL mode. Session i (0-based) carries a legacy threadId when i < `threaded`; the others
alternate NULL (even i) and '' (odd i), which both mean "no thread".

Tests import it as `from legacy import make_legacy_db` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import sqlite3
import uuid
from pathlib import Path

SCHEMA_FILE = Path(__file__).with_name("legacy_schema.sql")
FLAVOURS = {
    "pre": ("sessions-pre", "common"),
    "final": ("sessions-final", "common", "final-extra"),
}
BASE_TIME = dt.datetime(2025, 8, 1, tzinfo=dt.UTC)
STATUSES = ("idle", "idle", "done", "error", "awaiting-input")


def legacy_ddl(flavor: str = "pre") -> str:
    """The DDL script of one legacy layout, `pre` or `final`."""
    sections = dict(
        re.findall(r"^-- section: (\S+)\n(.*?)(?=^-- section: |\Z)", SCHEMA_FILE.read_text(), re.S | re.M)
    )
    return "\n".join(sections[name] for name in FLAVOURS[flavor])


def iso(value: dt.datetime) -> str:
    """JavaScript's Date.prototype.toISOString()."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def make_legacy_db(
    path: str | Path,
    n: int = 10,
    *,
    flavor: str = "pre",
    threaded: int | None = None,
    duplicates: int = 0,
    iterations: int = 0,
    wal: bool = True,
    seed: int = 1,
) -> Path:
    """Write a legacy database of `n` sessions at `path` and return the path.

    threaded:   how many sessions carry a threadId (default: half of them, rounded down);
    duplicates: how many of those reuse the threadId of session 0 (sessions sharing one);
    iterations: rows per session in `iterations`, each with one `tool_calls` row — children
                that reference sessions(id) without ON DELETE CASCADE;
    wal:        leave the file in WAL mode (as the orchestrator does) or rollback-journal mode.
    """
    threaded = n // 2 if threaded is None else threaded
    if not 0 <= threaded <= n or not 0 <= duplicates < max(threaded, 1):
        raise ValueError("need 0 <= threaded <= n and 0 <= duplicates < threaded")
    path = Path(path)
    rnd = random.Random(seed)

    def uid() -> str:
        return str(uuid.UUID(int=rnd.getrandbits(128), version=4))

    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA foreign_keys = ON")
        if wal:
            con.execute("PRAGMA journal_mode = WAL")
        con.executescript(legacy_ddl(flavor))
        con.execute("BEGIN")
        first_thread = None
        for i in range(n):
            sid = uid()
            created = BASE_TIME + dt.timedelta(minutes=7 * i, milliseconds=rnd.randrange(1000))
            if i < threaded:
                thread_id = "T-" + uid()
                first_thread = first_thread or thread_id
                if i >= threaded - duplicates:
                    thread_id = first_thread
            else:
                thread_id = None if i % 2 == 0 else ""
            repo = f"/tmp/repos/repo-{i % 3}"
            row = {
                "id": sid,
                "name": f"Session {i:03d}",
                "ampPrompt": f"Do task number {i}",
                "followUpPrompts": json.dumps([f"follow-up {i}"]) if i % 5 == 0 else None,
                "repoRoot": repo,
                "baseBranch": "main",
                "branchName": f"amp/session-{i:03d}/{created:%Y-%m-%dT%H-%M-%S}",
                "worktreePath": f"{repo}/.worktrees/{sid}",
                "status": STATUSES[i % len(STATUSES)],
                "scriptCommand": "pnpm test" if i % 4 == 0 else None,
                "modelOverride": None,
                "threadId": thread_id,
                "createdAt": iso(created),
                "lastRun": iso(created + dt.timedelta(minutes=3)) if i % 3 else None,
                "notes": None,
                "contextIncluded": i % 2,
            }
            if flavor == "final":
                row.update(
                    mode="interactive" if i % 6 == 0 else "async",
                    autoCommit=None if i % 4 else 0,
                    ampMode="production",
                )
            con.execute(
                f"INSERT INTO sessions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            for k in range(iterations):
                iteration_id, start = uid(), created + dt.timedelta(minutes=1 + k)
                con.execute(
                    "INSERT INTO iterations (id, sessionId, startTime, endTime, changedFiles, testResult)"
                    " VALUES (?, ?, ?, ?, ?, 'pass')",
                    (iteration_id, sid, iso(start), iso(start + dt.timedelta(seconds=40)), k + 1),
                )
                con.execute(
                    "INSERT INTO tool_calls (id, sessionId, iterationId, timestamp, toolName, argsJson,"
                    " success) VALUES (?, ?, ?, ?, 'edit_file', '{}', 1)",
                    (uid(), sid, iteration_id, iso(start + dt.timedelta(seconds=5))),
                )
        con.execute("COMMIT")
    finally:
        con.close()
    return path
