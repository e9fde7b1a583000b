"""Progress of long SQL statements, reported from SQLite's progress handler."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import peewee

Progress = Callable[[str], None] | None  # receives one-line progress messages

INSTRUCTIONS = 1_000_000  # between checks of the clock: negligible next to the work


@contextlib.contextmanager
def reporting(db: peewee.Database, report: Callable[[float], None] | None,
              every: float = 1.0) -> Iterator[None]:
    """Call `report(elapsed_seconds)` about every `every` seconds while `db` works."""
    if report is None or not isinstance(db, peewee.SqliteDatabase):
        yield
        return
    start = time.monotonic()
    due = [start + every]

    def tick() -> int:
        now = time.monotonic()
        if now >= due[0]:
            due[0] = now + every
            report(now - start)
        return 0  # 0 = carry on

    conn = db.connection()
    conn.set_progress_handler(tick, INSTRUCTIONS)
    try:
        yield
    finally:
        conn.set_progress_handler(None, 0)
