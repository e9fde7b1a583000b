"""Deleting a session as the orchestrator app does: its own rows of the session first.

The app's tables reference `sessions(id)` without ON DELETE CASCADE, so the app deletes a
session's rows child first (its `deleteSession`): the metric tables by iteration, then
`tool_calls`, `iterations`, `merge_history`, `batch_items`, `stream_events`, then the
session, whose threads and messages cascade. Rows of any other table that reference the
session are refused by name, before anything is deleted.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee

from .errors import ValidationError
from .identifiers import q
from .models import AGENT_TABLES

METRIC_CHILDREN = (
    "metric_tool_calls",
    "metric_llm_usage",
    "metric_git_operations",
    "metric_test_results",
    "metric_file_edits",
    "metric_user_messages",
)
# (table, column naming the session), in the app's order of deletion.
APP_CHILDREN = (
    ("tool_calls", "sessionId"),
    ("iterations", "sessionId"),
    ("merge_history", "sessionId"),
    ("batch_items", "sessionId"),
    ("stream_events", "sessionId"),
)
AGENT_SESSIONS = AGENT_TABLES[0]
CASCADED = ("threads", "thread_messages", AGENT_SESSIONS)  # ON DELETE CASCADE from sessions
# The tables `delete_session_rows` reports, in its order (the cascaded ones before `sessions`).
DELETION_ORDER = (
    *METRIC_CHILDREN,
    "metric_iterations",
    *(table for table, _ in APP_CHILDREN),
    "thread_messages",
    "threads",
    AGENT_SESSIONS,
    "sessions",
)


def delete_session_rows(
    db: peewee.Database, sql: Callable[[str], str], session_id: str, count_only: bool = False
) -> dict[str, int]:
    """Delete the session and every row of it, inside the caller's transaction; return the
    rows deleted per table (tables with none left out). `sql` fills in `{p}` markers.

    `count_only`: delete nothing, and return what the same call would delete (the same
    tables, the same conditions: `prune --dry-run` lists exactly what `prune` deletes).
    """
    tables = set(db.get_tables())
    refuse_unknown_children(db, sql, tables, session_id)

    def run(statement: str) -> int:
        if count_only:  # `DELETE FROM t WHERE …` counted as `SELECT count(*) FROM t WHERE …`
            counting = "SELECT count(*)" + statement.removeprefix("DELETE")
            return db.execute_sql(sql(counting), (session_id,)).fetchone()[0]
        return db.execute_sql(sql(statement), (session_id,)).rowcount

    deleted = {}
    if "metric_iterations" in tables:
        of_session = "SELECT id FROM metric_iterations WHERE session_id = {p}"
        for table in METRIC_CHILDREN:
            if table in tables:
                deleted[table] = run(f"DELETE FROM {q(table)} WHERE iteration_id IN ({of_session})")
        deleted["metric_iterations"] = run("DELETE FROM metric_iterations WHERE session_id = {p}")
    for table, column in APP_CHILDREN:
        if table in tables:
            deleted[table] = run(f"DELETE FROM {q(table)} WHERE {q(column)} = {{p}}")
    deleted["thread_messages"] = db.execute_sql(
        sql(
            'SELECT count(*) FROM thread_messages m JOIN threads t ON t.id = m."threadId"'
            ' WHERE t."sessionId" = {p}'
        ),
        (session_id,),
    ).fetchone()[0]
    deleted["threads"] = db.execute_sql(
        sql('SELECT count(*) FROM threads WHERE "sessionId" = {p}'), (session_id,)
    ).fetchone()[0]
    if AGENT_SESSIONS in tables:
        deleted[AGENT_SESSIONS] = db.execute_sql(
            sql(f'SELECT count(*) FROM {AGENT_SESSIONS} WHERE "sessionId" = {{p}}'), (session_id,)
        ).fetchone()[0]
    deleted["sessions"] = run("DELETE FROM sessions WHERE id = {p}")
    return {table: n for table, n in deleted.items() if n}


def refuse_unknown_children(
    db: peewee.Database, sql: Callable[[str], str], tables: set[str], session_id: str
) -> None:
    """`ValidationError` naming the other tables whose rows reference the session."""
    known = {t for t, _ in APP_CHILDREN} | set(CASCADED) | {"metric_iterations", "sessions"}
    found = []
    for table in sorted(tables - known):
        for fk in db.get_foreign_keys(table):
            if fk.dest_table == "sessions":
                rows = db.execute_sql(
                    sql(f"SELECT count(*) FROM {q(table)} WHERE {q(fk.column)} = {{p}}"), (session_id,)
                ).fetchone()[0]
                if rows:
                    found.append(f"{table} ({rows} rows)")
    if found:
        raise ValidationError(
            f"session {session_id} is still referenced by rows of tables the "
            f"orchestrator app does not delete with it: {', '.join(found)}; "
            "nothing was deleted"
        )
