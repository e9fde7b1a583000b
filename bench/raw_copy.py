"""The raw floors of `sessionorm copy` (issues 15, 22): the same rows, plain drivers, nothing checked.

    python bench/raw_copy.py to-pg     SOURCE.db     POSTGRES_URL  REFERENCE_URL
    python bench/raw_copy.py to-sqlite POSTGRES_URL  DEST.db       SCHEMA.db

Both carry every table of the source, read in primary-key order (as sessionorm does), into the
schema sessionorm makes, built the fastest plain way:

- to-pg: the tables, column types, keys, foreign keys and indexes of REFERENCE_URL (a database
  `sessionorm copy` made from the same file); one transaction: bare tables, binary
  `COPY … FROM STDIN` with psycopg's `write_row`, then the primary keys and UNIQUE, the
  indexes and the foreign keys (same `maintenance_work_mem` as sessionorm); no checksums, no
  migrations, no verification.
- to-sqlite: the tables and indexes of SCHEMA.db (the migrated file the PostgreSQL source was
  copied from) in a new file with `journal_mode=OFF`, `synchronous=OFF` and sessionorm's page
  cache; binary `COPY … TO STDOUT` from one REPEATABLE READ snapshot, `executemany` in one
  transaction per table, indexes after the load, then WAL mode; no checksums, no migrations,
  no verification.

Both make the search index (migration 7) as sessionorm's copy does, after the rows and in one
go: on PostgreSQL one `INSERT … SELECT to_tsvector(…)` before the GIN index is built; on SQLite
the keys, FTS5's `'rebuild'` and the triggers.
"""

from __future__ import annotations

import sqlite3
import sys

BATCH = 5_000
SORT_MEMORY = "256MB"  # sessionorm.backends.pg_copy.PG_SORT_MEMORY
SQLITE_CACHE = -16384  # sessionorm.backends.sqlite_copy.SQLITE_CACHE


SEARCH = "sessionorm_search"  # the search index (migration 7): derived, made after the rows


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_schema(reference) -> tuple[dict, list[str], list[str], list[str]]:
    """REFERENCE's tables -> [(column, type, not null)], primary key per table; then its keys
    and UNIQUE, indexes, and foreign keys as statements."""
    tables: dict[str, dict] = {}
    for table, column, kind, notnull in reference.execute(
        "SELECT c.relname, a.attname, t.typname, a.attnotnull FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
    ):
        tables.setdefault(table, {"columns": [], "key": []})["columns"].append((column, kind, notnull))
    for table, key in reference.execute(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c"
        " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, n)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
        " WHERE c.contype = 'p' AND c.connamespace = 'public'::regnamespace ORDER BY 1, k.n"
    ):
        tables[table.strip('"')]["key"].append(key)
    constraints = reference.execute(
        "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid), c.contype"
        " FROM pg_constraint c WHERE c.contype IN ('p', 'u', 'f')"
        " AND c.connamespace = 'public'::regnamespace ORDER BY 1, 2"
    ).fetchall()
    keys = [f"ALTER TABLE {t} ADD CONSTRAINT {n} {d}" for t, n, d, k in constraints if k != "f"]
    foreign = [f"ALTER TABLE {t} ADD CONSTRAINT {n} {d}" for t, n, d, k in constraints if k == "f"]
    indexes = [
        r[0]
        for r in reference.execute(
            "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE i.relnamespace = 'public'::regnamespace AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
            " WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid) ORDER BY 1"
        )
    ]
    return tables, keys, indexes, foreign


def to_pg(source: str, url: str, reference_url: str) -> None:
    import psycopg

    with psycopg.connect(reference_url, prepare_threshold=None) as reference:
        tables, keys, indexes, foreign = pg_schema(reference)
    lite = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    lite.execute("BEGIN")  # one snapshot, as sessionorm reads
    with psycopg.connect(url, prepare_threshold=None) as pg:
        for table, shape in tables.items():
            cols = ", ".join(f"{q(c)} {t}" + (" NOT NULL" if n else "") for c, t, n in shape["columns"])
            pg.execute(f"CREATE TABLE {q(table)} ({cols})")
        for table, shape in tables.items():
            if table == SEARCH:  # the search index: made from the messages below, as sessionorm does
                continue
            names = ", ".join(q(c) for c, _, _ in shape["columns"])
            cursor = lite.execute(
                f"SELECT {names} FROM {q(table)} ORDER BY {', '.join(map(q, shape['key']))}"
            )
            with pg.cursor().copy(f"COPY {q(table)} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([t for _, t, _ in shape["columns"]])
                while batch := cursor.fetchmany(BATCH):
                    for row in batch:
                        copy.write_row(row)
        pg.execute(f"SET LOCAL maintenance_work_mem = '{SORT_MEMORY}'")
        if SEARCH in tables:
            pg.execute(
                f'INSERT INTO {SEARCH} ("messageId", doc)'
                " SELECT id, to_tsvector('simple', content) FROM thread_messages"
            )
        for sql in keys + indexes + foreign:
            pg.execute(sql)
    lite.close()


def to_sqlite(url: str, dest: str, schema: str) -> None:
    import psycopg

    model = sqlite3.connect(f"file:{schema}?mode=ro", uri=True)
    ddl = model.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        " ORDER BY type = 'index', rowid"
    ).fetchall()
    model.close()
    lite = sqlite3.connect(dest, isolation_level=None)
    lite.execute("PRAGMA journal_mode = OFF")
    lite.execute("PRAGMA synchronous = OFF")
    lite.execute(f"PRAGMA cache_size = {SQLITE_CACHE}")
    shadows = {f"{SEARCH}_{s}" for s in ("data", "idx", "docsize", "config", "content")}
    for kind, name, sql in ddl:
        if (kind == "table" and name not in shadows) or kind == "view":  # FTS5 makes its shadow tables
            lite.execute(sql)
    with psycopg.connect(url, prepare_threshold=None) as pg:
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
        tables, _, _, _ = pg_schema(pg)
        for table, shape in tables.items():
            if table == SEARCH:  # PostgreSQL's tsvectors: the SQLite index is made from the messages
                continue
            columns = [c for c, _, _ in shape["columns"]]
            names = ", ".join(map(q, columns))
            insert = f"INSERT INTO {q(table)} ({names}) VALUES ({', '.join('?' * len(columns))})"
            lite.execute("BEGIN")
            with pg.cursor().copy(
                f"COPY (SELECT {names} FROM {q(table)} ORDER BY {', '.join(map(q, shape['key']))})"
                " TO STDOUT (FORMAT BINARY)"
            ) as copy:
                copy.set_types([t for _, t, _ in shape["columns"]])
                batch = []
                for row in copy.rows():
                    batch.append(row)
                    if len(batch) == BATCH:
                        lite.executemany(insert, batch)
                        batch = []
                if batch:
                    lite.executemany(insert, batch)
            lite.execute("COMMIT")
    lite.execute("BEGIN")
    for kind, _, sql in ddl:
        if kind == "index":
            lite.execute(sql)
    lite.execute("COMMIT")
    if any(name == SEARCH for _, name, _ in ddl):  # the search index, made in one go, then its triggers
        lite.execute(f'INSERT INTO {SEARCH}_keys ("messageId") SELECT id FROM thread_messages ORDER BY rowid')
        lite.execute(f"INSERT INTO {SEARCH} ({SEARCH}) VALUES ('rebuild')")
        for kind, _, sql in ddl:
            if kind == "trigger":
                lite.execute(sql)
    lite.execute("PRAGMA journal_mode = WAL")
    lite.close()


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] not in ("to-pg", "to-sqlite"):
        print(__doc__, file=sys.stderr)
        return 2
    (to_pg if argv[0] == "to-pg" else to_sqlite)(*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
