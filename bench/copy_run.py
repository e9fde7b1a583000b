"""`sessionorm copy` against the raw pipelines of bench/raw_copy.py, in the same run (issues 15, 22).

    python bench/copy_run.py --server postgresql://postgres@127.0.0.1:5432/postgres \\
        [--legacy legacy-1000000.db | --sessions 1000000] [--workdir DIR] [--runs 3]
        [--only to-pg,to-sqlite] [--json results.json]

- to-pg: `python -m sessionorm copy --from migrated.db --to postgresql://…` against
  `raw_copy.py to-pg` (sqlite3 reads in key order, psycopg binary COPY into bare tables, then
  keys, indexes and foreign keys), each a whole process into a freshly created database.
- to-sqlite: `sessionorm copy --from postgresql://… --to new.db` against `raw_copy.py
  to-sqlite` (psycopg COPY TO, sqlite3 executemany, indexes after), each into a new file.

Runs alternate (raw, sessionorm, raw, …) so that the machine's drift hits both; the table
gives the medians, their ratio (target ≤ 1.25×), client CPU seconds and sessionorm's peak RSS
(`ru_maxrss` from
`os.wait4`, target ≤ 150 MB). Every run's result is checked: same row counts as the source.

The input: a legacy file (`--legacy`, copied, never modified; else bench/legacy_gen.py makes
one of `--sessions`) migrated once by `sessionorm migrate` into `--workdir` and kept there;
the PostgreSQL source for to-sqlite is made once from it with `sessionorm copy` and kept as
the database `sessionorm_bench_copy_source_<N>` (`--drop` removes it). The server URL
defaults to `$SESSIONORM_TEST_PG_URL`; its user must be allowed to CREATE DATABASE.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# This checkout's sessionorm in every process started here, whatever is installed.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
PREFIX = "sessionorm_bench_copy"
RATIO, RSS_MB = 1.25, 150  # issue 22: ≤ 1.25× the raw floor


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def admin(server: str):
    import psycopg

    return psycopg.connect(server, autocommit=True, prepare_threshold=None)


def fresh_database(server: str, name: str) -> str:
    with admin(server) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return with_database(server, name)


def drop_database(server: str, name: str) -> None:
    with admin(server) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(cmd: list[str]) -> tuple[float, float, float]:
    """Run `cmd` to completion: (wall seconds, peak RSS in MB, CPU seconds of that process)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        cmd, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # Linux: kilobytes


# SQLite's parts of the search index: only `sessionorm_search` (one row per message indexed) is
# compared, on both engines; FTS5's segment tables depend on how the index was built.
SEARCH_PARTS = {
    f"sessionorm_search_{part}" for part in ("keys", "data", "idx", "docsize", "config", "content")
}


def table_counts(con, names_sql: str) -> dict[str, int]:
    """Rows of every table `names_sql` lists (a sqlite3 or psycopg connection)."""
    names = [r[0] for r in con.execute(names_sql) if r[0] not in SEARCH_PARTS]
    return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in names}


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows of every table (sessionorm's and the legacy file's)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return table_counts(
            con, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        )
    finally:
        con.close()


def pg_counts(url: str) -> dict[str, int]:
    with admin(url) as con:
        return table_counts(
            con, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )


def migrated_input(args: argparse.Namespace) -> Path:
    """The migrated source file, made once in the workdir and kept."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.legacy:
        n = sqlite_counts_legacy(Path(args.legacy))
        legacy = Path(args.legacy)
    else:
        n, legacy = args.sessions, workdir / f"legacy-{args.sessions}.db"
    migrated = workdir / f"migrated-{n}.db"
    done = workdir / f"migrated-{n}.ok"
    if migrated.exists() and done.exists():
        return migrated
    if not args.legacy:
        log(f"generating a legacy file of {n:,} sessions …")
        subprocess.run(
            [sys.executable, str(BENCH_DIR / "legacy_gen.py"), str(legacy), str(n)], check=True, env=ENV
        )
    log(f"migrating a copy of {legacy} …")
    shutil.copyfile(legacy, migrated)  # the legacy file itself is never modified
    subprocess.run(
        [sys.executable, "-m", "sessionorm", "migrate", "--db-path", str(migrated)],
        check=True,
        env=ENV,
        stdout=subprocess.DEVNULL,
    )
    done.write_text("ok\n")
    return migrated


def sqlite_counts_legacy(path: Path) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    finally:
        con.close()


def pg_source(args: argparse.Namespace, migrated: Path, n: int) -> str:
    """The PostgreSQL copy of the migrated file (made once with `sessionorm copy`, kept)."""
    name = f"{PREFIX}_source_{n}"
    url = with_database(args.server, name)
    with admin(args.server) as con:
        exists = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        try:
            if pg_counts(url) == sqlite_counts(migrated):
                return url
        except Exception:  # noqa: BLE001  (half made: make it again)
            pass
    log(f"making the PostgreSQL source {name} …")
    fresh_database(args.server, name)
    run([sys.executable, "-m", "sessionorm", "copy", "--from", str(migrated), "--to", url])
    with admin(url) as con:
        con.execute("VACUUM ANALYZE")
    return url


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_to_pg(args: argparse.Namespace, migrated: Path, reference: str, expected: dict[str, int]) -> dict:
    name = f"{PREFIX}_target"
    raws, orms, rss, cpus = [], [], [], {"raw": [], "sessionorm": []}
    for i in range(args.runs):
        for side in ("raw", "sessionorm"):
            url = fresh_database(args.server, name)
            if side == "raw":
                cmd = [sys.executable, str(BENCH_DIR / "raw_copy.py"), "to-pg", str(migrated), url, reference]
            else:
                cmd = [sys.executable, "-m", "sessionorm", "copy", "--from", str(migrated), "--to", url]
            seconds, peak, cpu = run(cmd)
            cpus[side].append(cpu)
            got = pg_counts(url)
            if got != expected:
                raise RuntimeError(f"{side} copied {got}, expected {expected}")
            (raws if side == "raw" else orms).append(seconds)
            if side == "sessionorm":
                rss.append(peak)
            shown = f", {peak:.0f} MB" if side != "raw" else ""
            log(f"  to-pg run {i + 1}: {side} {seconds:.2f} s, {cpu:.1f} CPU-s{shown}")
    drop_database(args.server, name)
    return summary("SQLite → PostgreSQL", raws, orms, rss, cpus)


def bench_to_sqlite(args: argparse.Namespace, source: str, migrated: Path, expected: dict[str, int]) -> dict:
    workdir = Path(args.workdir)
    raws, orms, rss, cpus = [], [], [], {"raw": [], "sessionorm": []}
    for i in range(args.runs):
        for side in ("raw", "sessionorm"):
            dest = workdir / f"copy-{side}.db"
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{dest}{suffix}").unlink(missing_ok=True)
            if side == "raw":
                cmd = [
                    sys.executable,
                    str(BENCH_DIR / "raw_copy.py"),
                    "to-sqlite",
                    source,
                    str(dest),
                    str(migrated),
                ]
            else:
                cmd = [sys.executable, "-m", "sessionorm", "copy", "--from", source, "--to", str(dest)]
            seconds, peak, cpu = run(cmd)
            cpus[side].append(cpu)
            got = sqlite_counts(dest)
            if got != expected:
                raise RuntimeError(f"{side} copied {got}, expected {expected}")
            size = dest.stat().st_size
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{dest}{suffix}").unlink(missing_ok=True)
            (raws if side == "raw" else orms).append(seconds)
            if side == "sessionorm":
                rss.append(peak)
            log(
                f"  to-sqlite run {i + 1}: {side} {seconds:.2f} s, {cpu:.1f} CPU-s,"
                f" {size / 2**20:.0f} MiB file" + (f", {peak:.0f} MB" if side != "raw" else "")
            )
    return summary("PostgreSQL → SQLite", raws, orms, rss, cpus)


def summary(what: str, raws: list[float], orms: list[float], rss: list[float], cpus: dict) -> dict:
    ratio = median(orms) / median(raws)
    return {
        "copy": what,
        "sessionorm_s": median(orms),
        "raw_s": median(raws),
        "sessionorm_cpu_s": median(cpus["sessionorm"]),
        "raw_cpu_s": median(cpus["raw"]),
        "ratio": ratio,
        "ratio_pass": ratio <= RATIO,
        "peak_rss_mb": max(rss),
        "rss_pass": max(rss) <= RSS_MB,
        "samples": {"raw": raws, "sessionorm": orms, "rss_mb": rss, "cpu_s": cpus},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--server",
        default=os.environ.get("SESSIONORM_TEST_PG_URL"),
        help="a PostgreSQL URL whose user may CREATE DATABASE (default $SESSIONORM_TEST_PG_URL)",
    )
    ap.add_argument("--legacy", help="a legacy file to use (copied, never modified)")
    ap.add_argument("--sessions", type=int, default=1_000_000, help="without --legacy: generate this many")
    ap.add_argument("--workdir", default="bench-copy-data", help="where the migrated input is kept")
    ap.add_argument("--runs", type=int, default=3, help="runs of each side, alternating")
    ap.add_argument("--only", default="to-pg,to-sqlite")
    ap.add_argument("--json", help="write every sample here")
    ap.add_argument("--drop", action="store_true", help="drop the kept PostgreSQL source and exit")
    args = ap.parse_args(argv)
    if not args.server:
        ap.error("--server (or $SESSIONORM_TEST_PG_URL) is needed")
    if args.drop:
        with admin(args.server) as con:
            for (name,) in con.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{PREFIX}%",)
            ).fetchall():
                con.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return 0
    migrated = migrated_input(args)
    expected = sqlite_counts(migrated)
    log(
        f"input: {migrated} ({migrated.stat().st_size / 2**20:.0f} MiB): "
        + ", ".join(f"{t} {n:,}" for t, n in expected.items())
    )
    results = []
    only = set(args.only.split(","))
    source = pg_source(args, migrated, expected["sessions"])  # also the to-pg floor's schema
    if "to-pg" in only:
        results.append(bench_to_pg(args, migrated, source, expected))
    if "to-sqlite" in only:
        results.append(bench_to_sqlite(args, source, migrated, expected))
    print(
        f"| copy of {expected['sessions']:,} sessions | sessionorm | raw | ratio (≤ {RATIO}×) "
        f"| client CPU sessionorm / raw | peak RSS (≤ {RSS_MB} MB) |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['copy']} | {r['sessionorm_s']:.2f} s | {r['raw_s']:.2f} s | {r['ratio']:.2f}× "
            f"{'PASS' if r['ratio_pass'] else 'FAIL'} | {r['sessionorm_cpu_s']:.1f} / {r['raw_cpu_s']:.1f} s "
            f"| {r['peak_rss_mb']:.0f} MB {'PASS' if r['rss_pass'] else 'FAIL'} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"input": str(migrated), "counts": expected, "results": results}, indent=2)
        )
    return 0 if all(r["ratio_pass"] and r["rss_pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
