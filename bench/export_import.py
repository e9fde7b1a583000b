"""`sessionorm export` and `sessionorm import` against raw sqlite3 loops doing the same (issue 26).

    python bench/export_import.py [--messages 1000000] [--corpus FILE.db] [--workdir DIR] [--runs 3]

- export: `python -m sessionorm export --db-path source.db -o out.jsonl` against `raw-export`
  below (sqlite3 in one read transaction, the same queries and order, one `json.dumps` per
  record): the two files must be the same bytes.
- import: `python -m sessionorm import out.jsonl --db-path target.db` into a copy of an empty
  migrated file, against `raw-import` below (`json.loads` per line, `executemany` in batches of
  5,000 into the same schema — the search index's triggers included — in one transaction, with
  sessionorm's page cache and foreign keys on, as sessionorm runs). Both must end with the
  same row counts.

Each is a whole process (Python's start included); runs alternate (raw, sessionorm, …) and the
table gives medians, their ratio (target ≤ 1.5×) and each side's peak RSS (`ru_maxrss` from
`os.wait4`; target ≤ 100 MB for sessionorm). The input: `--corpus` (default
/tmp/sbench/corpus-1000000.db, made by bench/search_designs.py), copied into `--workdir` and
migrated there once by `sessionorm migrate` (kept for later runs; never modified).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
RATIO, RSS_MB = 1.5, 100
BATCH = 5_000
CACHE = -16384  # sessionorm.backends.sqlite.BULK_PRAGMAS
sys.path.insert(0, str(BENCH_DIR))

from copy_run import run as measured_run  # noqa: E402


def run(cmd: list[str]) -> tuple[float, float]:
    """Run `cmd` to completion as `copy_run` does: (wall seconds, peak RSS in MB)."""
    seconds, rss, _cpu = measured_run(cmd)
    return seconds, rss


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the raw loops ---------------------------------------------------------------------------


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def raw_export(source: str, dest: str) -> None:
    """The export's JSONL with plain sqlite3: the same queries, order and bytes."""
    con = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    con.execute("BEGIN")
    counts = dict.fromkeys(("sessions", "threads", "agent_sessions", "messages", "agent_items"), 0)

    def shaped(cursor: sqlite3.Cursor, extra: int = 0) -> list[str]:
        names = [d[0] for d in cursor.description]
        return names[: len(names) - extra]

    with open(dest, "w", encoding="utf-8", newline="\n") as out:
        write = out.write
        write(dumps({"format": "sessionorm-export", "version": 1}) + "\n")
        sessions = con.execute('SELECT * FROM sessions ORDER BY "createdAt", id')
        names = shaped(sessions)
        for row in sessions:
            session = dict(sorted(zip(names, row, strict=True)))
            write(dumps({"session": session}) + "\n")
            counts["sessions"] += 1
            agents_cursor = con.execute(
                'SELECT * FROM sessionorm_agent_sessions WHERE "sessionId" = ?', (session["id"],)
            )
            agent_names = shaped(agents_cursor)
            agents = {
                a["threadId"]: a
                for a in (dict(sorted(zip(agent_names, r, strict=True))) for r in agents_cursor)
            }
            threads = con.execute(
                'SELECT * FROM threads WHERE "sessionId" = ? ORDER BY "createdAt", id', (session["id"],)
            )
            thread_names = shaped(threads)
            for thread_row in threads:
                thread = dict(sorted(zip(thread_names, thread_row, strict=True)))
                write(dumps({"thread": thread}) + "\n")
                counts["threads"] += 1
                if thread["id"] in agents:
                    write(dumps({"agent_session": agents[thread["id"]]}) + "\n")
                    counts["agent_sessions"] += 1
                messages = con.execute(
                    "SELECT m.*, i.item FROM thread_messages m LEFT JOIN sessionorm_agent_items i"
                    ' ON i."messageId" = m.id WHERE m."threadId" = ? ORDER BY m.idx',
                    (thread["id"],),
                )
                message_names = shaped(messages, 1)
                order = sorted(range(len(message_names)), key=message_names.__getitem__)
                keys = [message_names[i] for i in order]
                for m in messages:
                    message = dict(zip(keys, [m[i] for i in order], strict=True))
                    counts["messages"] += 1
                    if m[-1] is None:
                        write(dumps({"message": message}) + "\n")
                    else:
                        write(dumps({"message": message, "agent_item": m[-1]}) + "\n")
                        counts["agent_items"] += 1
        write(dumps({"end": counts}) + "\n")
    con.execute("ROLLBACK")
    con.close()


TABLES = {
    "session": "sessions",
    "thread": "threads",
    "agent_session": "sessionorm_agent_sessions",
    "message": "thread_messages",
}


def raw_import(source: str, dest: str) -> None:
    """The same rows into the same schema with `executemany`, one transaction, no checks."""
    con = sqlite3.connect(dest, isolation_level=None)
    con.execute(f"PRAGMA cache_size = {CACHE}")
    con.execute("PRAGMA foreign_keys = ON")
    con.execute("BEGIN IMMEDIATE")
    pending: dict[str, list] = {kind: [] for kind in TABLES}
    items: list[tuple] = []
    columns: dict[str, tuple] = {}

    def flush() -> None:
        for kind, table in TABLES.items():
            rows = pending[kind]
            if rows:
                names = columns[kind]
                marks = ", ".join("?" * len(names))
                cols = ", ".join(f'"{c}"' for c in names)
                con.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
                rows.clear()
        if items:
            con.executemany('INSERT INTO sessionorm_agent_items ("messageId", item) VALUES (?, ?)', items)
            items.clear()

    n = 0
    with open(source, "rb") as lines:
        next(lines)  # the header
        for line in lines:
            record = json.loads(line)
            for kind in TABLES:
                row = record.get(kind)
                if row is not None:
                    columns.setdefault(kind, tuple(row))
                    pending[kind].append(tuple(row.values()))
                    if kind == "message" and "agent_item" in record:
                        items.append((row["id"], record["agent_item"]))
                    n += 1
                    if n % BATCH == 0:
                        flush()
                    break
    flush()
    con.execute("COMMIT")
    con.close()


# -- the bench -------------------------------------------------------------------------------


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def counts(path: Path) -> tuple[int, ...]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = (
            "sessions",
            "threads",
            "thread_messages",
            "sessionorm_agent_items",
            "sessionorm_search_keys",
        )
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)
    finally:
        con.close()


def prepared(args: argparse.Namespace) -> tuple[Path, Path]:
    """The migrated source and an empty migrated file, made once in the work folder."""
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"source-{args.messages}.db"
    if not source.exists():
        corpus = Path(args.corpus)
        if not corpus.exists():
            raise SystemExit(f"no corpus {corpus}: make one with bench/search_designs.py")
        log(f"copying {corpus} and migrating the copy …")
        partial = work / f".{source.name}.partial"
        shutil.copyfile(corpus, partial)
        subprocess.run(
            [sys.executable, "-m", "sessionorm", "migrate", "--db-path", str(partial)], env=ENV, check=True
        )
        partial.rename(source)
    empty = work / "empty.db"
    if not empty.exists():
        subprocess.run(
            [sys.executable, "-m", "sessionorm", "migrate", "--db-path", str(empty)], env=ENV, check=True
        )
    return source, empty


def median(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="the corpus's size (names the copy)")
    parser.add_argument("--corpus", default="/tmp/sbench/corpus-1000000.db")
    parser.add_argument("--workdir", default="/tmp/sessionorm-bench-export")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    source, empty = prepared(args)
    work = Path(args.workdir)
    me = str(Path(__file__).resolve())
    results: dict[str, dict[str, list[float]]] = {
        "export": {"raw": [], "orm": [], "raw_rss": [], "orm_rss": []},
        "import": {"raw": [], "orm": [], "raw_rss": [], "orm_rss": []},
    }
    expected = counts(source)
    raw_out, orm_out = work / "raw.jsonl", work / "orm.jsonl"
    for n in range(args.runs):
        for side in ("raw", "orm"):
            (raw_out if side == "raw" else orm_out).unlink(missing_ok=True)
            if side == "raw":
                cmd = [sys.executable, me, "raw-export", str(source), str(raw_out)]
            else:
                cmd = [
                    sys.executable,
                    "-m",
                    "sessionorm",
                    "export",
                    "--db-path",
                    str(source),
                    "-o",
                    str(orm_out),
                ]
            seconds, rss = run(cmd)
            results["export"][side].append(seconds)
            results["export"][f"{side}_rss"].append(rss)
            log(f"export run {n + 1} {side}: {seconds:.2f} s, {rss:.0f} MB")
        if digest(raw_out) != digest(orm_out):
            raise RuntimeError("sessionorm export and the raw loop wrote different bytes")
        for side in ("raw", "orm"):
            target = work / f"import-{side}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(empty, target)
            if side == "raw":
                cmd = [sys.executable, me, "raw-import", str(raw_out), str(target)]
            else:
                cmd = [sys.executable, "-m", "sessionorm", "import", str(orm_out), "--db-path", str(target)]
            seconds, rss = run(cmd)
            results["import"][side].append(seconds)
            results["import"][f"{side}_rss"].append(rss)
            got = counts(target)
            if got != expected:
                raise RuntimeError(f"{side} import holds {got}, the source {expected}")
            log(f"import run {n + 1} {side}: {seconds:.2f} s, {rss:.0f} MB")
    size = orm_out.stat().st_size / 1e6
    print(
        f"{expected[2]:,} messages, {expected[1]:,} threads; the JSONL: {size:,.0f} MB; "
        f"medians of {args.runs}"
    )
    print("| step | sessionorm | raw | ratio | peak RSS sessionorm / raw | target |")
    print("|---|---|---|---|---|---|")
    ok = True
    for step, r in results.items():
        ratio = median(r["orm"]) / median(r["raw"])
        rss = max(r["orm_rss"])
        ok = ok and ratio <= RATIO and rss <= RSS_MB
        print(
            f"| {step} | {median(r['orm']):.2f} s | {median(r['raw']):.2f} s | {ratio:.2f}× "
            f"| {rss:.0f} MB / {max(r['raw_rss']):.0f} MB | ≤ {RATIO}×, ≤ {RSS_MB} MB |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "raw-export":
        raw_export(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "raw-import":
        raw_import(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
