"""Design study for full-text search over messages (issue 25): candidate indexes, measured.

    python bench/search_designs.py [--messages 1000000] [--workdir DIR] [--server URL] [--only …]

Nothing here is sessionorm's search: it builds each candidate index on a copy of one corpus
and prints what the issue's targets ask about, so a design is chosen on figures.

- **The corpus:** `--messages` messages in sessionorm's schema before migration 7 (100 per thread), 5–80 words
  each, drawn from a Zipf distribution (s = 1.07) over 30,000 made-up words, so that a few
  words are in most messages and most words in few. Made once in `--workdir`, then copied.
- **The queries** are picked from the index itself (`fts5vocab`): single words in about 0.01%,
  0.1%, 1%, 10% and 40% of the messages, two words (AND), a phrase and an OR.
- **SQLite designs**, each keyed by `sessionorm_search_keys(id INTEGER PRIMARY KEY,
  "messageId" TEXT UNIQUE)` (an explicit integer survives VACUUM; `thread_messages`' rowid
  does not) and kept by triggers on `thread_messages`:
  - `regular`: an FTS5 table with its own copy of the text;
  - `external`: FTS5 with external content, read through a view joining keys and messages.
  For each: build time (keys, then the text in batches of 20,000; longest batch = the
  longest write lock), size, ranked top-20 with `snippet()` (bm25 over every match, and over
  the newest 5,000 matches only, then `snippet()` for those 20), count, one append with and
  without the triggers, and whether `DROP TABLE sessions` (the app's rebuild, foreign keys on)
  still works.
- **PostgreSQL designs** (`--server`: a URL whose user may CREATE DATABASE): the corpus copied
  with `sessionorm copy`, then `expression` (GIN on `to_tsvector('simple', content)`) and
  `stored` (a side table of tsvectors keyed by message id, GIN on it): build time, size,
  ranked top-20 with `ts_headline`, count.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KEYS, FTS = "sessionorm_search_keys", "sessionorm_search"
NOW = "2025-01-01T00:00:00.000Z"
INSERT_MESSAGE = (
    'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx) VALUES (?, ?, ?, ?, ?, ?)'
)
BATCH = 20_000

SQLITE_DESIGNS = {
    "regular": [
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(content, tokenize='unicode61 remove_diacritics 2')",
        f"""CREATE TRIGGER {FTS}_delete AFTER DELETE ON thread_messages BEGIN
          DELETE FROM {FTS} WHERE rowid = (SELECT id FROM {KEYS} WHERE "messageId" = old.id);
          DELETE FROM {KEYS} WHERE "messageId" = old.id; END""",
    ],
    "external": [
        f"CREATE VIEW {FTS}_text AS SELECT k.id AS id, m.content AS content FROM {KEYS} k"
        ' JOIN thread_messages m ON m.id = k."messageId"',
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(content, content='{FTS}_text', content_rowid='id',"
        " tokenize='unicode61 remove_diacritics 2')",
        f"""CREATE TRIGGER {FTS}_delete AFTER DELETE ON thread_messages BEGIN
          INSERT INTO {FTS} ({FTS}, rowid, content) SELECT 'delete', id, old.content FROM {KEYS}
            WHERE "messageId" = old.id;
          DELETE FROM {KEYS} WHERE "messageId" = old.id; END""",
    ],
}
COMMON_DDL = [
    f'CREATE TABLE {KEYS} (id INTEGER PRIMARY KEY, "messageId" TEXT NOT NULL UNIQUE)',
    f"""CREATE TRIGGER {FTS}_insert AFTER INSERT ON thread_messages BEGIN
      INSERT INTO {KEYS} ("messageId") VALUES (new.id);
      INSERT INTO {FTS} (rowid, content) VALUES (last_insert_rowid(), new.content); END""",
]


# -- the corpus -------------------------------------------------------------------------------


def made_up_words(n: int, rng: random.Random) -> list[str]:
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words, key=lambda w: (len(w), w))


def make_corpus(path: Path, messages: int, seed: int = 25) -> None:
    from sessionorm import SessionStore, rollback

    with SessionStore(path):
        pass
    rollback(path)  # without sessionorm's own search index (migration 7): the designs add theirs
    rng = random.Random(seed)
    vocab = made_up_words(30_000, rng)
    cumulative = list(itertools.accumulate(1 / (i + 1) ** 1.07 for i in range(len(vocab))))
    total = cumulative[-1]
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    session = str(uuid.uuid4())
    con.execute(
        "INSERT INTO sessions (id, name, ampPrompt, repoRoot, baseBranch, branchName, worktreePath, status,"
        " createdAt) VALUES (?, 'search bench', 'p', '/r', 'main', 'b', '/w', 'idle', ?)",
        (session, NOW),
    )
    for t in range(max(1, messages // 100)):
        thread = f"T-{uuid.uuid4()}"
        con.execute(
            'INSERT INTO threads (id, "sessionId", name, "createdAt", "updatedAt", status)'
            " VALUES (?, ?, ?, ?, ?, 'active')",
            (thread, session, f"thread {t}", NOW, NOW),
        )
        rows = []
        for i in range(min(100, messages - t * 100)):
            n = min(80, max(5, int(rng.lognormvariate(3.0, 0.6))))
            words = [vocab[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(n)]
            rows.append((str(uuid.uuid4()), thread, ("user", "assistant")[i % 2], " ".join(words), NOW, i))
        con.executemany(
            INSERT_MESSAGE,
            rows,
        )
    con.execute("COMMIT")
    con.close()


# -- SQLite -----------------------------------------------------------------------------------


def median_ms(run, n: int = 7) -> float:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


def build_sqlite(design: str, corpus: Path, workdir: Path) -> tuple[Path, dict]:
    path = workdir / f"search-{design}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(corpus, path)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    before = os.path.getsize(path)
    for sql in COMMON_DDL + SQLITE_DESIGNS[design]:
        con.execute(sql)
    began = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.execute(f'INSERT INTO {KEYS} ("messageId") SELECT id FROM thread_messages ORDER BY rowid')
    con.execute("COMMIT")
    keys_s = time.perf_counter() - began
    last = con.execute(f"SELECT max(id) FROM {KEYS}").fetchone()[0]
    fill = (
        f"INSERT INTO {FTS} (rowid, content) SELECT k.id, m.content FROM {KEYS} k"
        ' JOIN thread_messages m ON m.id = k."messageId" WHERE k.id > ? AND k.id <= ?'
    )
    longest, began = 0.0, time.perf_counter()
    for low in range(0, last, BATCH):
        start = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute(fill, (low, low + BATCH))
        con.execute("COMMIT")
        longest = max(longest, time.perf_counter() - start)
    text_s = time.perf_counter() - began
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path, {
        "keys_s": keys_s,
        "text_s": text_s,
        "longest_batch_ms": longest * 1000,
        "added_mib": (os.path.getsize(path) - before) / 2**20,
        "file_mib": before / 2**20,
    }


def pick_queries(path: Path, messages: int) -> list[tuple[str, str]]:
    """(label, FTS5 query): words at about these fractions of the messages, and combinations."""
    con = sqlite3.connect(path)
    con.execute(f"CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, {FTS}, 'row')")
    rows = con.execute("SELECT term, doc FROM temp.vocab").fetchall()
    con.close()
    queries = []
    picked = []
    for fraction in (0.0001, 0.001, 0.01, 0.1, 0.4):
        term, docs = min(rows, key=lambda r: abs(r[1] - fraction * messages))
        picked.append(term)
        queries.append((f"word in {docs / messages:.2%}", term))
    queries.append(("two words (1%, 10%)", f"{picked[2]} {picked[3]}"))
    queries.append(("phrase (40% 10%)", f'"{picked[4]} {picked[3]}"'))
    queries.append(("OR (0.1% | 1%)", f"{picked[1]} OR {picked[2]}"))
    return queries


def sqlite_queries(path: Path, queries: list[tuple[str, str]]) -> list[dict]:
    con = sqlite3.connect(path)
    full = (
        f"SELECT m.id, m.\"threadId\", m.role, snippet({FTS}, 0, '[', ']', '…', 12), bm25({FTS})"
        f' FROM {FTS} JOIN {KEYS} k ON k.id = {FTS}.rowid JOIN thread_messages m ON m.id = k."messageId"'
        f" WHERE {FTS} MATCH ? ORDER BY rank LIMIT 20"
    )
    window = (
        f"SELECT id FROM (SELECT rowid AS id, bm25({FTS}) AS r FROM {FTS} WHERE {FTS} MATCH ?"
        " ORDER BY rowid DESC LIMIT 5000) ORDER BY r LIMIT 20"
    )

    def bounded(query: str) -> list:
        ids = [r[0] for r in con.execute(window, (query,))]
        marks = ",".join("?" * len(ids))
        return con.execute(
            f"SELECT m.id, snippet({FTS}, 0, '[', ']', '…', 12) FROM {FTS}"
            f' JOIN {KEYS} k ON k.id = {FTS}.rowid JOIN thread_messages m ON m.id = k."messageId"'
            f" WHERE {FTS} MATCH ? AND {FTS}.rowid IN ({marks})",
            (query, *ids),
        ).fetchall()

    count = f"SELECT count(*) FROM {FTS} WHERE {FTS} MATCH ?"
    out = []
    for label, query in queries:
        hits = con.execute(count, (query,)).fetchone()[0]
        out.append(
            {
                "query": label,
                "hits": hits,
                "top20_bm25_ms": median_ms(lambda q=query: con.execute(full, (q,)).fetchall(), 3),
                "top20_newest5000_ms": median_ms(lambda q=query: bounded(q)),
                "count_ms": median_ms(lambda q=query: con.execute(count, (q,)).fetchone()),
            }
        )
    con.close()
    return out


def append_us(path: Path, with_triggers: bool) -> float:
    """One append (next idx, insert, touch the thread) per transaction, as the store does it;
    without the triggers: on a copy of the file from which they were dropped."""
    if not with_triggers:
        bare = path.with_name(path.name + ".bare")
        shutil.copyfile(path, bare)
        with sqlite3.connect(bare) as con:
            for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                con.execute(f"DROP TRIGGER {name}")
        try:
            return append_us(bare, True)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{bare}{suffix}").unlink(missing_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    thread = con.execute("SELECT id FROM threads LIMIT 1").fetchone()[0]
    samples = []
    for _ in range(300):
        began = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        idx = con.execute(
            'SELECT coalesce(max(idx), -1) + 1 FROM thread_messages WHERE "threadId" = ?', (thread,)
        ).fetchone()[0]
        con.execute(
            INSERT_MESSAGE,
            (str(uuid.uuid4()), thread, "user", "an appended message about the login bug", NOW, idx),
        )
        con.execute('UPDATE threads SET "updatedAt" = ? WHERE id = ?', (NOW, thread))
        con.execute("COMMIT")
        samples.append(time.perf_counter() - began)
    con.close()
    return statistics.median(samples) * 1e6


def drop_sessions_works(design: str, workdir: Path) -> str:
    """The oldest app's rebuild drops `sessions` with foreign keys on: does it still run?"""
    path = workdir / f"drop-{design}.db"
    path.unlink(missing_ok=True)
    make_corpus(path, 200)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA foreign_keys=ON")
    for sql in COMMON_DDL + SQLITE_DESIGNS[design]:
        con.execute(sql)
    con.execute(f'INSERT INTO {KEYS} ("messageId") SELECT id FROM thread_messages')
    con.execute(
        f"INSERT INTO {FTS} ({FTS}) VALUES ('rebuild')"
        if design == "external"
        else f"INSERT INTO {FTS} (rowid, content) SELECT k.id, m.content FROM {KEYS} k"
        ' JOIN thread_messages m ON m.id = k."messageId"'
    )
    con.execute("BEGIN")
    try:
        con.execute("DROP TABLE sessions")
        result = "DROP TABLE sessions runs (and cascades)"
    except sqlite3.Error as exc:
        result = f"DROP TABLE sessions fails: {exc}"
    con.execute("ROLLBACK")
    con.close()
    return result


# -- PostgreSQL -------------------------------------------------------------------------------


def postgres(server: str, corpus: Path, queries: list[tuple[str, str]], messages: int) -> None:
    import psycopg

    name = f"sessionorm_bench_search_{messages}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    url = urllib.parse.urlsplit(server)._replace(path=f"/{name}").geturl()
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sessionorm", "copy", "--from", str(corpus), "--to", url],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    print(f"\nPostgreSQL: corpus copied in {time.perf_counter() - began:.1f} s")
    web = [(label, to_websearch(q)) for label, q in queries]
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("SET maintenance_work_mem = '256MB'")
        designs = {
            "expression": (
                ["CREATE INDEX search_expr ON thread_messages USING gin (to_tsvector('simple', content))"],
                "thread_messages",
                "to_tsvector('simple', content)",
                "id",
                "search_expr",
            ),
            "stored": (
                [
                    "CREATE TABLE search_docs AS SELECT id AS message_id,"
                    " to_tsvector('simple', content) AS doc FROM thread_messages",
                    "ALTER TABLE search_docs ADD PRIMARY KEY (message_id)",
                    "CREATE INDEX search_docs_doc ON search_docs USING gin (doc)",
                ],
                "search_docs",
                "doc",
                "message_id",
                "search_docs",
            ),
        }
        for design, (ddl, table, doc, key, sized) in designs.items():
            began = time.perf_counter()
            for sql in ddl:
                con.execute(sql)
            con.execute(f"ANALYZE {table}")
            build = time.perf_counter() - began
            size = con.execute("SELECT pg_total_relation_size(%s)", (sized,)).fetchone()[0] / 2**20
            print(f"  {design}: built in {build:.1f} s, {size:.0f} MiB")
            top = (
                "SELECT m.id,"
                " ts_headline('simple', m.content, s.q, 'StartSel=[,StopSel=],MaxWords=12,MinWords=4'),"
                f" s.r FROM (SELECT {key} AS id, q, ts_rank({doc}, q) AS r FROM {table},"
                f" websearch_to_tsquery('simple', %s) q WHERE {doc} @@ q ORDER BY r DESC LIMIT 20) s"
                " JOIN thread_messages m ON m.id = s.id ORDER BY s.r DESC"
            )
            count = f"SELECT count(*) FROM {table} WHERE {doc} @@ websearch_to_tsquery('simple', %s)"
            for label, query in web:
                hits = con.execute(count, (query,)).fetchone()[0]
                top_ms = median_ms(lambda q=query, sql=top: con.execute(sql, (q,)).fetchall(), 3)
                count_ms = median_ms(lambda q=query, sql=count: con.execute(sql, (q,)).fetchone(), 3)
                print(f"    {label:<22} {hits:>9,} hits  top-20 {top_ms:8.1f} ms  count {count_ms:7.1f} ms")
            for sql in ("DROP INDEX IF EXISTS search_expr", "DROP TABLE IF EXISTS search_docs"):
                con.execute(sql)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")


def to_websearch(fts5: str) -> str:
    return fts5.replace(" OR ", " or ")


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sessionorm-bench-search"))
    parser.add_argument("--server", default=os.environ.get("SESSIONORM_TEST_PG_URL"))
    parser.add_argument("--only", default="regular,external,postgresql")
    args = parser.parse_args()
    only = set(args.only.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.workdir / f"corpus-{args.messages}.db"
    if not corpus.exists():
        began = time.perf_counter()
        make_corpus(corpus, args.messages)
        print(f"corpus: {args.messages:,} messages made in {time.perf_counter() - began:.1f} s")
    queries: list[tuple[str, str]] = []
    for design in ("regular", "external"):
        if design not in only:
            continue
        path, built = build_sqlite(design, corpus, args.workdir)
        queries = queries or pick_queries(path, args.messages)
        print(
            f"\nSQLite {design}: keys {built['keys_s']:.1f} s, text {built['text_s']:.1f} s"
            f" (longest batch {built['longest_batch_ms']:.0f} ms), +{built['added_mib']:.0f} MiB"
            f" on {built['file_mib']:.0f} MiB"
        )
        for row in sqlite_queries(path, queries):
            print(
                f"    {row['query']:<22} {row['hits']:>9,} hits  top-20 bm25 {row['top20_bm25_ms']:8.1f} ms"
                f"  newest-5000 {row['top20_newest5000_ms']:6.1f} ms  count {row['count_ms']:6.1f} ms"
            )
        print(
            f"    append: {append_us(path, True):.0f} µs with the triggers,"
            f" {append_us(path, False):.0f} µs without"
        )
        print(f"    the app's rebuild: {drop_sessions_works(design, args.workdir)}")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    if "postgresql" in only and args.server:
        if not queries:
            path, _ = build_sqlite("external", corpus, args.workdir)
            queries = pick_queries(path, args.messages)
        postgres(args.server, corpus, queries, args.messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
