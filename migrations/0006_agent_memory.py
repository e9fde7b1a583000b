"""Agent memory: which orchestrator session holds an agent's conversation, and each item exactly.

`sessionorm.agents.SessionormSession` (the OpenAI Agents SDK's `Session`) keeps one agent
session as one orchestrator session with one thread; its items are that thread's messages,
in `idx` order, with a readable `content` the app shows. Two tables of sessionorm's own:

- `sessionorm_agent_sessions`: the agent's session id (any text) → the orchestrator session
  and thread, with the agent session's metadata (a JSON object). Deleting the session or the
  thread (the app, the store) deletes the row: the next write starts a new one.
- `sessionorm_agent_items`: a message's exact item, as JSON text (`\\u0000` escapes keep NUL
  characters out of PostgreSQL's text). It goes with its message.

`down` drops both; it refuses while items are stored (their messages would keep only the
readable text) unless forced. Self-contained: only exception classes come from the package.
"""
from sessionorm.errors import MigrationError

SESSIONS = "sessionorm_agent_sessions"
ITEMS = "sessionorm_agent_items"
ADOPTS = (SESSIONS, ITEMS)  # made here: `verify` asks the runner which script that is

TABLES = (
    f"""CREATE TABLE IF NOT EXISTS {SESSIONS} (
  "agentSessionId" TEXT PRIMARY KEY,
  "sessionId" TEXT NOT NULL UNIQUE REFERENCES sessions (id) ON DELETE CASCADE,
  "threadId" TEXT NOT NULL UNIQUE REFERENCES threads (id) ON DELETE CASCADE,
  metadata TEXT NOT NULL DEFAULT '{{}}',
  "createdAt" TEXT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {ITEMS} (
  "messageId" TEXT PRIMARY KEY REFERENCES thread_messages (id) ON DELETE CASCADE,
  item TEXT NOT NULL)""",
)


def up(migrator, db, options):
    for sql in TABLES:
        db.execute_sql(sql)


def check_down(db, options):
    """Refuse a rollback that would drop stored items, unless forced."""
    items = db.execute_sql(f"SELECT count(*) FROM {ITEMS}").fetchone()[0]
    if items and not options.force:
        raise MigrationError(
            f"refusing to roll back: {items} agent items would lose their exact form (their "
            "messages keep only the readable text; use --force to drop them)")


def down(migrator, db, options):
    check_down(db, options)
    db.execute_sql(f"DROP TABLE {ITEMS}")
    db.execute_sql(f"DROP TABLE {SESSIONS}")
