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
# Sessions with more than one recorded thread still present: the migration ran twice.
TWICE = (
    f'SELECT count(*) FROM (SELECT r."sessionId" FROM {RECORD} r WHERE {LIVE}'
    f' AND {THREAD_KEPT} GROUP BY r."sessionId" HAVING count(*) > 1) twice'
)
# The app's own `Thread <threadId>` thread beside a migrated thread of the same session.
APP_DUPLICATES = (
    f"SELECT count(*) FROM {RECORD} r WHERE {LIVE} AND {THREAD_KEPT} AND EXISTS"
    ' (SELECT 1 FROM threads a WHERE a."sessionId" = r."sessionId" AND a.id != r."threadId"'
    f""" AND a.name = '{APP_THREAD_NAME}' || r."legacyThreadId")"""
)
UNMATCHED_COUNT = (
    f'SELECT count(*), min(u."recordedAt") FROM {UNMATCHED} u'
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

SHOWN = 5  # thread ids named in a problem line


def lost_line(lost: list[str]) -> str:
    shown = ", ".join(lost[:SHOWN]) + (f" and {len(lost) - SHOWN} more" if len(lost) > SHOWN else "")
    return (
        f"{len(lost)} migrated threads are gone, with all their messages (at least their "
        f"{len(lost)} migration markers), while their sessions remain: {shown}; "
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
