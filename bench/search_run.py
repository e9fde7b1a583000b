"""sessionorm's search at a million messages (issue 25): build, size, queries, counts, appends.

    python bench/search_run.py [--messages 1000000] [--workdir DIR] [--server URL]

- **The corpus** is `bench/search_designs.py`'s (Zipf words, made once in `--workdir`): a file
  at migration 6, without the search index.
- **Build:** `sessionorm migrate` on a copy (migration 7, then the batched build), whole
  process; the file's growth.
- **Queries** as a user makes them: `store.search(q)` (top 20, with snippets; each hit's
  message id, role, content and snippet read) and `store.count_matches(q)`, for words in
  about 0.01%, 0.1%, 1%, 10% and 40% of the messages, two words, a phrase and an OR
  (targets: ≤ 50 ms and ≤ 5 ms).
- **Append:** `store.add_thread_message`, one transaction each, against raw sqlite3 doing the
  same statements on the same schema (triggers included), alternating (target ≤ 2.0×).
- **PostgreSQL** (`--server`: a URL whose user may CREATE DATABASE): the corpus copied there
  with `sessionorm copy` (its triggers index it as it loads), then the same queries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from search_designs import INSERT_MESSAGE, NOW, make_corpus, median_ms  # noqa: E402

from sessionorm import SessionStore  # noqa: E402


def pick_queries(path: Path, messages: int) -> list[tuple[str, str]]:
    con = sqlite3.connect(path)
    con.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, sessionorm_search, 'row')")
    rows = con.execute("SELECT term, doc FROM temp.vocab").fetchall()
    con.close()
    picked, queries = [], []
    for fraction in (0.0001, 0.001, 0.01, 0.1, 0.4):
        term, docs = min(rows, key=lambda r: abs(r[1] - fraction * messages))
        picked.append(term)
        queries.append((f"word in {docs / messages:.2%}", term))
    queries += [
        ("two words (1%, 10%)", f"{picked[2]} {picked[3]}"),
        ("phrase (40% 10%)", f'"{picked[4]} {picked[3]}"'),
        ("OR (0.1% | 1%)", f"{picked[1]} OR {picked[2]}"),
    ]
    return queries


def read_hits(store: SessionStore, query: str) -> int:
    return sum(
        len(h.message.id) + len(h.message.role) + len(h.message.content) + len(h.snippet)
        for h in store.search(query)
    )


def queries_table(store: SessionStore, queries: list[tuple[str, str]]) -> None:
    for label, query in queries:
        hits = store.count_matches(query)
        top = median_ms(lambda q=query: read_hits(store, q), 9)
        count = median_ms(lambda q=query: store.count_matches(q), 9)
        print(f"    {label:<22} {hits:>9,} hits  top-20 with snippets {top:7.1f} ms  count {count:6.1f} ms")


def appends(path: Path, n: int = 400) -> tuple[float, float]:
    """Median µs of one append: the store's, and raw sqlite3's same statements, alternating."""
    with SessionStore(path) as store:
        thread = store.get_session_threads(store.list_sessions(limit=1)[0].id)[0].id
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA busy_timeout=5000")
    store = SessionStore(path)
    ours, floor = [], []
    for i in range(n):
        began = time.perf_counter()
        store.add_thread_message(thread, "user", f"an appended message about the login bug {i}")
        ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        raw.execute("BEGIN IMMEDIATE")
        idx = raw.execute(
            'SELECT (SELECT coalesce(max(idx), -1) + 1 FROM thread_messages WHERE "threadId" = ?)'
            " FROM threads WHERE id = ?",
            (thread, thread),
        ).fetchone()[0]
        raw.execute(
            INSERT_MESSAGE,
            (str(uuid.uuid4()), thread, "user", f"an appended message about the login bug {i}", NOW, idx),
        )
        raw.execute('UPDATE threads SET "updatedAt" = ? WHERE id = ?', (NOW, thread))
        raw.execute("COMMIT")
        floor.append(time.perf_counter() - began)
    store.close()
    raw.close()
    return statistics.median(ours) * 1e6, statistics.median(floor) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sessionorm-bench-search"))
    parser.add_argument("--server", default=os.environ.get("SESSIONORM_TEST_PG_URL"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.workdir / f"corpus-{args.messages}.db"
    if not corpus.exists():
        make_corpus(corpus, args.messages)
    path = args.workdir / "search-run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(corpus, path)
    before = os.path.getsize(path)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sessionorm", "migrate", "--db-path", str(path)], check=True)
    build = time.perf_counter() - began
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(
        f"\nSQLite, {args.messages:,} messages: `sessionorm migrate` with the index build {build:.1f} s,"
        f" the file {before / 2**20:.0f} MiB -> {os.path.getsize(path) / 2**20:.0f} MiB"
    )
    queries = pick_queries(path, args.messages)
    with SessionStore(path, readonly=True) as store:
        queries_table(store, queries)
    ours, floor = appends(path)
    print(f"    append: store {ours:.0f} µs, raw sqlite3 {floor:.0f} µs, {ours / floor:.2f}x")
    if args.server:
        import psycopg

        name = f"sessionorm_bench_search_run_{args.messages}"
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
        url = urllib.parse.urlsplit(args.server)._replace(path=f"/{name}").geturl()
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sessionorm", "copy", "--from", str(path), "--to", url],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        copied = time.perf_counter() - began
        print(f"\nPostgreSQL: copied (its triggers index every message as it loads) in {copied:.1f} s")
        with SessionStore(url=url, readonly=True) as store:
            queries_table(store, queries)
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
