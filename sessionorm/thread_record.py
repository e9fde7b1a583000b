"""The record of migrated threads (migration 4), and what `verify` learns from it.

Migration 1 gives each session with a legacy threadId a thread whose first message, a system
marker, names that threadId. Migration 4 records each marker: which thread, for which
session and legacy threadId. From then on losses are judged from the record alone, never
from `sessions.threadId` (the orchestrator app rewrites it) nor from thread names (the app
makes `Thread <threadId>` rows of its own):

- lost: a recorded thread that is gone while its session remains, and that was not deleted
  through sessionorm (`delete_thread` marks the record);
- unmatched: on files migrated before the record existed, sessions that had a threadId and no
  migrated thread when the record began; lost threads and threadIds the app set later look
  the same there, so they are counted, never called deleted;
- late: sessions created since with a threadId and no thread (`backfill` makes them).
"""

from __future__ import annotations

RECORD = "sessionorm_migrated_threads"
UNMATCHED = "sessionorm_unmatched_sessions"
RENAMES = "sessionorm_renamed_threads"
MESSAGE_PREFIX = "Thread migrated from legacy threadId: "
APP_THREAD_NAME = "Thread "  # the app's start-up names its own thread `Thread <threadId>`

# The store's writes to the record, `{p}` for the parameter marker.
RECORD_DELETED = f'UPDATE {RECORD} SET "deletedAt" = {{p}} WHERE "threadId" = {{p}} AND "deletedAt" IS NULL'
RECORD_SESSION_DELETED = (
    f'UPDATE {RECORD} SET "deletedAt" = {{p}} WHERE "sessionId" = {{p}} AND "deletedAt" IS NULL'
)

LIVE = 'r."deletedAt" IS NULL'
THREAD_KEPT = 'EXISTS (SELECT 1 FROM threads t WHERE t.id = r."threadId")'
THREAD_GONE = f"NOT {THREAD_KEPT}"  # written out, not NOT NOT: PostgreSQL joins both forms
SESSION_KEPT = 'EXISTS (SELECT 1 FROM sessions s WHERE s.id = r."sessionId")'

LOST = (
    f'SELECT r."threadId" FROM {RECORD} r WHERE {LIVE} AND {THREAD_GONE} AND {SESSION_KEPT}'
    ' ORDER BY r."threadId"'
)
UNMATCHED_COUNT = (
    f'SELECT count(*) AS n, min(u."recordedAt") AS since FROM {UNMATCHED} u'
    ' WHERE EXISTS (SELECT 1 FROM sessions s WHERE s.id = u."sessionId")'
)
HAS_THREAD_ID = """s."threadId" IS NOT NULL AND s."threadId" != ''"""
# Sessions in neither table, with a threadId and no thread for it: created after the migration.
LATE = (
    f"SELECT count(*) FROM sessions s WHERE {HAS_THREAD_ID}"
    f' AND NOT EXISTS (SELECT 1 FROM {RECORD} r WHERE r."sessionId" = s.id)'
    f' AND NOT EXISTS (SELECT 1 FROM {UNMATCHED} u WHERE u."sessionId" = s.id)'
    ' AND NOT EXISTS (SELECT 1 FROM threads o WHERE o.id = s."threadId" AND o."sessionId" = s.id)'
)

# Threads without a `T-` id, which the app does not list (its 3b7ef7d still makes them).
BARE_IDS = "SELECT count(*) FROM threads WHERE substr(id, 1, 2) != 'T-'"

# The record joined once to the threads and sessions, for lost, twice and the app's duplicates.
RECORDED = (
    f'WITH recorded AS (SELECT r."sessionId", r."threadId", r."legacyThreadId", {LIVE} AS live,'
    " t.id IS NOT NULL AS thread_kept, s.id IS NOT NULL AS session_kept"
    f' FROM {RECORD} r LEFT JOIN threads t ON t.id = r."threadId"'
    ' LEFT JOIN sessions s ON s.id = r."sessionId")'
)


def data_counts_sql(bare_ids: bool) -> str:
    """Every count `verify` judges the data by, in one statement and one pass over the record:
    lost, twice, app duplicates, late, unmatched and since when, bare ids (0 unless asked)."""
    columns = [
        "(SELECT count(*) FROM recorded WHERE live AND NOT thread_kept AND session_kept)",
        '(SELECT count(*) FROM (SELECT "sessionId" FROM recorded WHERE live AND thread_kept'
        ' GROUP BY "sessionId" HAVING count(*) > 1) twice)',
        "(SELECT count(*) FROM recorded k WHERE live AND thread_kept AND EXISTS (SELECT 1 FROM"
        ' threads a WHERE a."sessionId" = k."sessionId" AND a.id != k."threadId"'
        f""" AND a.name = '{APP_THREAD_NAME}' || k."legacyThreadId"))""",
        f"({LATE})",
        "unmatched.n",
        "unmatched.since",
        f"({BARE_IDS})" if bare_ids else "0",
    ]
    return f"{RECORDED} SELECT {', '.join(columns)} FROM ({UNMATCHED_COUNT}) unmatched"


# The first lost threads, named in the problem line (run only when some are lost).
LOST_SHOWN = f"{LOST} LIMIT {{shown}}"

SHOWN = 5  # thread ids named in a problem line


def lost_line(count: int, first: list[str]) -> str:
    """The problem line for `count` lost threads, naming the `first` of them (up to SHOWN)."""
    shown = ", ".join(first[:SHOWN]) + (f" and {count - SHOWN} more" if count > SHOWN else "")
    return (
        f"{count} migrated threads are gone, with all their messages (at least their "
        f"{count} migration markers), while their sessions remain: {shown}; "
        "`sessionorm restore-threads --from BACKUP` copies back what a backup holds of them "
        "and nothing else (see README, 'Living with the orchestrator')"
    )


def unmatched_line(count: int, since: str) -> str:
    return (
        f"{count} sessions had a threadId but no migrated thread when sessionorm began its "
        f"record of migrated threads ({since}, on a file migrated before): it cannot be told "
        "whether their threads were lost before then or the orchestrator app set their "
        "threadId later; `sessionorm restore-threads --from BACKUP` copies back any migrated "
        "thread a backup holds and this file lacks"
    )


def late_line(count: int) -> str:
    return (
        f"{count} sessions carry a threadId and have no thread for it yet (created, or given "
        "their threadId, after the migration): `sessionorm backfill` (or "
        "SessionStore.migrate_session_thread_ids()) creates them"
    )


def twice_line(count: int) -> str:
    return (
        f"{count} sessions have more than one migrated thread (the migration ran again, e.g. "
        "the orchestrator's own runner: see README, 'Living with the orchestrator')"
    )


def app_duplicates_line(count: int) -> str:
    return (
        f"{count} sessions have the orchestrator app's own `Thread <threadId>` thread beside "
        "their migrated thread (made by the app's start-up; harmless, keep or delete it)"
    )


def bare_ids_line(count: int) -> str:
    return (
        f"{count} threads have an id without `T-`, which the orchestrator app does not list: "
        "`sessionorm backfill` renames them to `T-<id>`"
    )
