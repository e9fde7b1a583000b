"""Why a count of a very common word cannot take ≤ 5 ms at a million messages (issue 25).

    python bench/search_counts.py [--workdir DIR] [--messages 1000000]

Runs on the indexed file `bench/search_run.py` leaves in `--workdir` (`search-run.db`), copied
first. Every design that can answer an arbitrary word exactly walks the word's list of
documents; the script times each one on the same words and prints its cost per match:

- `store.count_matches` as shipped (FTS5, detail=full, external content);
- the same FTS5 query after `'optimize'` (one segment instead of many);
- contentless FTS5 tables with `detail=column` and `detail=none` (smaller lists, no positions);
- `fts5vocab` 'row' (`doc` of one term);
- the match counted in two halves of the key range on two connections in two threads;
- with a 1 GiB page cache and memory-mapped I/O (whether it waits on I/O at all).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from search_designs import median_ms  # noqa: E402

from sessionorm import SessionStore  # noqa: E402

SEARCH = "sessionorm_search"


def words(con: sqlite3.Connection, messages: int) -> list[tuple[str, int]]:
    """Words in about 10%, 20%, 40% and 90% of the messages, with their document counts."""
    con.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, {SEARCH}, 'row')")
    rows = con.execute("SELECT term, doc FROM temp.vocab").fetchall()
    return [min(rows, key=lambda r: abs(r[1] - f * messages)) for f in (0.1, 0.2, 0.4, 0.9)]


def count_sql(table: str) -> str:
    return f"SELECT count(*) FROM {table} WHERE {table} MATCH ?"


def timed(con: sqlite3.Connection, table: str, picked: list[tuple[str, int]]) -> dict[str, float]:
    """Median ms of counting each word with one FTS5 statement on `table`."""
    return {w: median_ms(lambda w=w: con.execute(count_sql(table), (w,)).fetchone(), 9) for w, _ in picked}


def halves(path: Path, word: str, last: int) -> int:
    """The count as two key ranges on two connections at once (sqlite3 releases the GIL)."""
    cons = [sqlite3.connect(path, check_same_thread=False) for _ in range(2)]
    middle = last // 2
    ranges = [(0, middle), (middle + 1, last)]

    def part(n: int) -> int:
        low, high = ranges[n]
        sql = f"{count_sql(SEARCH)} AND rowid BETWEEN ? AND ?"
        return cons[n].execute(sql, (word, low, high)).fetchone()[0]

    with ThreadPoolExecutor(2) as pool:
        total = sum(pool.map(part, range(2)))
    for con in cons:
        con.close()
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sessionorm-bench-search"))
    args = parser.parse_args()
    source = args.workdir / "search-run.db"
    if not source.exists():
        sys.exit(f"{source} is missing: run bench/search_run.py --workdir {args.workdir} first")
    path = args.workdir / "search-counts.db"
    shutil.copyfile(source, path)
    con = sqlite3.connect(path)
    picked = words(con, args.messages)
    last = con.execute(f"SELECT max(id) FROM {SEARCH}_keys").fetchone()[0]
    designs: dict[str, dict[str, float]] = {}

    with SessionStore(path, readonly=True) as store:
        designs["store.count_matches (shipped)"] = {
            w: median_ms(lambda w=w: store.count_matches(w), 9) for w, _ in picked
        }
    designs["FTS5 detail=full, raw statement"] = timed(con, SEARCH, picked)
    designs["two halves, two threads"] = {
        w: median_ms(lambda w=w: halves(path, w, last), 9) for w, _ in picked
    }
    big = sqlite3.connect(path)
    big.execute("PRAGMA cache_size = -1048576")
    big.execute("PRAGMA mmap_size = 1073741824")
    designs["1 GiB cache + mmap"] = timed(big, SEARCH, picked)
    big.close()
    designs["fts5vocab 'row' doc"] = {
        w: median_ms(lambda w=w: con.execute("SELECT doc FROM temp.vocab WHERE term = ?", (w,)).fetchone(), 9)
        for w, _ in picked
    }
    con.execute(f"INSERT INTO {SEARCH} ({SEARCH}) VALUES ('optimize')")
    con.commit()
    designs["FTS5 detail=full, optimized"] = timed(con, SEARCH, picked)
    for detail in ("column", "none"):
        table = f"counts_{detail}"
        con.execute(
            f"CREATE VIRTUAL TABLE {table} USING fts5(content, content='', detail={detail}, columnsize=0)"
        )
        con.execute(
            f"INSERT INTO {table} (rowid, content) SELECT k.id, m.content FROM {SEARCH}_keys k"
            ' JOIN thread_messages m ON m.id = k."messageId"'
        )
        con.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")
        con.commit()
        designs[f"contentless detail={detail}, optimized"] = timed(con, table, picked)
    con.close()
    path.unlink()

    header = "".join(f" | {w} ({docs / args.messages:.0%})" for w, docs in picked)
    print(f"\nCount of one word at {args.messages:,} messages, ms (median of 9); ns per match\n")
    print(f"| design{header} | ns/match |")
    print("|---" * (len(picked) + 2) + "|")
    for name, times in designs.items():
        cells = "".join(f" | {times[w]:.1f}" for w, _ in picked)
        per_match = sum(times.values()) * 1e6 / sum(docs for _, docs in picked)
        print(f"| {name}{cells} | {per_match:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
