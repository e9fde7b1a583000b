"""`prune`: delete whole sessions whose last activity is older than a moment, as the app deletes
one (`session_children`), all in one write transaction; or list them and change nothing.

A session's last activity is the latest of its `createdAt`, its `lastRun`, its threads'
`updatedAt` and its messages' `createdAt`: an old session with a message yesterday is not
old. Sessions whose status says they are running are never deleted.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import peewee

from .backends import backend_for, backend_of, opened
from .errors import ValidationError
from .models import SEARCH_TABLES
from .planning import refuse_pending
from .session_children import DELETION_ORDER, delete_session_rows
from .target import Target
from .thread_record import RECORD_SESSION_DELETED
from .validation import quoted
from .values import now_timestamp, parse_timestamp

# The app's session statuses ('idle' | 'running' | 'awaiting-input' | 'error' | 'done'): a
# running session, or one waiting for its user's input mid-run, is in use and never pruned.
RUNNING_STATUSES = ("running", "awaiting-input")

# Every moment of a session's activity, per session; text as stored, a space read as `T`
# (SQLite's CURRENT_TIMESTAMP writes `2025-08-01 12:00:00`), the latest per session.
LAST_ACTIVITY = """
SELECT s.id, s.name, s.status, a.latest FROM sessions s JOIN (
  SELECT sid, max(moment) AS latest FROM (
    SELECT id AS sid, replace("createdAt", ' ', 'T') AS moment FROM sessions
    UNION ALL SELECT id, replace("lastRun", ' ', 'T') FROM sessions
    UNION ALL SELECT "sessionId", replace("updatedAt", ' ', 'T') FROM threads
    UNION ALL SELECT t."sessionId", replace(m."createdAt", ' ', 'T')
      FROM thread_messages m JOIN threads t ON t.id = m."threadId"
  ) moments GROUP BY sid
) a ON a.sid = s.id
ORDER BY a.latest, s.id
"""


@dataclass
class PrunedSession:
    """One session `prune` deletes (or would, under `--dry-run`)."""

    id: str
    name: str
    status: str
    last_activity: str  # as stored (ISO-8601 UTC)
    threads: int
    messages: int


@dataclass
class PruneReport:
    """What `prune` deleted, or would delete under `dry_run`."""

    database: str
    older_than: str  # as given (`90d`, or a date)
    cutoff: dt.datetime  # sessions last active before it are pruned
    status: str | None = None  # only sessions of this status
    dry_run: bool = False
    sessions: list[PrunedSession] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # rows per table, the app's order
    running_kept: list[str] = field(default_factory=list)  # old sessions kept: running
    unreadable_kept: list[str] = field(default_factory=list)  # last activity not a time: kept
    backup: Path | None = None
    backup_checked: str = ""
    vacuumed: bool = False
    bytes_before: int | None = None  # with `vacuum`: the database's size before and after
    bytes_after: int | None = None
    seconds: float = 0.0

    @property
    def bytes_freed(self) -> int | None:
        """`bytes_before - bytes_after` (None without `vacuum`)."""
        if self.bytes_before is None or self.bytes_after is None:
            return None
        return self.bytes_before - self.bytes_after


def check_status(status: str | None) -> str | None:
    """`ValidationError` for a running status: those sessions are never pruned."""
    if status is not None and status in RUNNING_STATUSES:
        raise ValidationError(
            f"--status {quoted(status)} names a running status; running sessions "
            f"({', '.join(RUNNING_STATUSES)}) are never pruned"
        )
    return status


def prune(
    target: Target,
    older_than: str,
    cutoff: dt.datetime,
    status: str | None,
    dry_run: bool,
    take_backup: bool,
    vacuum: bool,
) -> PruneReport:
    """`commands.prune` on a parsed `Target` and moment."""
    report = PruneReport(str(target), older_than, cutoff, check_status(status), dry_run)
    start = time.monotonic()
    refuse_pending(target)
    if dry_run:
        with opened(target, readonly=True) as database:  # one snapshot
            for session in candidates(database, report):
                counted = delete_session_rows(database, backend_of(database).sql, session.id, count_only=True)
                add(report, session, counted)
    else:
        backend_for(target).check_writable(target)
        with opened(target) as database:
            backend = backend_of(database)
            if vacuum:
                report.bytes_before = backend.storage_bytes()
            with backend.write():
                backend.lock_writers()  # decided under the lock: nobody writes in between
                chosen = candidates(database, report)
                if chosen and take_backup:
                    report.backup = backend_for(target).backup(target, locked=database)
                    report.backup_checked = backend.backup_checked
                for session in chosen:
                    add(report, session, delete_session_rows(database, backend.sql, session.id))
                    backend.execute(backend.sql(RECORD_SESSION_DELETED), (now_timestamp(), session.id))
            if vacuum:
                with backend.write():
                    backend.search.compact()
                backend.reclaim_space([*report.tables, *SEARCH_TABLES])
                report.vacuumed = True
                report.bytes_after = backend.storage_bytes()
    report.seconds = time.monotonic() - start
    return report


def candidates(database: peewee.Database, report: PruneReport) -> list[PrunedSession]:
    """The sessions last active before the cutoff (of the status asked for), oldest first;
    running ones and those whose last activity is not a time are noted in `report`, kept."""
    found = []
    for session_id, name, status, latest in database.execute_sql(LAST_ACTIVITY).fetchall():
        moment = parse_timestamp(latest)
        if not isinstance(moment, dt.datetime):
            if report.status in (None, status):
                report.unreadable_kept.append(session_id)
            continue
        if moment >= report.cutoff or report.status not in (None, status):
            continue
        if status in RUNNING_STATUSES:
            report.running_kept.append(session_id)
            continue
        found.append(PrunedSession(session_id, name, status, latest, 0, 0))
    return found


def add(report: PruneReport, session: PrunedSession, rows: dict[str, int]) -> None:
    session.threads = rows.get("threads", 0)
    session.messages = rows.get("thread_messages", 0)
    report.sessions.append(session)
    total = dict(report.tables)
    for table, n in rows.items():
        total[table] = total.get(table, 0) + n
    report.tables = {t: total[t] for t in DELETION_ORDER if t in total}  # the app's order
