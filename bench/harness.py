"""What every benchmark script here shares: alternating timing, whole-process runs, the table.

Used by run.py (and its cases/), pg_run.py and dry_run_memory.py. Stdlib only; the few
sessionorm internals the benchmarks read are at the end of this file, and nowhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import gc
import io
import json
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def log(text: str) -> None:
    """Progress goes to stderr, so stdout holds only the results."""
    print(text, file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def iso_now() -> str:
    """A timestamp as sessionorm writes it (JavaScript's toISOString)."""
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


def sample_messages(n: int, start: int = 0) -> list[tuple[str, str]]:
    """(role, content) pairs of chat-like size."""
    return [
        (
            "user" if i % 2 == 0 else "assistant",
            f"Message {i}: please look at src/module_{i % 50}.py and explain the failing test. "
            * (1 + i % 3),
        )
        for i in range(start, start + n)
    ]


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the final table (times in seconds, memory in MB)."""

    operation: str
    sessionorm: float | None
    raw: float | None
    unit: str
    target: str
    passed: bool | None
    ratio: float | None = None
    samples: dict = field(default_factory=dict)
    note: str = ""

    def cells(self) -> list[str]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}×"
        verdict = {True: "PASS", False: "FAIL", None: "info"}[self.passed]
        return [
            self.operation,
            fmt(self.sessionorm, self.unit),
            fmt(self.raw, self.unit),
            ratio,
            self.target,
            verdict,
        ]


@dataclass
class Outcome:
    """What a case returns: its rows, a re-run of sessionorm's side for cProfile, cleanup."""

    rows: list[Row]
    profile: Callable[[], None] | None = None
    cleanup: Callable[[], object] | None = None


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        ms = value * 1000
        return f"{ms:.3f} ms" if ms < 1 else f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value}"


def ratio_row(
    operation: str, raws: list[float], orms: list[float], unit: str, limit: float, note: str = ""
) -> Row:
    """A row whose target is sessionorm's median at most `limit` times raw's."""
    raw_m, orm_m = median(raws), median(orms)
    ratio = orm_m / raw_m
    return Row(
        operation,
        orm_m,
        raw_m,
        unit,
        f"≤ {limit:g}×",
        ratio <= limit,
        ratio,
        {"raw": raws, "sessionorm": orms},
        note,
    )


def table(rows: list[Row]) -> str:
    lines = ["| operation | sessionorm | raw | ratio | target | pass/fail |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def print_report(title: str, rows: list[Row]) -> None:
    """The title, the table and each row's note, on stdout."""
    print(f"\n{title}\n")
    print(table(rows))
    notes = [f"- {row.operation}: {row.note}" for row in rows if row.note]
    if notes:
        print("\n" + "\n".join(notes))


def rows_json(rows: list[Row]) -> list[dict]:
    return [asdict(row) for row in rows]


def write_json(path: str, data: object) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str))


def print_profile(name: str, fn: Callable[[], None]) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(18)
    print(f"\n### cProfile of sessionorm: {name} (sorted by tottime)\n```")
    print(out.getvalue().strip())
    print("```")


# -- in-process timing -----------------------------------------------------------------------

Step = Callable[[int], object]
Setup = Callable[[], tuple[Step, Step, Callable[[], None]]]


def interleave(setup: Setup, steps: int, runs: int, label: str) -> tuple[list[float], list[float]]:
    """`runs` runs of `steps` steps, each step timing raw then sessionorm once.

    Alternating at the level of single calls keeps both sides under the same load even on a
    busy machine; a run's value is the mean time per step of each side. `setup` returns the
    two step functions (called with the step number) and a teardown, outside the timing.
    """
    clock = time.perf_counter
    raws, orms = [], []
    for n in range(runs):
        raw_step, orm_step, teardown = setup()
        raw_total = orm_total = 0.0
        gc.collect()
        for i in range(steps):
            t0 = clock()
            raw_step(i)
            t1 = clock()
            orm_step(i)
            t2 = clock()
            raw_total += t1 - t0
            orm_total += t2 - t1
        teardown()
        raws.append(raw_total / steps)
        orms.append(orm_total / steps)
        log(
            f"  {label} run {n + 1}/{runs}: raw {raws[-1] * 1000:.3f} ms, sessionorm {orms[-1] * 1000:.3f} ms"
        )
    return raws, orms


def reads(raw: Callable[[], object], orm: Callable[[], object]) -> Setup:
    """A setup for `interleave` that reuses open connections (reads change nothing)."""
    return lambda: (lambda i: raw(), lambda i: orm(), lambda: None)


# -- whole processes -------------------------------------------------------------------------


@dataclass
class ProcessRun:
    seconds: float
    peak_rss_mb: float
    user: float
    system: float


# Spawns the measured command and reports its own wall time and rusage. Needed because a
# child's ru_maxrss starts at its parent's peak RSS (Linux carries the old mm's high-water
# mark across exec), so spawning straight from this process would report our own memory.
LAUNCHER = """\
import json, os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": seconds, "status": os.waitstatus_to_exitcode(status),
               "maxrss_kb": usage.ru_maxrss, "user": usage.ru_utime,
               "system": usage.ru_stime}, fh)
"""


def run_process(cmd: list[str], workdir: Path) -> ProcessRun:
    """Run a command to completion: its wall time and peak RSS, measured by a tiny launcher.

    Its output is left in `workdir`/proc.out and proc.err.
    """
    out_path, err_path = workdir / "proc.out", workdir / "proc.err"
    result_path = workdir / "proc.json"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, str(result_path), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            check=True,
        )
    result = json.loads(result_path.read_text())
    if result["status"] != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {result['status']}:\n{err_path.read_text(errors='replace')[-3000:]}"
        )
    return ProcessRun(result["seconds"], result["maxrss_kb"] / 1024, result["user"], result["system"])


def sessionorm_cli(*args: str, console_script: bool = False) -> list[str]:
    """`sessionorm ARGS` as a whole process: `python -m sessionorm`, or with `console_script`
    the `sessionorm` script installed beside this Python when there is one (what users run)."""
    script = Path(sys.executable).with_name("sessionorm")
    if console_script and script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "sessionorm", *args]


@contextlib.contextmanager
def working_directory(path: str | None, prefix: str = "sessionorm-bench-") -> Iterator[Path]:
    """`path` (created, kept), or a temporary directory removed afterwards."""
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path).resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- command line ----------------------------------------------------------------------------


def argument_parser(doc: str | None, names: Sequence[str]) -> argparse.ArgumentParser:
    """A parser with the options every runner has: --only (repeatable) and --json."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeatable or comma-separated): {', '.join(names)}",
    )
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return ap


def selected(ap: argparse.ArgumentParser, only: list[str] | None, names: Sequence[str]) -> list[str]:
    """The names --only asked for (all when none), or a usage error for an unknown one."""
    chosen = [n.strip() for item in only or [] for n in item.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(names)}")
    return chosen or list(names)


# -- sessionorm internals --------------------------------------------------------------------
# The only places where bench/ reads sessionorm below its public API; both are optional so
# that a rename does not break the run, but a missing one is said (the floor would drift).

TEMP_STORES = {0: "default", 1: "file", 2: "memory"}


def sessionorm_bulk_pragmas() -> tuple[int, str] | None:
    """(cache MB, temp_store) that `sessionorm migrate` sets for its bulk step, if it says
    (sessionorm.backends.sqlite.BULK_PRAGMAS)."""
    try:
        from sessionorm.backends.sqlite import BULK_PRAGMAS
    except ImportError:
        log(
            "WARNING: sessionorm.backends.sqlite.BULK_PRAGMAS not found; the floor cannot mirror"
            " sessionorm's bulk pragmas"
        )
        return None
    pragmas = dict(BULK_PRAGMAS)
    cache = int(pragmas.get("cache_size", 0))
    cache_mb = -cache // 1024 if cache < 0 else cache * 4096 // 2**20  # pages of 4 KiB
    temp = pragmas.get("temp_store", 0)
    return cache_mb, TEMP_STORES.get(temp, str(temp).lower())


def sessionorm_sqlite_uuid() -> str | None:
    """The SQL expression migration 1 makes thread ids with on SQLite (its script's own
    SQLITE_UUID: shipped scripts are self-contained)."""
    from playhouse.migrations import Migration

    from sessionorm.runner import migrations_dir

    path = migrations_dir() / "0001_session_thread_relationship.py"
    found = getattr(Migration(1, path.stem, str(path), None).load(), "SQLITE_UUID", None)
    if found is None:
        log(
            f"WARNING: {path.name} has no SQLITE_UUID; cannot check that"
            " bench/raw_migrate.py computes ids the same way"
        )
    return found
