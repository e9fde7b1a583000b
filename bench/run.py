"""sessionorm against raw sqlite3, measured in the same run (issue 7).

Every figure is the median of several ALTERNATING runs (raw, sessionorm, raw, sessionorm,
…) so that drift of the machine (page cache, other processes, CPU frequency) hits both
sides alike; in-process operations alternate call by call. Each row reports sessionorm's
time, raw sqlite3's time and their ratio.

    python bench/run.py                 # full: migrate 1,000,000 legacy sessions (minutes)
    python bench/run.py --quick         # the same operations at smaller sizes (< ~2 min)
    python bench/run.py --only migrate --only open --json results.json
    python bench/run.py --quick --only add_thread_message --profile   # + cProfile of sessionorm

Benchmarks (names for --only): migrate, add_thread_message, add_thread_messages,
get_thread_messages (all rows and last=50), get_session_threads, open; each is a module of
bench/cases/, the shared measuring and reporting is bench/harness.py.

Dependency-free: stdlib plus sessionorm. Nothing outside the repository is read at run time
(the legacy database comes from bench/legacy_gen.py, the raw floor from bench/raw_migrate.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from cases import (
    add_thread_message,
    add_thread_messages,
    get_session_threads,
    get_thread_messages,
    migrate,
)
from cases import open as open_store
from cases.common import Config
from harness import (
    BENCH_DIR,
    Outcome,
    Row,
    argument_parser,
    iso_now,
    log,
    print_profile,
    print_report,
    rows_json,
    selected,
    working_directory,
    write_json,
)

# In the table's order.
CASES: dict[str, Callable[[Config, Path], Outcome]] = {
    "migrate": migrate.measure,
    "add_thread_message": add_thread_message.measure,
    "add_thread_messages": add_thread_messages.measure,
    "get_thread_messages": get_thread_messages.measure,
    "get_session_threads": get_session_threads.measure,
    "open": open_store.measure,
}
BENCHMARKS = tuple(CASES)


def environment(cfg: Config) -> dict:
    import peewee

    commit = subprocess.run(
        ["git", "-C", str(BENCH_DIR.parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "mode": "quick" if cfg.quick else "full",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "peewee": peewee.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit,
        "when": iso_now(),
    }


def config(args: argparse.Namespace) -> Config:
    if args.quick:
        cfg = Config(
            quick=True,
            runs=5,
            migrate_runs=3,
            migrate_sessions=100_000,
            rss_small_sessions=20_000,
            batches=5,
            reads_per_run=3,
            last_reads_per_run=200,
            session_reads_per_run=5,
            opens_per_run=10,
        )
    else:
        cfg = Config(
            quick=False, runs=9, migrate_runs=3, migrate_sessions=1_000_000, rss_small_sessions=100_000
        )
    if args.runs:
        cfg.runs = args.runs
    if args.migrate_runs:
        cfg.migrate_runs = args.migrate_runs
    if args.sessions:
        cfg.migrate_sessions = args.sessions
    cfg.floor_pragmas = args.floor_pragmas
    migrate.resolve_floor(cfg)
    if args.floor_cache_mb is not None:
        cfg.floor_cache_mb = args.floor_cache_mb
    if args.floor_temp_store is not None:
        cfg.floor_temp_store = args.floor_temp_store
    cfg.floor_foreign_keys = args.floor_foreign_keys
    cfg.profile = args.profile
    return cfg


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argument_parser(__doc__, BENCHMARKS)
    ap.add_argument("--quick", action="store_true", help="small sizes, few runs (< ~2 min)")
    ap.add_argument("--runs", type=int, help="alternating pairs per in-process benchmark")
    ap.add_argument("--migrate-runs", type=int, help="alternating pairs of migrate processes")
    ap.add_argument("--sessions", type=int, help="legacy sessions for the timed migrate")
    ap.add_argument(
        "--floor-pragmas",
        choices=("mirror", "best", "none"),
        default="mirror",
        help="the floor's bulk pragmas: the same as sessionorm migrate sets"
        " (default; 256 MB cache if it sets none), the issue's best floor"
        " (256 MB cache), or none",
    )
    ap.add_argument("--floor-cache-mb", type=int, help="override the floor's page cache (MB)")
    ap.add_argument("--floor-temp-store", choices=("default", "file", "memory"))
    ap.add_argument(
        "--floor-foreign-keys",
        action="store_true",
        help="keep foreign_keys ON in the floor (sessionorm migrates with them OFF)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of sessionorm's side of each in-process benchmark"
        " and the slowest statements of `sessionorm migrate --verbose`",
    )
    ap.add_argument(
        "--workdir", metavar="DIR", help="keep databases here (legacy files are reused between runs)"
    )
    args = ap.parse_args(argv)
    args.only = selected(ap, args.only, BENCHMARKS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config(args)
    env = environment(cfg)
    log(
        f"sessionorm bench ({env['mode']}): python {env['python']}, sqlite {env['sqlite']},"
        f" peewee {env['peewee']}, {env['cpus']} CPUs"
    )
    started = time.perf_counter()
    rows: list[Row] = []
    with working_directory(args.workdir) as workdir:
        for name, measure in CASES.items():
            if name not in args.only:
                continue
            log(f"== {name}")
            outcome = measure(cfg, workdir)
            rows.extend(outcome.rows)
            if args.profile and outcome.profile:
                print_profile(name, outcome.profile)
            if outcome.cleanup:
                outcome.cleanup()
    elapsed = time.perf_counter() - started
    print_report(
        f"sessionorm vs raw sqlite3 — {env['mode']} mode, medians of alternating runs"
        f" ({cfg.runs} pairs in process, {cfg.migrate_runs} migrate pairs);"
        f" python {env['python']}, sqlite {env['sqlite']}, peewee {env['peewee']},"
        f" commit {env['commit']}, {elapsed:.0f} s",
        rows,
    )
    failed = [row.operation for row in rows if row.passed is False]
    print(
        f"\n{len(failed)} of {sum(r.passed is not None for r in rows)} targets failed"
        + (": " + "; ".join(failed) if failed else "")
    )
    if args.json:
        write_json(
            args.json,
            {"environment": env, "config": asdict(cfg), "seconds": elapsed, "rows": rows_json(rows)},
        )
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
