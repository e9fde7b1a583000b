"""migrate: a whole `sessionorm migrate --db-path X` process against bench/raw_migrate.py.

Both sides run as processes on a fresh copy of the same legacy file, alternating; peak RSS
of sessionorm's process is compared between two sizes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path

import raw_migrate
from harness import (
    BENCH_DIR,
    Outcome,
    ProcessRun,
    Row,
    log,
    ratio_row,
    run_process,
    sessionorm_bulk_pragmas,
    sessionorm_cli,
    sessionorm_sqlite_uuid,
)

from .common import Config, copy_db, legacy_db, remove_db

BEST_FLOOR = (256, "default")  # the reference floor: a 256 MB page cache


def resolve_floor(cfg: Config) -> None:
    """Fill in the floor's bulk pragmas: the same as sessionorm's (fair), the best, or none."""
    if cfg.floor_pragmas == "mirror":
        cfg.floor_cache_mb, cfg.floor_temp_store = sessionorm_bulk_pragmas() or BEST_FLOOR
    elif cfg.floor_pragmas == "best":
        cfg.floor_cache_mb, cfg.floor_temp_store = BEST_FLOOR
    else:
        cfg.floor_cache_mb, cfg.floor_temp_store = 0, "default"


def floor_command(db: Path, cfg: Config) -> list[str]:
    cmd = [
        sys.executable,
        str(BENCH_DIR / "raw_migrate.py"),
        str(db),
        "--cache-mb",
        str(cfg.floor_cache_mb),
        "--temp-store",
        cfg.floor_temp_store,
    ]
    if not cfg.floor_foreign_keys:
        cmd.append("--no-foreign-keys")
    return cmd


def migrated_shape(path: Path) -> dict:
    """Row counts and indexed columns after a migration (to prove both sides did the same)."""
    con = sqlite3.connect(str(path))
    try:
        shape = {
            "threads": con.execute("SELECT count(*) FROM threads").fetchone()[0],
            "messages": con.execute("SELECT count(*) FROM thread_messages").fetchone()[0],
            "migrations": con.execute("SELECT version, name FROM migrations").fetchall(),
        }
        indexes = set()
        for table in ("threads", "thread_messages"):
            for _, name, *_ in con.execute(f"PRAGMA index_list({table})"):
                cols = tuple(r[2] for r in con.execute(f'PRAGMA index_info("{name}")'))
                indexes.add(f"{table}({', '.join(cols)})")
        shape["indexes"] = sorted(indexes)
        return shape
    finally:
        con.close()


def print_statement_timings(source: Path, target: Path, cmd: list[str], workdir: Path) -> None:
    """One more `sessionorm migrate --verbose`: its slowest statements (from its own log)."""
    copy_db(source, target)
    os.sync()
    run_process([*cmd, "--verbose"], workdir)
    remove_db(target)
    lines = (workdir / "proc.out").read_text(errors="replace").splitlines()
    lines += (workdir / "proc.err").read_text(errors="replace").splitlines()
    timed_lines = []
    for line in lines:
        if line.startswith("[") and "s] " in line:
            with contextlib.suppress(ValueError):
                # sessionorm logs "[t.ttts] SQL  [params]", t being that statement's own time.
                seconds = float(line[1 : line.index("s] ")])
                timed_lines.append((seconds, line.split("] ", 1)[1][:100]))
    print("\n### sessionorm migrate --verbose: slowest statements\n```")
    for seconds, sql in sorted(timed_lines, reverse=True)[:12]:
        print(f"{seconds:8.3f} s  {sql}")
    print("```")


def check_uuid_expression() -> None:
    uuid_sql = sessionorm_sqlite_uuid()
    if uuid_sql is not None and uuid_sql != raw_migrate.SQLITE_UUID:
        log(
            "WARNING: sessionorm's SQLITE_UUID differs from bench/raw_migrate.py's copy;"
            " update the copy so the floor computes the same ids"
        )


def measure(cfg: Config, workdir: Path) -> Outcome:
    check_uuid_expression()
    big = cfg.migrate_sessions
    small = cfg.rss_small_sessions
    source = legacy_db(workdir, big)
    target = workdir / "migrate.db"
    cmd = sessionorm_cli("migrate", "--db-path", str(target), console_script=True)
    log(f"migrate {big:,} sessions: sessionorm = {' '.join(cmd[:3])} …")
    log(f"  floor = {' '.join(floor_command(target, cfg)[1:])}")
    expected = round(big * 0.5)
    shapes = {}
    raw_runs, orm_runs = [], []

    def one(side: str) -> ProcessRun:
        copy_db(source, target)
        os.sync()
        run = run_process(cmd if side == "orm" else floor_command(target, cfg), workdir)
        if side not in shapes:
            shapes[side] = migrated_shape(target)
        remove_db(target)
        return run

    for n in range(cfg.migrate_runs):
        raw_runs.append(one("raw"))
        orm_runs.append(one("orm"))
        log(
            f"  run {n + 1}/{cfg.migrate_runs}: raw {raw_runs[-1].seconds:.2f} s"
            f" ({raw_runs[-1].peak_rss_mb:.0f} MB), sessionorm {orm_runs[-1].seconds:.2f} s"
            f" ({orm_runs[-1].peak_rss_mb:.0f} MB)"
        )
    for side, shape in shapes.items():
        if shape["threads"] != expected or shape["messages"] != expected:
            log(
                f"WARNING: {side} migrated {shape['threads']} threads / {shape['messages']}"
                f" messages, expected {expected}"
            )
    if shapes["raw"]["indexes"] != shapes["orm"]["indexes"]:
        log(
            f"WARNING: indexes differ: raw {shapes['raw']['indexes']}"
            f" vs sessionorm {shapes['orm']['indexes']}"
        )

    small_source = legacy_db(workdir, small)
    small_runs = []
    for _ in range(max(1, min(2, cfg.migrate_runs))):
        copy_db(small_source, target)
        os.sync()
        small_runs.append(run_process(cmd, workdir))
        remove_db(target)
    if cfg.profile:
        print_statement_timings(source, target, cmd, workdir)
    rss_big = max(r.peak_rss_mb for r in orm_runs)
    rss_small = max(r.peak_rss_mb for r in small_runs)
    growth = rss_big / rss_small
    time_row = ratio_row(
        f"migrate {big:,} sessions, whole process, no backup [CLI]",
        [r.seconds for r in raw_runs],
        [r.seconds for r in orm_runs],
        "s",
        1.3,
        note=f"floor ({cfg.floor_pragmas}): cache {cfg.floor_cache_mb} MB, temp_store"
        f" {cfg.floor_temp_store}, foreign_keys"
        f" {'on' if cfg.floor_foreign_keys else 'off'}",
    )
    time_row.samples.update(
        raw_runs=[asdict(r) for r in raw_runs], sessionorm_runs=[asdict(r) for r in orm_runs], shapes=shapes
    )
    rss_row = Row(
        f"migrate peak RSS at {big:,} (raw: floor process)",
        rss_big,
        max(r.peak_rss_mb for r in raw_runs),
        "MB",
        "≤ 150 MB",
        rss_big <= 150,
        rss_big / max(r.peak_rss_mb for r in raw_runs),
    )
    growth_row = Row(
        f"migrate peak RSS growth {small:,} → {big:,} (raw col: sessionorm at {small:,})",
        rss_big,
        rss_small,
        "MB",
        "≤ 1.25×",
        growth <= 1.25,
        growth,
        {"small_runs": [asdict(r) for r in small_runs]},
    )
    return Outcome([time_row, rss_row, growth_row])
