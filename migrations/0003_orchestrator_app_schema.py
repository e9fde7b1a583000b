"""The orchestrator app's newest schema (f785b0c), so that the app finds nothing to change.

On every start the app (sjarmak/amp-session-manager) creates its tables if missing, adds the
columns its later versions use, and -- where `sessions.ampPrompt` is still NOT NULL -- rebuilds
`sessions` with a DROP TABLE that cascades to every thread and message. This migration does
the same work first, safely: the missing columns with the app's own definitions,
`threads.ampMode` with the app's CHECK, `ampPrompt` made nullable (in SQLite by editing the
stored DDL, which no row depends on; nothing is rebuilt, nothing cascades), and, in a SQLite
file, the app's other tables.
A file sessionorm made or migrated is then one the app opens without altering anything.

PostgreSQL gets the columns only: the app never opens a server, and `copy` carries the
app's other tables with their rows.

`down` changes nothing, on purpose: what this adds is the app's schema. Removed, the app
would add it again on its next start, and a NOT NULL `ampPrompt` would make it rebuild
`sessions` and so delete every thread. Self-contained: only exception classes come from the
package.
"""
import re

import peewee

from sessionorm.errors import MigrationError

# The app's tables as its start-up creates them (CREATE TABLE IF NOT EXISTS), parents first.
APP_TABLES = (
    """CREATE TABLE IF NOT EXISTS iterations (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, startTime TEXT NOT NULL, endTime TEXT,
  commitSha TEXT, changedFiles INTEGER NOT NULL DEFAULT 0, testResult TEXT, testExitCode INTEGER,
  tokenUsage INTEGER, promptTokens INTEGER, completionTokens INTEGER, totalTokens INTEGER,
  model TEXT, ampVersion TEXT, exitCode INTEGER, ampArgs TEXT, output TEXT,
  cliToolUsageCount INTEGER, cliErrorCount INTEGER, cliLogDurationMs INTEGER,
  FOREIGN KEY(sessionId) REFERENCES sessions(id))""",
    """CREATE TABLE IF NOT EXISTS tool_calls (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, iterationId TEXT NOT NULL,
  timestamp TEXT NOT NULL, toolName TEXT NOT NULL, argsJson TEXT NOT NULL,
  success BOOLEAN NOT NULL, durationMs INTEGER, rawJson TEXT,
  FOREIGN KEY(sessionId) REFERENCES sessions(id), FOREIGN KEY(iterationId) REFERENCES iterations(id))""",
    """CREATE TABLE IF NOT EXISTS merge_history (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, startedAt TEXT NOT NULL, finishedAt TEXT,
  baseBranch TEXT NOT NULL, mode TEXT NOT NULL, result TEXT NOT NULL, conflictFiles TEXT,
  squashMessage TEXT, FOREIGN KEY(sessionId) REFERENCES sessions(id))""",
    """CREATE TABLE IF NOT EXISTS batches (
  runId TEXT PRIMARY KEY, createdAt TEXT NOT NULL, defaultsJson TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS batch_items (
  id TEXT PRIMARY KEY, runId TEXT NOT NULL, sessionId TEXT, repo TEXT NOT NULL,
  prompt TEXT NOT NULL, status TEXT NOT NULL, error TEXT, startedAt TEXT, finishedAt TEXT,
  model TEXT, iterSha TEXT, tokensTotal INTEGER, toolCalls INTEGER,
  FOREIGN KEY(runId) REFERENCES batches(runId), FOREIGN KEY(sessionId) REFERENCES sessions(id))""",
    """CREATE TABLE IF NOT EXISTS swebench_runs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, casesDir TEXT NOT NULL, createdAt TEXT NOT NULL,
  total INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0,
  passed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'running')""",
    """CREATE TABLE IF NOT EXISTS swebench_case_results (
  runId TEXT NOT NULL, caseId TEXT NOT NULL, sessionId TEXT NOT NULL, status TEXT NOT NULL,
  iterations INTEGER NOT NULL DEFAULT 0, wallTimeSec REAL NOT NULL DEFAULT 0,
  PRIMARY KEY(runId, caseId), FOREIGN KEY(runId) REFERENCES swebench_runs(id),
  FOREIGN KEY(sessionId) REFERENCES sessions(id))""",
    """CREATE TABLE IF NOT EXISTS stream_events (
  id TEXT PRIMARY KEY, sessionId TEXT NOT NULL, type TEXT NOT NULL, timestamp TEXT NOT NULL,
  data TEXT NOT NULL, FOREIGN KEY(sessionId) REFERENCES sessions(id))""",
)

# The columns the app adds where missing (its `addColumn` calls, in its order), with its own
# definitions; a table that does not exist is left alone.
APP_COLUMNS = (
    ("sessions", "threadId", "TEXT"),
    ("batch_items", "threadId", "TEXT"),
    ("iterations", "ampArgs", "TEXT"),
    ("sessions", "followUpPrompts", "TEXT"),
    ("iterations", "output", "TEXT"),
    ("iterations", "cliToolUsageCount", "INTEGER"),
    ("iterations", "cliErrorCount", "INTEGER"),
    ("iterations", "cliLogDurationMs", "INTEGER"),
    ("sessions", "contextIncluded", "BOOLEAN"),
    ("sessions", "mode", "TEXT DEFAULT 'async'"),
    ("sessions", "autoCommit", "BOOLEAN DEFAULT 1"),
    ("sessions", "ampMode", "TEXT DEFAULT 'production'"),
    ("threads", "ampMode", """TEXT CHECK("ampMode" IN ('production', 'local-cli'))"""),
)


def is_postgres(db):
    return isinstance(db, peewee.PostgresqlDatabase)


def add_column_sql(db, table, column, definition):
    if is_postgres(db):
        definition = definition.replace("BOOLEAN DEFAULT 1", "BOOLEAN DEFAULT TRUE")
    return f'ALTER TABLE "{table}" ADD COLUMN "{column}" {definition}'


def missing_columns_sql(db):
    """ALTER TABLE statements for the app's columns that the existing tables lack."""
    tables = set(db.get_tables())
    sql, columns = [], {}
    for table, column, definition in APP_COLUMNS:
        if table in tables:
            have = columns.setdefault(table, {c.name for c in db.get_columns(table)})
            if column not in have:
                sql.append(add_column_sql(db, table, column, definition))
                have.add(column)
    return sql


def amp_prompt_not_null(db):
    return any(c.name == "ampPrompt" and not c.null for c in db.get_columns("sessions"))


# `ampPrompt TEXT NOT NULL` in the stored DDL of `sessions`, however the name is quoted.
AMP_PROMPT_NOT_NULL = re.compile(r"""((?:\(|,)\s*["`\[]?ampPrompt["`\]]?\s+TEXT)\s+NOT\s+NULL\b""",
                                 re.I)


def relax_in_schema(db):
    """SQLite: drop the NOT NULL from the stored DDL of `sessions` (True), or leave it (False).

    Removing a NOT NULL changes no stored row, so SQLite's documented procedure for it edits
    the schema text with `writable_schema` and bumps `schema_version` (section 7 of its ALTER
    TABLE page): instant at any size, where a rebuild copies every session and needs the
    whole file checked. DDL the pattern does not match exactly once is left to the rebuild.
    """
    sql = db.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
                         ).fetchone()[0]
    relaxed, found = AMP_PROMPT_NOT_NULL.subn(r"\1", sql)
    if found != 1:
        return False
    version = db.execute_sql("PRAGMA schema_version").fetchone()[0]
    db.execute_sql("PRAGMA writable_schema = ON")
    try:
        db.execute_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'sessions'",
                       (relaxed,))
        db.execute_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        db.execute_sql("PRAGMA writable_schema = OFF")
    return True


def up(migrator, db, options):
    if not is_postgres(db):
        for sql in APP_TABLES:
            db.execute_sql(sql)
    for sql in missing_columns_sql(db):
        db.execute_sql(sql)
    if amp_prompt_not_null(db) and (is_postgres(db) or not relax_in_schema(db)):
        # PostgreSQL: ALTER COLUMN ... DROP NOT NULL; SQLite DDL of another form: the
        # migrator's checked rebuild (foreign keys off: nothing cascades).
        migrator.migrate(migrator.drop_not_null("sessions", "ampPrompt"))
    if amp_prompt_not_null(db):
        raise MigrationError("sessions.ampPrompt is still NOT NULL")


def down(migrator, db, options):
    """Nothing: the app's schema stays (see the module docstring)."""
