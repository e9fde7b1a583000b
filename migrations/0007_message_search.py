"""Full-text search over every message: an index kept in step with `thread_messages` by triggers.

The triggers index what anything writes, the orchestrator app included. This script makes the
empty index and its triggers, in the migration's transaction; the messages already there
are indexed afterwards in batches (`sessionorm.search_index.build`), so the write lock is never
held for the whole of a large file, and a killed build resumes where it stopped.

- **SQLite:** `sessionorm_search`, an FTS5 table whose text is read through the view
  `sessionorm_search_text` (external content: the text is not stored twice), keyed by
  `sessionorm_search_keys(id INTEGER PRIMARY KEY, "messageId")`. The key is an explicit
  integer: VACUUM keeps it, where it may renumber `thread_messages`' own rowid (a TEXT
  primary key). No foreign key on the keys: the delete trigger needs the key after the
  message is gone.
- **PostgreSQL:** `sessionorm_search("messageId", doc tsvector)` with a GIN index, the
  tsvector stored (`to_tsvector('simple', content)`), so ranking never parses the text again;
  one row trigger keeps it on insert, update and delete. No foreign key: `copy` drops the
  keys of `thread_messages` while it loads.

`down` drops all of it. Self-contained: only exception classes come from the package.
"""
import peewee

KEYS = "sessionorm_search_keys"
SEARCH = "sessionorm_search"
TEXT = "sessionorm_search_text"
ADOPTS = (KEYS, SEARCH)

SQLITE = (
    f'CREATE TABLE IF NOT EXISTS {KEYS} (id INTEGER PRIMARY KEY, "messageId" TEXT NOT NULL UNIQUE)',
    f'CREATE VIEW IF NOT EXISTS {TEXT} AS SELECT k.id AS id, m.content AS content FROM {KEYS} k'
    ' JOIN thread_messages m ON m.id = k."messageId"',
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH} USING fts5(content, content='{TEXT}', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2')",
    f"""CREATE TRIGGER IF NOT EXISTS {SEARCH}_insert AFTER INSERT ON thread_messages BEGIN
  INSERT INTO {KEYS} ("messageId") VALUES (new.id);
  INSERT INTO {SEARCH} (rowid, content) VALUES (last_insert_rowid(), new.content);
END""",
    f"""CREATE TRIGGER IF NOT EXISTS {SEARCH}_delete AFTER DELETE ON thread_messages BEGIN
  INSERT INTO {SEARCH} ({SEARCH}, rowid, content)
    SELECT 'delete', id, old.content FROM {KEYS} WHERE "messageId" = old.id;
  DELETE FROM {KEYS} WHERE "messageId" = old.id;
END""",
    f"""CREATE TRIGGER IF NOT EXISTS {SEARCH}_update AFTER UPDATE OF id, content ON thread_messages BEGIN
  INSERT INTO {SEARCH} ({SEARCH}, rowid, content)
    SELECT 'delete', id, old.content FROM {KEYS} WHERE "messageId" = old.id;
  UPDATE {KEYS} SET "messageId" = new.id WHERE "messageId" = old.id;
  INSERT INTO {SEARCH} (rowid, content) SELECT id, new.content FROM {KEYS} WHERE "messageId" = new.id;
END""",
)
SQLITE_DOWN = (
    f"DROP TRIGGER {SEARCH}_update",
    f"DROP TRIGGER {SEARCH}_delete",
    f"DROP TRIGGER {SEARCH}_insert",
    f"DROP TABLE {SEARCH}",
    f"DROP VIEW {TEXT}",
    f"DROP TABLE {KEYS}",
)

POSTGRES = (
    f"""CREATE TABLE IF NOT EXISTS {SEARCH} (
  "messageId" TEXT PRIMARY KEY, doc tsvector NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {SEARCH}_doc ON {SEARCH} USING gin (doc)",
    f"""CREATE OR REPLACE FUNCTION {SEARCH}_index() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    DELETE FROM {SEARCH} WHERE "messageId" = OLD.id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO {SEARCH} ("messageId", doc) VALUES (NEW.id, to_tsvector('simple', NEW.content))
      ON CONFLICT ("messageId") DO UPDATE SET doc = EXCLUDED.doc;
  END IF;
  RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE TRIGGER {SEARCH}_index
  AFTER INSERT OR DELETE OR UPDATE OF id, content ON thread_messages
  FOR EACH ROW EXECUTE FUNCTION {SEARCH}_index()""",
)
POSTGRES_DOWN = (
    f"DROP TRIGGER {SEARCH}_index ON thread_messages",
    f"DROP FUNCTION {SEARCH}_index()",
    f"DROP TABLE {SEARCH}",
)


def is_postgres(db):
    return isinstance(db, peewee.PostgresqlDatabase)


def up(migrator, db, options):
    for sql in POSTGRES if is_postgres(db) else SQLITE:
        db.execute_sql(sql)


def down(migrator, db, options):
    for sql in POSTGRES_DOWN if is_postgres(db) else SQLITE_DOWN:
        db.execute_sql(sql)
