"""What the SQLite cases share: their sizes, the raw side's SQL and connection, database files."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import legacy_gen
from harness import log

from sessionorm import SessionStore


@dataclass
class Config:
    """Sizes and repetitions of one mode."""

    quick: bool
    runs: int  # alternating pairs for the in-process benchmarks
    migrate_runs: int  # alternating pairs of whole migrate processes
    migrate_sessions: int  # the timed size (also the large RSS size)
    rss_small_sessions: int  # the small size for the peak-memory comparison
    single_messages: int = 2000  # add_thread_message calls per run
    batch_size: int = 1000  # add_thread_messages batch
    batches: int = 10  # batches per run
    thread_messages: int = 10_000
    reads_per_run: int = 5  # get_thread_messages(all) calls per run
    last_n: int = 50
    last_reads_per_run: int = 300
    threads: int = 1000
    messages_per_thread: int = 100
    session_reads_per_run: int = 10
    opens_per_run: int = 20
    floor_pragmas: str = "mirror"  # mirror sessionorm's bulk pragmas, or "best", or "none"
    floor_cache_mb: int = 0
    floor_temp_store: str = "default"
    floor_foreign_keys: bool = False
    profile: bool = False


# What every connection sets (docs/architecture.md); the raw side uses the same.
RAW_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
)

MESSAGE_COLUMNS = "id, threadId, role, content, createdAt, idx"
RAW_SQL = {
    "next_idx": "SELECT coalesce(max(idx), -1) + 1 FROM thread_messages WHERE threadId = ?",
    "insert": f"INSERT INTO thread_messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
    "touch": "UPDATE threads SET updatedAt = ? WHERE id = ?",
    "messages": f"SELECT {MESSAGE_COLUMNS} FROM thread_messages WHERE threadId = ? ORDER BY idx",
    "last": f"SELECT {MESSAGE_COLUMNS} FROM thread_messages WHERE threadId = ? ORDER BY idx DESC LIMIT ?",
    "session_threads": "SELECT t.id, t.sessionId, t.name, t.createdAt, t.updatedAt, t.status,"
    " (SELECT count(*) FROM thread_messages m WHERE m.threadId = t.id)"
    " FROM threads t WHERE t.sessionId = ? ORDER BY t.updatedAt DESC",
}


def raw_connect(path: Path) -> sqlite3.Connection:
    """A hand-written connection with the contract's pragmas (autocommit, explicit BEGIN)."""
    con = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
    for pragma in RAW_PRAGMAS:
        con.execute(pragma)
    return con


def copy_db(src: Path, dest: Path) -> Path:
    """A fresh copy of a closed (checkpointed) database file."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{dest}{suffix}")
    shutil.copyfile(src, dest)
    return dest


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def legacy_db(workdir: Path, sessions: int) -> Path:
    """The legacy file with `sessions` sessions, generated once per workdir."""
    path = workdir / f"legacy-{sessions}.db"
    marker = workdir / f"legacy-{sessions}.ok"
    if not (path.exists() and marker.exists()):
        log(f"generating legacy database: {sessions:,} sessions …")
        start = time.perf_counter()
        legacy_gen.make_legacy_db(str(path), sessions)
        marker.write_text("ok")
        log(f"  done in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 2**20:.0f} MB)")
    return path


def make_template(workdir: Path) -> tuple[Path, str, str]:
    """An up-to-date database with one session and one empty thread."""
    path = workdir / "template.db"
    remove_db(path)
    with SessionStore(path) as store:
        session = store.create_session(name="bench", amp_prompt="benchmark", repo_root="/tmp/r")
        thread_id = store.create_thread(session.id, "bench thread").id
    return path, session.id, thread_id
