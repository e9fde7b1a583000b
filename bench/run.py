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
get_thread_messages (all rows and last=50), get_session_threads, open.

Dependency-free: stdlib plus sessionorm. Nothing outside the repository is read at run time
(the legacy database comes from bench/legacy_gen.py, the raw floor from bench/raw_migrate.py).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import gc
import importlib.util
import io
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import legacy_gen  # noqa: E402
import raw_migrate  # noqa: E402

from sessionorm import SessionStore  # noqa: E402

BENCHMARKS = ("migrate", "add_thread_message", "add_thread_messages", "get_thread_messages",
              "get_session_threads", "open")
UTC = dt.UTC

# What every connection sets (docs/architecture.md); the raw side uses the same.
RAW_PRAGMAS = ("PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL",
               "PRAGMA foreign_keys = ON", "PRAGMA synchronous = NORMAL")

MESSAGE_COLUMNS = "id, threadId, role, content, createdAt, idx"
RAW_SQL = {
    "next_idx": "SELECT coalesce(max(idx), -1) + 1 FROM thread_messages WHERE threadId = ?",
    "insert": f"INSERT INTO thread_messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
    "touch": "UPDATE threads SET updatedAt = ? WHERE id = ?",
    "messages": f"SELECT {MESSAGE_COLUMNS} FROM thread_messages WHERE threadId = ? ORDER BY idx",
    "last": f"SELECT {MESSAGE_COLUMNS} FROM thread_messages WHERE threadId = ?"
            " ORDER BY idx DESC LIMIT ?",
    "session_threads": "SELECT t.id, t.sessionId, t.name, t.createdAt, t.updatedAt, t.status,"
                       " (SELECT count(*) FROM thread_messages m WHERE m.threadId = t.id)"
                       " FROM threads t WHERE t.sessionId = ? ORDER BY t.updatedAt DESC",
}

# Used only while sessionorm.cli is missing (it is being written; see migrate_command).
API_MIGRATE = ("import sys; from sessionorm.runner import MigrationRunner;"
               " from sessionorm.database import open_sqlite;"
               " db = open_sqlite(sys.argv[1]); MigrationRunner(db).up(); db.close()")


@dataclass
class Config:
    """Sizes and repetitions of one mode."""

    quick: bool
    runs: int                     # alternating pairs for the in-process benchmarks
    migrate_runs: int             # alternating pairs of whole migrate processes
    migrate_sessions: int         # the timed size (also the large RSS size)
    rss_small_sessions: int       # the small size for the peak-memory comparison
    single_messages: int = 2000   # add_thread_message calls per run
    batch_size: int = 1000        # add_thread_messages batch
    batches: int = 10             # batches per run
    thread_messages: int = 10_000
    reads_per_run: int = 5        # get_thread_messages(all) calls per run
    last_n: int = 50
    last_reads_per_run: int = 300
    threads: int = 1000
    messages_per_thread: int = 100
    session_reads_per_run: int = 10
    opens_per_run: int = 20
    floor_pragmas: str = "mirror"  # mirror sessionorm's bulk pragmas, or "best", or "none"
    floor_cache_mb: int = 0
    floor_temp_store: str = "default"
    floor_foreign_keys: bool = False
    migrate_via: str = "auto"
    profile: bool = False


@dataclass
class Outcome:
    """What a benchmark returns: its rows, a re-run of sessionorm's side for cProfile, cleanup."""

    rows: list
    profile: Callable[[], None] | None = None
    cleanup: Callable[[], object] | None = None


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
        return [self.operation, fmt(self.sessionorm, self.unit), fmt(self.raw, self.unit),
                ratio, self.target, verdict]


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


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio_row(operation: str, raws: list[float], orms: list[float], unit: str,
              limit: float, note: str = "") -> Row:
    raw_m, orm_m = median(raws), median(orms)
    ratio = orm_m / raw_m
    return Row(operation, orm_m, raw_m, unit, f"≤ {limit:g}×", ratio <= limit, ratio,
               {"raw": raws, "sessionorm": orms}, note)


def iso_now() -> str:
    now = dt.datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


def raw_connect(path: Path) -> sqlite3.Connection:
    """A hand-written connection with the contract's pragmas (autocommit, explicit BEGIN)."""
    con = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
    for pragma in RAW_PRAGMAS:
        con.execute(pragma)
    return con


def copy_db(src: Path, dest: Path) -> Path:
    """A fresh copy of a closed (checkpointed) database file."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{dest}{suffix}")
    shutil.copyfile(src, dest)
    return dest


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def sample_messages(n: int, start: int = 0) -> list[tuple[str, str]]:
    """(role, content) pairs of chat-like size."""
    return [("user" if i % 2 == 0 else "assistant",
             f"Message {i}: please look at src/module_{i % 50}.py and explain the failing test. "
             * (1 + i % 3)) for i in range(start, start + n)]


# -- migrate ---------------------------------------------------------------------------------

def cli_available() -> bool:
    """Whether `sessionorm migrate` exists yet (the CLI is being written concurrently)."""
    try:
        return importlib.util.find_spec("sessionorm.cli") is not None
    except (ImportError, ValueError):
        return False


def migrate_command(db: Path, via: str) -> list[str]:
    """The whole-process sessionorm migration: the CLI when importable, else the Python API.

    TODO(issue 7): once sessionorm.cli has landed, drop the API fallback so the benchmark
    always measures exactly what users run (`sessionorm migrate --db-path X`).
    """
    if via == "cli" or (via == "auto" and cli_available()):
        script = Path(sys.executable).with_name("sessionorm")
        if script.exists():
            return [str(script), "migrate", "--db-path", str(db)]
        return [sys.executable, "-c", "import sys; from sessionorm.cli import main;"
                " sys.argv[0] = 'sessionorm'; main()", "migrate", "--db-path", str(db)]
    return [sys.executable, "-c", API_MIGRATE, str(db)]


BEST_FLOOR = (256, "default")  # the reference floor: a 256 MB page cache
TEMP_STORES = {0: "default", 1: "file", 2: "memory"}


def sessionorm_bulk_pragmas() -> tuple[int, str] | None:
    """(cache MB, temp_store) that `sessionorm migrate` sets for its bulk step, if it says."""
    try:
        from sessionorm.commands import BULK_PRAGMAS
    except ImportError:
        return None
    pragmas = dict(BULK_PRAGMAS)
    cache = int(pragmas.get("cache_size", 0))
    cache_mb = -cache // 1024 if cache < 0 else cache * 4096 // 2**20  # pages of 4 KiB
    temp = pragmas.get("temp_store", 0)
    temp = TEMP_STORES.get(temp, str(temp).lower())
    return cache_mb, temp


def resolve_floor(cfg: Config) -> None:
    """Fill in the floor's bulk pragmas: the same as sessionorm's (fair), the best, or none."""
    if cfg.floor_pragmas == "mirror":
        cfg.floor_cache_mb, cfg.floor_temp_store = sessionorm_bulk_pragmas() or BEST_FLOOR
    elif cfg.floor_pragmas == "best":
        cfg.floor_cache_mb, cfg.floor_temp_store = BEST_FLOOR
    else:
        cfg.floor_cache_mb, cfg.floor_temp_store = 0, "default"


def floor_command(db: Path, cfg: Config) -> list[str]:
    cmd = [sys.executable, str(BENCH_DIR / "raw_migrate.py"), str(db),
           "--cache-mb", str(cfg.floor_cache_mb), "--temp-store", cfg.floor_temp_store]
    if not cfg.floor_foreign_keys:
        cmd.append("--no-foreign-keys")
    return cmd


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
    """Run a command to completion: its wall time and peak RSS, measured by a tiny launcher."""
    out_path, err_path = workdir / "proc.out", workdir / "proc.err"
    result_path = workdir / "proc.json"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(result_path), *cmd],
                       stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=True)
    result = json.loads(result_path.read_text())
    if result["status"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {result['status']}:\n"
                           f"{err_path.read_text(errors='replace')[-3000:]}")
    return ProcessRun(result["seconds"], result["maxrss_kb"] / 1024, result["user"],
                      result["system"])


def legacy_db(workdir: Path, sessions: int) -> Path:
    """The legacy file with `sessions` sessions, generated once per workdir."""
    path = workdir / f"legacy-{sessions}.db"
    marker = workdir / f"legacy-{sessions}.ok"
    if not (path.exists() and marker.exists()):
        log(f"generating legacy database: {sessions:,} sessions …")
        start = time.perf_counter()
        legacy_gen.make_legacy_db(str(path), sessions)
        marker.write_text("ok")
        log(f"  done in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 2**20:.0f} MB)")
    return path


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
    for n, line in enumerate(lines):
        if line.startswith("[+") and "s]" in line:
            with contextlib.suppress(ValueError):
                # sessionorm logs "[+t] SQL": t is the time since the previous statement began.
                seconds = float(line[2:line.index("s]")])
                previous = next((p for p in reversed(lines[:n]) if p.startswith("[+")), "(start)")
                timed_lines.append((seconds, previous.split("] ", 1)[-1][:100]))
    print("\n### sessionorm migrate --verbose: slowest statements\n```")
    for seconds, sql in sorted(timed_lines, reverse=True)[:12]:
        print(f"{seconds:8.3f} s  {sql}")
    print("```")


def check_uuid_expression() -> None:
    try:
        from sessionorm.thread_migration import SQLITE_UUID
    except ImportError:
        return
    if SQLITE_UUID != raw_migrate.SQLITE_UUID:
        log("WARNING: sessionorm's SQLITE_UUID differs from bench/raw_migrate.py's copy;"
            " update the copy so the floor computes the same ids")


def bench_migrate(cfg: Config, workdir: Path) -> Outcome:
    check_uuid_expression()
    big = cfg.migrate_sessions
    small = cfg.rss_small_sessions
    source = legacy_db(workdir, big)
    target = workdir / "migrate.db"
    cmd = migrate_command(target, cfg.migrate_via)
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
        log(f"  run {n + 1}/{cfg.migrate_runs}: raw {raw_runs[-1].seconds:.2f} s"
            f" ({raw_runs[-1].peak_rss_mb:.0f} MB), sessionorm {orm_runs[-1].seconds:.2f} s"
            f" ({orm_runs[-1].peak_rss_mb:.0f} MB)")
    for side, shape in shapes.items():
        if shape["threads"] != expected or shape["messages"] != expected:
            log(f"WARNING: {side} migrated {shape['threads']} threads / {shape['messages']}"
                f" messages, expected {expected}")
    if shapes["raw"]["indexes"] != shapes["orm"]["indexes"]:
        log(f"WARNING: indexes differ: raw {shapes['raw']['indexes']}"
            f" vs sessionorm {shapes['orm']['indexes']}")

    small_source = legacy_db(workdir, small)
    small_runs = []
    for _ in range(max(1, min(2, cfg.migrate_runs))):
        copy_db(small_source, target)
        os.sync()
        small_runs.append(run_process(cmd, workdir))
        remove_db(target)
    if cfg.profile and "migrate" in cmd:
        print_statement_timings(source, target, cmd, workdir)
    rss_big = max(r.peak_rss_mb for r in orm_runs)
    rss_small = max(r.peak_rss_mb for r in small_runs)
    growth = rss_big / rss_small
    via = "CLI" if "migrate" in cmd else "Python API" if cli_available() else "API, no CLI yet"
    time_row = ratio_row(f"migrate {big:,} sessions, whole process, no backup [{via}]",
                         [r.seconds for r in raw_runs], [r.seconds for r in orm_runs], "s", 1.3,
                         note=f"floor ({cfg.floor_pragmas}): cache {cfg.floor_cache_mb} MB, temp_store"
                              f" {cfg.floor_temp_store}, foreign_keys"
                              f" {'on' if cfg.floor_foreign_keys else 'off'}")
    time_row.samples.update(raw_runs=[asdict(r) for r in raw_runs],
                            sessionorm_runs=[asdict(r) for r in orm_runs],
                            shapes=shapes)
    rss_row = Row(f"migrate peak RSS at {big:,} (raw: floor process)", rss_big,
                  max(r.peak_rss_mb for r in raw_runs), "MB", "≤ 150 MB", rss_big <= 150,
                  rss_big / max(r.peak_rss_mb for r in raw_runs))
    growth_row = Row(f"migrate peak RSS growth {small:,} → {big:,} (raw col: sessionorm at"
                     f" {small:,})", rss_big, rss_small, "MB", "≤ 1.25×", growth <= 1.25, growth,
                     {"small_runs": [asdict(r) for r in small_runs]})
    return Outcome([time_row, rss_row, growth_row])


# -- store operations ------------------------------------------------------------------------

def make_template(workdir: Path) -> tuple[Path, str, str]:
    """An up-to-date database with one session and one empty thread."""
    path = workdir / "template.db"
    remove_db(path)
    with SessionStore(path) as store:
        session = store.create_session(name="bench", amp_prompt="benchmark", repo_root="/tmp/r")
        thread_id = store.create_thread(session.id, "bench thread")
    return path, session.id, thread_id


Step = Callable[[int], object]


def interleave(setup: Callable[[], tuple[Step, Step, Callable[[], None]]], steps: int,
               runs: int, label: str) -> tuple[list[float], list[float]]:
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
        log(f"  {label} run {n + 1}/{runs}: raw {raws[-1] * 1000:.3f} ms,"
            f" sessionorm {orms[-1] * 1000:.3f} ms")
    return raws, orms


def bench_add_thread_message(cfg: Config, workdir: Path) -> Outcome:
    template, _, thread_id = make_template(workdir)
    messages = sample_messages(cfg.single_messages)
    sql = RAW_SQL

    def setup() -> tuple[Step, Step, Callable[[], None]]:
        con = raw_connect(copy_db(template, workdir / "raw.db"))
        store = SessionStore(copy_db(template, workdir / "orm.db"))
        execute, add = con.execute, store.add_thread_message

        def raw_step(i: int) -> None:
            role, content = messages[i]
            message_id, now = str(uuid.uuid4()), iso_now()
            execute("BEGIN IMMEDIATE")
            try:
                idx = execute(sql["next_idx"], (thread_id,)).fetchone()[0]
                execute(sql["insert"], (message_id, thread_id, role, content, now, idx))
                execute(sql["touch"], (now, thread_id))
            except BaseException:
                execute("ROLLBACK")
                raise
            execute("COMMIT")

        def orm_step(i: int) -> None:
            add(thread_id, *messages[i])

        def teardown() -> None:
            assert store.get_thread_messages(thread_id, last=1)[0].idx == len(messages) - 1
            store.close()
            con.close()
        return raw_step, orm_step, teardown

    raws, orms = interleave(setup, len(messages), cfg.runs, "add_thread_message (per call)")
    row = ratio_row(f"add_thread_message, {len(messages):,} calls (per call)", raws, orms,
                    "ms", 2)

    def profile() -> None:
        with SessionStore(copy_db(template, workdir / "orm.db")) as store:
            for role, content in messages:
                store.add_thread_message(thread_id, role, content)
    return Outcome([row], profile)


def bench_add_thread_messages(cfg: Config, workdir: Path) -> Outcome:
    template, _, thread_id = make_template(workdir)
    batches = [sample_messages(cfg.batch_size, b * cfg.batch_size) for b in range(cfg.batches)]
    sql = RAW_SQL

    def setup() -> tuple[Step, Step, Callable[[], None]]:
        con = raw_connect(copy_db(template, workdir / "raw.db"))
        store = SessionStore(copy_db(template, workdir / "orm.db"))

        def raw_step(i: int) -> None:
            now = iso_now()
            con.execute("BEGIN IMMEDIATE")
            try:
                first = con.execute(sql["next_idx"], (thread_id,)).fetchone()[0]
                rows = [(str(uuid.uuid4()), thread_id, role, content, now, first + n)
                        for n, (role, content) in enumerate(batches[i])]
                con.executemany(sql["insert"], rows)
                con.execute(sql["touch"], (now, thread_id))
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

        def orm_step(i: int) -> None:
            store.add_thread_messages(thread_id, batches[i])

        def teardown() -> None:
            store.close()
            con.close()
        return raw_step, orm_step, teardown

    raws, orms = interleave(setup, len(batches), cfg.runs, "add_thread_messages (per batch)")
    row = ratio_row(f"add_thread_messages, {cfg.batch_size:,} messages (per batch)", raws, orms,
                    "ms", 1.5)

    def profile() -> None:
        with SessionStore(copy_db(template, workdir / "orm.db")) as store:
            for batch in batches:
                store.add_thread_messages(thread_id, batch)
    return Outcome([row], profile)


def reading_db(workdir: Path, cfg: Config) -> tuple[Path, str, str]:
    """A thread of `thread_messages` messages next to another thread of the same size."""
    path, session_id, thread_id = make_template(workdir)
    reading = workdir / "reading.db"
    copy_db(path, reading)
    with SessionStore(reading) as store:
        other = store.create_thread(session_id, "other thread")
        for start in range(0, cfg.thread_messages, 1000):
            size = min(1000, cfg.thread_messages - start)
            store.add_thread_messages(thread_id, sample_messages(size, start))
            store.add_thread_messages(other, sample_messages(size, start))
    return reading, session_id, thread_id


def reads(raw: Callable[[], object], orm: Callable[[], object]):
    """A setup for `interleave` that reuses open connections (reads change nothing)."""
    return lambda: (lambda i: raw(), lambda i: orm(), lambda: None)


def bench_get_thread_messages(cfg: Config, workdir: Path) -> Outcome:
    path, _, thread_id = reading_db(workdir, cfg)
    con = raw_connect(path)
    store = SessionStore(path)
    total, last = cfg.thread_messages, cfg.last_n
    assert len(store.get_thread_messages(thread_id)) == total
    latest = store.get_thread_messages(thread_id, last=last)
    assert [m.idx for m in latest] == list(range(total - last, total))

    raws, orms = interleave(
        reads(lambda: con.execute(RAW_SQL["messages"], (thread_id,)).fetchall(),
              lambda: store.get_thread_messages(thread_id)),
        cfg.reads_per_run, cfg.runs, "get_thread_messages (per call)")
    full_row = ratio_row(f"get_thread_messages, {total:,}-message thread", raws, orms, "ms", 2)
    raws, orms = interleave(
        reads(lambda: con.execute(RAW_SQL["last"], (thread_id, last)).fetchall(),
              lambda: store.get_thread_messages(thread_id, last=last)),
        cfg.last_reads_per_run, cfg.runs, f"get_thread_messages last={last} (per call)")
    last_row = ratio_row(f"get_thread_messages last={last} of {total:,}", raws, orms, "ms", 2)

    def profile() -> None:
        for _ in range(cfg.reads_per_run):
            store.get_thread_messages(thread_id)
        for _ in range(cfg.last_reads_per_run):
            store.get_thread_messages(thread_id, last=last)
    return Outcome([full_row, last_row], profile, lambda: (store.close(), con.close()))


def bench_get_session_threads(cfg: Config, workdir: Path) -> Outcome:
    path, session_id, _ = make_template(workdir)
    db = workdir / "threads.db"
    copy_db(path, db)
    with SessionStore(db) as store:
        messages = sample_messages(cfg.messages_per_thread)
        for n in range(cfg.threads - 1):  # the template's thread counts as one
            store.add_thread_messages(store.create_thread(session_id, f"thread {n}"), messages)
        store.add_thread_messages(store.get_session_threads(session_id)[-1].id, messages)
        other = store.create_session(name="other", amp_prompt="p", repo_root="/tmp/o")
        for n in range(cfg.threads // 5):  # a neighbour, so that a scan would show
            store.add_thread_messages(store.create_thread(other.id, f"other {n}"), messages[:10])
    con = raw_connect(db)
    store = SessionStore(db)
    threads = store.get_session_threads(session_id)
    assert len(threads) == cfg.threads
    assert sum(t.message_count for t in threads) == cfg.threads * cfg.messages_per_thread

    raws, orms = interleave(
        reads(lambda: con.execute(RAW_SQL["session_threads"], (session_id,)).fetchall(),
              lambda: store.get_session_threads(session_id)),
        cfg.session_reads_per_run, cfg.runs, "get_session_threads (per call)")
    row = ratio_row(f"get_session_threads, {cfg.threads:,} threads /"
                    f" {cfg.threads * cfg.messages_per_thread:,} messages", raws, orms, "ms", 2)

    def profile() -> None:
        for _ in range(cfg.session_reads_per_run):
            store.get_session_threads(session_id)
    return Outcome([row], profile, lambda: (store.close(), con.close()))


def bench_open(cfg: Config, workdir: Path) -> Outcome:
    path, session_id, thread_id = make_template(workdir)
    with SessionStore(path) as store:  # holds data: an up-to-date file, not a new one
        store.add_thread_messages(thread_id, sample_messages(100))
    opened: list = []

    def setup() -> tuple[Step, Step, Callable[[], None]]:
        def close_all() -> None:
            for handle in opened:
                handle.close()
            opened.clear()
        return (lambda i: opened.append(raw_connect(path)),
                lambda i: opened.append(SessionStore(path)), close_all)

    # Each handle stays open until the run ends, so closing is never timed (on either side).
    raws, orms = interleave(setup, cfg.opens_per_run, cfg.runs, "open (per open)")
    orm_m, raw_m = median(orms), median(raws)
    row = Row("open SessionStore on an up-to-date db (in process)", orm_m, raw_m, "ms",
              "≤ 20 ms", orm_m <= 0.020, orm_m / raw_m, {"raw": raws, "sessionorm": orms})

    # Informational: a fresh interpreter, imports included (what a CLI call or a script pays).
    raw_cold = [sys.executable, "-c", "import sqlite3, sys; con = sqlite3.connect(sys.argv[1],"
                " isolation_level=None); [con.execute(p) for p in sys.argv[2:]]; con.close()",
                str(path), *RAW_PRAGMAS]
    orm_cold = [sys.executable, "-c", "import sys; from sessionorm import SessionStore;"
                " SessionStore(sys.argv[1]).close()", str(path)]
    raws, orms = [], []
    for _ in range(max(3, cfg.runs // 2)):
        raws.append(run_process(raw_cold, workdir).seconds)
        orms.append(run_process(orm_cold, workdir).seconds)
    log(f"  open in a fresh process: raw {median(raws) * 1000:.0f} ms,"
        f" sessionorm {median(orms) * 1000:.0f} ms")
    cold = Row("open in a fresh process, imports included", median(orms), median(raws), "ms",
               "—", None, median(orms) / median(raws), {"raw": raws, "sessionorm": orms})

    def profile() -> None:
        for _ in range(cfg.opens_per_run):
            SessionStore(path).close()
    return Outcome([row, cold], profile)


# -- driver ----------------------------------------------------------------------------------

def print_profile(name: str, fn: Callable[[], None]) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(18)
    print(f"\n### cProfile of sessionorm: {name} (sorted by tottime)\n```")
    print(out.getvalue().strip())
    print("```")


def table(rows: list[Row]) -> str:
    lines = ["| operation | sessionorm | raw | ratio | target | pass/fail |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def environment(cfg: Config) -> dict:
    import peewee

    commit = subprocess.run(["git", "-C", str(BENCH_DIR.parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"mode": "quick" if cfg.quick else "full", "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "peewee": peewee.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count(), "commit": commit,
            "cli": cli_available(), "when": iso_now()}


def config(args: argparse.Namespace) -> Config:
    if args.quick:
        cfg = Config(quick=True, runs=5, migrate_runs=3, migrate_sessions=100_000,
                     rss_small_sessions=20_000, batches=5, reads_per_run=3,
                     last_reads_per_run=200, session_reads_per_run=5, opens_per_run=10)
    else:
        cfg = Config(quick=False, runs=9, migrate_runs=3, migrate_sessions=1_000_000,
                     rss_small_sessions=100_000)
    if args.runs:
        cfg.runs = args.runs
    if args.migrate_runs:
        cfg.migrate_runs = args.migrate_runs
    if args.sessions:
        cfg.migrate_sessions = args.sessions
    cfg.floor_pragmas = args.floor_pragmas
    resolve_floor(cfg)
    if args.floor_cache_mb is not None:
        cfg.floor_cache_mb = args.floor_cache_mb
    if args.floor_temp_store is not None:
        cfg.floor_temp_store = args.floor_temp_store
    cfg.floor_foreign_keys = args.floor_foreign_keys
    cfg.migrate_via = args.migrate_via
    cfg.profile = args.profile
    return cfg


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, few runs (< ~2 min)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--runs", type=int, help="alternating pairs per in-process benchmark")
    ap.add_argument("--migrate-runs", type=int, help="alternating pairs of migrate processes")
    ap.add_argument("--sessions", type=int, help="legacy sessions for the timed migrate")
    ap.add_argument("--migrate-via", choices=("auto", "cli", "api"), default="auto",
                    help="sessionorm side of migrate: the CLI, the Python API, or CLI if present")
    ap.add_argument("--floor-pragmas", choices=("mirror", "best", "none"), default="mirror",
                    help="the floor's bulk pragmas: the same as sessionorm migrate sets"
                         " (default; 256 MB cache if it sets none), the issue's best floor"
                         " (256 MB cache), or none")
    ap.add_argument("--floor-cache-mb", type=int, help="override the floor's page cache (MB)")
    ap.add_argument("--floor-temp-store", choices=("default", "file", "memory"))
    ap.add_argument("--floor-foreign-keys", action="store_true",
                    help="keep foreign_keys ON in the floor (sessionorm migrates with them OFF)")
    ap.add_argument("--profile", action="store_true",
                    help="print a cProfile of sessionorm's side of each in-process benchmark"
                         " and the slowest statements of `sessionorm migrate --verbose`")
    ap.add_argument("--workdir", metavar="DIR",
                    help="keep databases here (legacy files are reused between runs)")
    args = ap.parse_args(argv)
    only = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.only = only or list(BENCHMARKS)
    return args


@contextlib.contextmanager
def working_directory(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path).resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="sessionorm-bench-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config(args)
    env = environment(cfg)
    log(f"sessionorm bench ({env['mode']}): python {env['python']}, sqlite {env['sqlite']},"
        f" peewee {env['peewee']}, {env['cpus']} CPUs, CLI present: {env['cli']}")
    started = time.perf_counter()
    rows: list[Row] = []
    functions = {"migrate": bench_migrate, "add_thread_message": bench_add_thread_message,
                 "add_thread_messages": bench_add_thread_messages,
                 "get_thread_messages": bench_get_thread_messages,
                 "get_session_threads": bench_get_session_threads, "open": bench_open}
    with working_directory(args.workdir) as workdir:
        for name in BENCHMARKS:
            if name not in args.only:
                continue
            log(f"== {name}")
            outcome = functions[name](cfg, workdir)
            rows.extend(outcome.rows)
            if args.profile and outcome.profile:
                print_profile(name, outcome.profile)
            if outcome.cleanup:
                outcome.cleanup()
    elapsed = time.perf_counter() - started
    print(f"\nsessionorm vs raw sqlite3 — {env['mode']} mode, medians of alternating runs"
          f" ({cfg.runs} pairs in process, {cfg.migrate_runs} migrate pairs);"
          f" python {env['python']}, sqlite {env['sqlite']}, peewee {env['peewee']},"
          f" commit {env['commit']}, {elapsed:.0f} s\n")
    print(table(rows))
    notes = [f"- {row.operation}: {row.note}" for row in rows if row.note]
    if notes:
        print("\n" + "\n".join(notes))
    failed = [row.operation for row in rows if row.passed is False]
    print(f"\n{len(failed)} of {sum(r.passed is not None for r in rows)} targets failed"
          + (": " + "; ".join(failed) if failed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"environment": env, "config": asdict(cfg), "seconds": elapsed,
             "rows": [asdict(row) for row in rows]}, indent=2, default=str))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
