"""Migration 1's "still to migrate" condition, for `verify` on a file it has not run on yet.

Migration 1 gives each session with a legacy `threadId` a thread whose first message is a
system marker naming that threadId (or, in later orchestrator versions, a thread whose id is
the threadId). Once it has run, `verify` judges from the record of migrated threads
(`thread_record`). The script carries its own copy of these conditions (shipped scripts are
self-contained); a test proves the two copies agree.
"""

from __future__ import annotations

MESSAGE_PREFIX = "Thread migrated from legacy threadId: "

HAS_THREAD_ID = """s."threadId" IS NOT NULL AND s."threadId" != ''"""
# Nested EXISTS, not a join: with a join SQLite's planner (no ANALYZE statistics) drives the
# subquery from the unselective index on thread_messages(idx) or (role), scanning every
# marker message for every session -- quadratic (80 s for `verify` on 50,000 sessions).
# Nested, it walks threads(sessionId) then the UNIQUE(threadId, idx) index.
HAS_MARKER_THREAD = (
    """EXISTS (SELECT 1 FROM threads t WHERE t."sessionId" = s.id AND EXISTS"""
    """ (SELECT 1 FROM thread_messages m WHERE m."threadId" = t.id AND m.idx = 0"""
    f""" AND m.role = 'system' AND m.content = '{MESSAGE_PREFIX}' || s."threadId"))"""
)
# Later orchestrator versions give the legacy thread a row of its own: id = the threadId.
HAS_LEGACY_THREAD = """EXISTS (SELECT 1 FROM threads o WHERE o.id = s."threadId" AND o."sessionId" = s.id)"""
NOT_YET_MIGRATED = f"NOT {HAS_MARKER_THREAD} AND NOT {HAS_LEGACY_THREAD}"
# PostgreSQL: joins under NOT EXISTS, which become hash anti-joins under `linear_plans`.
NOT_YET_MIGRATED_PG = (
    'NOT EXISTS (SELECT 1 FROM threads t JOIN thread_messages m ON m."threadId" = t.id'
    """ WHERE t."sessionId" = s.id AND m.idx = 0 AND m.role = 'system'"""
    f""" AND m.content = '{MESSAGE_PREFIX}' || s."threadId") AND NOT {HAS_LEGACY_THREAD}"""
)
