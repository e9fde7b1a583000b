"""`sessionorm verify` against a floor: one hand-written statement doing the same data checks (issue 22).

    python bench/verify_floor.py postgresql://…/db   [--runs 3]   # a migrated store, never analyzed
    python bench/verify_floor.py migrated.db         [--runs 3]   # a migrated SQLite file

The floor reads what `verify` judges the data by, in one statement and with nothing else
(no migration history, no schema comparison, no report):

- orphans: rows whose foreign key finds no parent, for each foreign key of the orchestrator's
  schema (PostgreSQL: and constraints left NOT VALID; SQLite: `integrity_check`);
- lost: recorded migrated threads gone while their session remains (not deleted through
  sessionorm); twice: sessions with more than one recorded thread still present; the app's
  own `Thread <threadId>` beside a migrated thread: one pass over the record joined to the
  threads and sessions, shared by the three;
- late: sessions with a threadId, in neither record, without their thread; unmatched:
  recorded unmatched sessions that remain; bare: threads whose id lacks `T-`.

`tests/test_verify_floor.py` runs the same statements on a damaged database and checks that
they find what `verify` finds. Runs alternate (floor, verify, …); the table gives the medians
and their ratio (target ≤ 1.25×). `verify` is timed as a user calls it, `sessionorm.verify(…)`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

RATIO = 1.25

FOREIGN_KEYS = [  # (table, column, parent, parent column): the orchestrator's schema and sessionorm's
    ("threads", "sessionId", "sessions", "id"),
    ("thread_messages", "threadId", "threads", "id"),
    ("iterations", "sessionId", "sessions", "id"),
    ("tool_calls", "sessionId", "sessions", "id"),
    ("tool_calls", "iterationId", "iterations", "id"),
    ("merge_history", "sessionId", "sessions", "id"),
    ("stream_events", "sessionId", "sessions", "id"),
    ("batch_items", "sessionId", "sessions", "id"),
    ("batch_items", "runId", "batches", "runId"),
    ("swebench_case_results", "sessionId", "sessions", "id"),
    ("swebench_case_results", "runId", "swebench_runs", "id"),
]

ORPHANS = ",\n".join(
    f'  (SELECT count(*) FROM {t} c WHERE c."{col}" IS NOT NULL AND NOT EXISTS'
    f' (SELECT 1 FROM {p} x WHERE x."{pcol}" = c."{col}")) AS "orphans {t}.{col}"'
    for t, col, p, pcol in FOREIGN_KEYS
)

DATA = """
  (SELECT count(*) FROM recorded WHERE live AND NOT thread_kept AND session_kept) AS lost,
  (SELECT count(*) FROM (SELECT "sessionId" FROM recorded WHERE live AND thread_kept
     GROUP BY "sessionId" HAVING count(*) > 1) twice) AS twice,
  (SELECT count(*) FROM recorded r WHERE live AND thread_kept AND EXISTS (SELECT 1 FROM threads a
     WHERE a."sessionId" = r."sessionId" AND a.id != r."threadId"
     AND a.name = 'Thread ' || r."legacyThreadId")) AS app_duplicates,
  (SELECT count(*) FROM sessions s WHERE s."threadId" IS NOT NULL AND s."threadId" != ''
     AND NOT EXISTS (SELECT 1 FROM sessionorm_migrated_threads r WHERE r."sessionId" = s.id)
     AND NOT EXISTS (SELECT 1 FROM sessionorm_unmatched_sessions u WHERE u."sessionId" = s.id)
     AND NOT EXISTS (SELECT 1 FROM threads o WHERE o.id = s."threadId" AND o."sessionId" = s.id)) AS late,
  (SELECT count(*) FROM sessionorm_unmatched_sessions u
     WHERE EXISTS (SELECT 1 FROM sessions s WHERE s.id = u."sessionId")) AS unmatched,
  (SELECT count(*) FROM threads WHERE substr(id, 1, 2) != 'T-') AS bare"""

RECORDED = """WITH recorded AS (
  SELECT r."sessionId", r."threadId", r."legacyThreadId", r."deletedAt" IS NULL AS live,
         t.id IS NOT NULL AS thread_kept, s.id IS NOT NULL AS session_kept
  FROM sessionorm_migrated_threads r
  LEFT JOIN threads t ON t.id = r."threadId"
  LEFT JOIN sessions s ON s.id = r."sessionId")"""

PG_FLOOR = f"""{RECORDED}
SELECT
  (SELECT count(*) FROM pg_constraint WHERE NOT convalidated
     AND connamespace = current_schema()::regnamespace) AS not_valid,
{ORPHANS},{DATA}"""

SQLITE_FLOOR = f"""{RECORDED}
SELECT
  (SELECT count(*) FROM pragma_integrity_check WHERE integrity_check != 'ok') AS damaged,
{ORPHANS},{DATA}"""


def floor(con, postgres: bool) -> dict[str, int]:
    """The floor's counts, by name (one statement)."""
    cursor = con.execute(PG_FLOOR if postgres else SQLITE_FLOOR)
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("database", help="a PostgreSQL URL or a SQLite file, migrated")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from sessionorm import verify

    postgres = args.database.startswith("postgres")
    if postgres:
        import psycopg

        con = psycopg.connect(args.database, autocommit=True, prepare_threshold=None)
        for setting in ("jit", "enable_nestloop", "enable_mergejoin"):  # hash joins: its fastest plan
            con.execute(f"SET {setting} = off")
        con.execute("SET work_mem = '64MB'")  # the hashes in memory, as verify's `linear_plans`
    else:
        import sqlite3

        con = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
    floors, verifies = [], []
    found = floor(con, postgres)
    print(f"floor finds: {found}", file=sys.stderr)
    report = verify(args.database)
    print(f"verify finds: problems {report.problems}, notes {report.notes}", file=sys.stderr)
    for n in range(args.runs):
        start = time.perf_counter()
        floor(con, postgres)
        floors.append(time.perf_counter() - start)
        start = time.perf_counter()
        verify(args.database)
        verifies.append(time.perf_counter() - start)
        print(f"  run {n + 1}: floor {floors[-1]:.2f} s, verify {verifies[-1]:.2f} s", file=sys.stderr)
    ratio = statistics.median(verifies) / statistics.median(floors)
    engine = "PostgreSQL" if postgres else "SQLite"
    print("| verify | sessionorm | floor (one statement) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| {engine} | {statistics.median(verifies):.2f} s | {statistics.median(floors):.2f} s "
        f"| {ratio:.2f}× {'PASS' if ratio <= RATIO else 'FAIL'} (≤ {RATIO}×) |"
    )
    return 0 if ratio <= RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
