"""Helpers for the reliability tests: functions run in child processes, and fingerprints.

Child-process functions are started with multiprocessing's "spawn" context (a fresh
interpreter, as another program would be), so they take only picklable arguments and
report back through a queue: `(who, "ok" | "error", detail)`. Every one of them catches
everything and reports it, so a test can assert "zero exceptions in any worker".

Tests import it as `import workers` (pytest puts tests/ on sys.path; spawn passes that on).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sessionorm import SessionStore

SPAWN = multiprocessing.get_context("spawn")
ROLES = ("user", "assistant", "system")


@contextlib.contextmanager
def report_errors(who: str, results: Any) -> Iterator[dict]:
    """Put `(who, "ok", box["value"])` on `results`, or `(who, "error", traceback)`."""
    box: dict = {}
    try:
        yield box
    except BaseException:  # everything goes back to the parent, which asserts on it
        results.put((who, "error", traceback.format_exc()))
    else:
        results.put((who, "ok", box.get("value")))


# -- concurrency ------------------------------------------------------------------------------


def append_messages(path: str, thread_id: str, n: int, worker: int, start: Any, results: Any) -> None:
    """Open a store, wait for every worker, then append `n` messages one transaction each."""
    with report_errors(f"appender {worker}", results) as box:
        with SessionStore(path) as store:
            start.wait(60)
            began = time.monotonic()
            for i in range(n):
                store.add_thread_message(thread_id, ROLES[i % 2], f"worker {worker} message {i}")
            box["value"] = time.monotonic() - began


def agent_add_items(db: str, key: str, n: int, worker: int, start: Any, results: Any) -> None:
    """Open an agent session (`SessionormSession`), wait for every worker, then add `n` items,
    one `add_items` call each."""
    import asyncio

    from sessionorm.agents import SessionormSession

    async def add_all(session: SessionormSession) -> None:
        for i in range(n):
            await session.add_items([{"role": "user", "content": f"worker {worker} item {i}"}])

    with report_errors(f"agent writer {worker}", results):
        with SessionormSession(key, db) as session:
            start.wait(60)
            asyncio.run(add_all(session))


def write_threads_and_messages(
    path: str, session_ids: list[str], rounds: int, worker: int, start: Any, results: Any
) -> None:
    """Create threads across the sessions and append single messages and batches to them."""
    with report_errors(f"writer {worker}", results) as box:
        rnd = random.Random(worker)
        threads: list[str] = []
        created = messages = 0
        with SessionStore(path) as store:
            start.wait(60)
            for r in range(rounds):
                if not threads or rnd.random() < 0.25:
                    threads.append(store.create_thread(rnd.choice(session_ids), f"w{worker} r{r}").id)
                    created += 1
                thread = rnd.choice(threads)
                if rnd.random() < 0.5:
                    store.add_thread_message(thread, rnd.choice(ROLES), f"w{worker} r{r}")
                    messages += 1
                else:
                    k = rnd.randint(1, 4)
                    store.add_thread_messages(thread, [("user", f"w{worker} r{r} {j}") for j in range(k)])
                    messages += k
        box["value"] = (created, messages)


def list_until_stopped(path: str, session_ids: list[str], start: Any, stop: Any, results: Any) -> None:
    """List every session's threads over and over until `stop`, then once more.

    Reports how many passes it made, every listing error and every time a session's
    thread count, its message total or one thread's message_count went backwards.
    """
    with report_errors("lister", results) as box:
        seen_session: dict[str, tuple[int, int]] = {sid: (0, 0) for sid in session_ids}
        seen_thread: dict[str, int] = {}
        errors: list[str] = []
        backwards: list[str] = []
        passes = 0
        with SessionStore(path) as store:
            start.wait(60)
            while True:
                last = stop.is_set()
                for sid in session_ids:
                    try:
                        threads = store.get_session_threads(sid)
                    except Exception as exc:  # counted, and listing goes on
                        errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    counts = (len(threads), sum(t.message_count for t in threads))
                    if counts[0] < seen_session[sid][0] or counts[1] < seen_session[sid][1]:
                        backwards.append(f"session {sid}: {seen_session[sid]} -> {counts}")
                    seen_session[sid] = counts
                    for t in threads:
                        if t.message_count < seen_thread.get(t.id, 0):
                            backwards.append(f"thread {t.id}: {seen_thread[t.id]} -> {t.message_count}")
                        seen_thread[t.id] = t.message_count
                passes += 1
                if last:
                    break
        box["value"] = {
            "passes": passes,
            "errors": errors,
            "backwards": backwards,
            "threads": sum(c[0] for c in seen_session.values()),
            "messages": sum(c[1] for c in seen_session.values()),
        }


def keep_appending(path: str, thread_id: str, started: Any, stop: Any, results: Any) -> None:
    """Append ~1 KB messages, one commit each, until `stop`; report how many."""
    with report_errors("appender", results) as box:
        n = 0
        with SessionStore(path) as store:
            while not stop.is_set():
                store.add_thread_message(thread_id, "user", f"{n:08d} " + "x" * 1000)
                n += 1
                if n == 50:
                    started.set()
        box["value"] = n


def hold_write_lock(path: str, sql: str, params: tuple, locked: Any, release: Any, results: Any) -> None:
    """BEGIN IMMEDIATE and one write, held until `release`; then ROLLBACK."""
    with report_errors("holder", results):
        con = sqlite3.connect(path, isolation_level=None, timeout=10)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute(sql, params)
            locked.set()
            if not release.wait(120):
                raise TimeoutError("never told to release the lock")
            con.execute("ROLLBACK")
        finally:
            con.close()


def start_processes(target: Any, argument_lists: list[tuple]) -> list[Any]:
    procs = [SPAWN.Process(target=target, args=args) for args in argument_lists]
    for proc in procs:
        proc.start()
    return procs


def collect(results: Any, n: int, procs: list[Any], timeout: float = 120) -> list[tuple]:
    """`n` reports from the queue, then join the processes (a dead worker fails loudly)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"only {len(out)} of {n} workers reported: {out}")
        try:
            out.append(results.get(timeout=min(remaining, 1.0)))
        except Exception:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(
                    f"worker died without reporting: exit codes "
                    f"{[p.exitcode for p in dead]}; reports so far: {out}"
                ) from None
    for proc in procs:
        proc.join(30)
    return out


# -- command-line runs and kills --------------------------------------------------------------


def cli_command(*args: str) -> list[str]:
    """`python -m sessionorm ARGS` with this interpreter (what an installed `sessionorm` runs)."""
    return [sys.executable, "-m", "sessionorm", *args]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def timed_run(*args: str) -> float:
    """Seconds an uninterrupted `sessionorm ARGS` takes, from start to exit."""
    began = time.monotonic()
    done = run_cli(*args)
    seconds = time.monotonic() - began
    if done.returncode != 0:
        raise RuntimeError(f"sessionorm {' '.join(args)} failed: {done.stderr}")
    return seconds


def kill_moments(seconds: float, n: int, seed: int) -> list[float]:
    """`n` seeded random delays, one in each n-th of [0, seconds) so they cover the whole run."""
    rnd = random.Random(seed)
    return [seconds * (i + rnd.random()) / n for i in range(n)]


def run_and_kill(args: tuple[str, ...], delay: float) -> int | None:
    """Start `sessionorm ARGS`, SIGKILL it after `delay` s; return its exit code if it finished first."""
    proc = subprocess.Popen(
        cli_command(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        proc.wait(delay)
        return proc.returncode
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return None


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def remove_sidecars(path: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_database(src: Path, dest: Path) -> None:
    """A byte copy of a checkpointed file (no -wal), replacing `dest` and its leftovers."""
    if Path(f"{src}-wal").exists() and file_size(Path(f"{src}-wal")) > 0:
        raise RuntimeError(f"{src} has a -wal file; checkpoint it before copying")
    remove_sidecars(dest)
    dest.write_bytes(src.read_bytes())


def backup_pattern(db: Path) -> re.Pattern:
    """Names of finished backups: `<db>.backup-YYYY-MM-DD-HHMMSS(-N)?`."""
    return re.compile(re.escape(db.name) + r"\.backup-\d{4}-\d{2}-\d{2}-\d{6}(-\d+)?")


def backups_of(db: Path) -> tuple[list[Path], list[Path]]:
    """(finished-looking backups, other files whose name mentions a backup of `db`)."""
    pattern = backup_pattern(db)
    finished, other = [], []
    for path in sorted(db.parent.iterdir()):
        if pattern.fullmatch(path.name):
            finished.append(path)
        elif ".backup-" in path.name and db.name in path.name:
            other.append(path)
    return finished, other


# -- fingerprints -----------------------------------------------------------------------------


def _digest(con: sqlite3.Connection, columns: list[str], source: str) -> str:
    """sha256 of the rows of `source` (a query), concatenated by SQLite itself (fast)."""
    row = " || ',' || ".join(f"quote({c})" for c in columns)
    text = con.execute(f"SELECT group_concat({row}, char(10)) FROM ({source})").fetchone()[0]
    return hashlib.sha256((text or "").encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(path: Path) -> dict[str, Any]:
    """What a database holds, independent of random ids and timestamps of the run.

    Opens the file read-write, as the next program would, so a hot WAL left by a killed
    process is recovered first. Cheap: counts and digests, not a dump.
    """
    con = sqlite3.connect(path, isolation_level=None)
    try:
        schema = con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        tables = sorted(r[1] for r in schema if r[0] == "table" and not r[1].startswith("sqlite_"))
        session_columns = [f'"{r[1]}"' for r in con.execute("PRAGMA table_info(sessions)")]
        fp: dict[str, Any] = {
            "integrity": [r[0] for r in con.execute("PRAGMA integrity_check")],
            "schema": hashlib.sha256(repr(schema).encode()).hexdigest(),
            "tables": tables,
            # the search index is built in batches after the migrations commit (a killed build
            # resumes): how far it got is no state of its own, only that it is consistent
            "counts": {
                t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                for t in tables
                if not t.startswith("sessionorm_search")
            },
            "sessions": _digest(con, session_columns, "SELECT * FROM sessions ORDER BY rowid"),
        }
        if "threads" in tables:
            fp["threads"] = _digest(
                con,
                ['"sessionId"', "name", '"createdAt"', '"updatedAt"', "status"],
                'SELECT * FROM threads ORDER BY "sessionId", name',
            )
        if "thread_messages" in tables and "threads" in tables:
            fp["messages"] = _digest(
                con,
                ['"sessionId"', "role", "content", '"createdAt"', "idx"],
                'SELECT t."sessionId", m.role, m.content, m."createdAt", m.idx FROM thread_messages m'
                ' JOIN threads t ON t.id = m."threadId" ORDER BY t."sessionId", m.idx',
            )
        if "migrations" in tables:
            fp["migrations"] = con.execute("SELECT version, name FROM migrations ORDER BY version").fetchall()
        if "sessionorm_search_keys" in tables:
            fp["search index consistent"] = (
                con.execute(
                    "SELECT (SELECT count(*) FROM sessionorm_search_keys)"
                    " = (SELECT count(*) FROM sessionorm_search_docsize)"
                ).fetchone()[0]
                == 1
            )
        return fp
    finally:
        con.close()


def fingerprint_diff(a: dict, b: dict) -> list[str]:
    return [
        f"{key}: {a.get(key)!r} != {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def integrity(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "; ".join(r[0] for r in con.execute("PRAGMA integrity_check"))
    finally:
        con.close()


# FTS5's segment tables: how many rows they have depends on how the index was built (in
# which batches), not on what it holds; compared by what it holds (keys, docsize) instead.
FTS_SEGMENTS = ("sessionorm_search_data", "sessionorm_search_idx")


def table_counts(path: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            if not r[0].startswith("sessionorm_search")  # built after the migrations; see fingerprint
        ]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()
