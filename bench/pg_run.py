"""sessionorm on PostgreSQL against raw psycopg and raw SQL, measured in the same run (issue 14).

    python bench/pg_run.py --server postgresql://postgres@127.0.0.1:5432/postgres \\
        [--pgbouncer postgresql://postgres@127.0.0.1:6432/postgres] [--sessions 1000000]
        [--only migrate,verify,hot,prepare] [--runs N] [--json results.json]

The server URL's user must be allowed to CREATE DATABASE; it defaults to
`$SESSIONORM_TEST_PG_URL` (and the pgbouncer URL to `$SESSIONORM_TEST_PGBOUNCER_URL`). The
legacy database (bench/pg_legacy.py) is made once, as a template, and kept between runs
(`--drop-templates` removes it). Benchmarks:

- migrate: whole processes, alternating, each on a fresh copy of the template
  (`CREATE DATABASE … TEMPLATE …`): `sessionorm migrate --db-url` against
  bench/pg_raw_migrate.py (bare tables from one scan, then keys, foreign keys and indexes,
  same names, no ANALYZE). Peak RSS of sessionorm's process at --rss-small and --sessions.
- verify: `sessionorm.verify` on a database migrated by the floor and never analyzed
  (autovacuum off on its tables; the run checks pg_stats is empty) against a plain
  `SELECT count(*) FROM thread_messages`, both in process on warm caches, alternating.
- hot: the store's hot paths through pgbouncer (or directly without --pgbouncer) against
  raw psycopg doing the same statements with the same settings (no prepared statements),
  alternating call by call; raw reads run without a lock timeout, sessionorm's with one.
- prepare: add_thread_message directly, with the default (never prepare) against
  `?prepare_threshold=5` (psycopg's own default): the figure behind the README's choice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# This checkout's sessionorm, here and in the processes it starts, whatever is installed.
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

import pg_legacy  # noqa: E402
import pg_raw_migrate  # noqa: E402
from harness import (  # noqa: E402
    BENCH_DIR,
    Row,
    argument_parser,
    interleave,
    iso_now,
    log,
    print_report,
    ratio_row,
    rows_json,
    run_process,
    sample_messages,
    selected,
    sessionorm_cli,
    working_directory,
    write_json,
)
from pg_legacy import with_database  # noqa: E402

from sessionorm import SessionStore, verify  # noqa: E402

BENCHMARKS = ("migrate", "verify", "hot", "prepare")
PREFIX = "sessionorm_bench"


def admin(server: str):
    import psycopg

    return psycopg.connect(server, autocommit=True, prepare_threshold=None)


def database_exists(server: str, name: str) -> bool:
    with admin(server) as con:
        return bool(con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone())


def drop(server: str, name: str) -> None:
    with admin(server) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_of(server: str, template: str, name: str) -> str:
    drop(server, name)
    with admin(server) as con:
        con.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return with_database(server, name)


def legacy_template(server: str, sessions: int) -> str:
    """The legacy database with `sessions` sessions, made once and kept."""
    name = f"{PREFIX}_legacy_{sessions}"
    if not database_exists(server, name):
        log(f"loading the legacy database: {sessions:,} sessions …")
        start = time.perf_counter()
        try:
            pg_legacy.make_legacy_pg(server, name, sessions)
        except BaseException:
            drop(server, name)
            raise
        log(f"  done in {time.perf_counter() - start:.1f} s")
    return name


def migrated_counts(url: str) -> tuple[int, int, list]:
    import psycopg

    with psycopg.connect(url, prepare_threshold=None) as con:
        threads = con.execute("SELECT count(*) FROM threads").fetchone()[0]
        messages = con.execute("SELECT count(*) FROM thread_messages").fetchone()[0]
        names = con.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid IN"
            " ('threads'::regclass, 'thread_messages'::regclass) ORDER BY 1"
        ).fetchall()
    return threads, messages, [n for (n,) in names]


# -- migrate --------------------------------------------------------------------------------------


def bench_migrate(args: argparse.Namespace, workdir: Path) -> list[Row]:
    server, big = args.server, args.sessions
    template = legacy_template(server, big)
    target = f"{PREFIX}_migrate"
    url = with_database(server, target)
    orm = sessionorm_cli("migrate", "--db-url", url)  # this checkout, by PYTHONPATH above
    raw = [sys.executable, str(BENCH_DIR / "pg_raw_migrate.py"), url]
    raws, orms, shapes = [], [], {}

    def one(side: str, cmd: list[str]):
        copy_of(server, template, target)
        run = run_process(cmd, workdir)
        shapes.setdefault(side, migrated_counts(url))
        drop(server, target)
        return run

    for n in range(args.migrate_runs):
        raws.append(one("raw", raw))
        orms.append(one("sessionorm", orm))
        log(
            f"  migrate run {n + 1}/{args.migrate_runs}: raw {raws[-1].seconds:.2f} s,"
            f" sessionorm {orms[-1].seconds:.2f} s ({orms[-1].peak_rss_mb:.0f} MB)"
        )
    if shapes["raw"] != shapes["sessionorm"]:
        log(f"WARNING: the two sides differ: {shapes}")
    small_template = legacy_template(server, args.rss_small)
    small = []
    for _ in range(2):
        copy_of(server, small_template, target)
        small.append(run_process(orm, workdir))
        drop(server, target)
    rss_big = max(r.peak_rss_mb for r in orms)
    rss_small = max(r.peak_rss_mb for r in small)
    rows = [
        ratio_row(
            f"migrate {big:,} sessions, whole process (floor: bare load + keys, no ANALYZE)",
            [r.seconds for r in raws],
            [r.seconds for r in orms],
            "s",
            1.3,
            note=f"threads/messages/constraints equal on both sides: {shapes['raw'] == shapes['sessionorm']}",
        ),
        Row(
            f"migrate peak RSS growth {args.rss_small:,} → {big:,} sessions",
            rss_big,
            rss_small,
            "MB",
            "≤ 1.25×",
            rss_big / rss_small <= 1.25,
            rss_big / rss_small,
        ),
    ]
    return rows


# -- verify without statistics --------------------------------------------------------------------


def unanalyzed_template(server: str, sessions: int) -> str:
    """The legacy database migrated by the floor, never analyzed (autovacuum off on its tables)."""
    name = f"{PREFIX}_unanalyzed_{sessions}"
    if not database_exists(server, name):
        url = copy_of(server, legacy_template(server, sessions), name)
        import psycopg

        pg_raw_migrate.migrate(url)
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as con:
            for table_name in ("threads", "thread_messages", "migrations"):
                con.execute(f"ALTER TABLE {table_name} SET (autovacuum_enabled = off)")
            con.execute("SELECT count(*) FROM thread_messages")  # hint bits, as any first read
            con.execute("SELECT count(*) FROM threads")
    return name


def bench_verify(args: argparse.Namespace, workdir: Path) -> list[Row]:
    import psycopg

    url = with_database(args.server, unanalyzed_template(args.server, args.sessions))
    con = psycopg.connect(url, autocommit=True, prepare_threshold=None)
    stats = con.execute(
        "SELECT count(*) FROM pg_stats WHERE tablename IN ('threads', 'thread_messages')"
    ).fetchone()[0]
    if stats:
        log(
            f"WARNING: {stats} statistics rows exist for the new tables; the figure is not"
            " 'without statistics'"
        )
    count = lambda: con.execute("SELECT count(*) FROM thread_messages").fetchone()  # noqa: E731
    counts, verifies = [], []
    count()
    report = verify(url)
    if report.problems:
        log(f"WARNING: verify found problems: {report.problems}")
    for n in range(args.verify_runs):
        start = time.perf_counter()
        count()
        counts.append(time.perf_counter() - start)
        start = time.perf_counter()
        verify(url)
        verifies.append(time.perf_counter() - start)
        log(
            f"  verify run {n + 1}/{args.verify_runs}: count(*) {counts[-1] * 1000:.0f} ms,"
            f" verify {verifies[-1]:.2f} s"
        )
    whole = run_process(sessionorm_cli("verify", "--db-url", url), workdir).seconds
    con.close()
    row = ratio_row(
        f"verify {args.sessions:,} sessions never analyzed (raw: SELECT count(*) FROM thread_messages)",
        counts,
        verifies,
        "s",
        2,
        note=f"whole `sessionorm verify` process: {whole:.2f} s; pg_stats rows for the new tables: {stats}",
    )
    return [row]


# -- hot paths ------------------------------------------------------------------------------------

RAW = {
    "lock": "SELECT id FROM threads WHERE id = %s FOR UPDATE",
    "next": 'SELECT coalesce(max(idx), -1) + 1 FROM thread_messages WHERE "threadId" = %s',
    "insert": 'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
    " VALUES (%s, %s, %s, %s, %s, %s)",
    "touch": 'UPDATE threads SET "updatedAt" = %s WHERE id = %s',
    "messages": 'SELECT id, "threadId", role, content, "createdAt", idx FROM thread_messages'
    ' WHERE "threadId" = %s ORDER BY idx',
    "last": 'SELECT id, "threadId", role, content, "createdAt", idx FROM thread_messages'
    ' WHERE "threadId" = %s ORDER BY idx DESC LIMIT %s',
    "session_threads": 'SELECT t.id, t."sessionId", t.name, t."createdAt", t."updatedAt", t.status,'
    ' (SELECT count(*) FROM thread_messages m WHERE m."threadId" = t.id)'
    ' FROM threads t WHERE t."sessionId" = %s ORDER BY t."updatedAt" DESC',
}


def raw_append(con, thread_id: str, batch: list[tuple[str, str]]) -> None:
    """What a careful psycopg user writes: lock the thread row, next idx, insert, touch."""
    now = iso_now()
    with con.transaction():
        con.execute(RAW["lock"], (thread_id,))
        first = con.execute(RAW["next"], (thread_id,)).fetchone()[0]
        rows = [
            (str(uuid.uuid4()), thread_id, role, content, now, first + n)
            for n, (role, content) in enumerate(batch)
        ]
        if len(rows) == 1:
            con.execute(RAW["insert"], rows[0])
        else:
            con.cursor().executemany(RAW["insert"], rows)
        con.execute(RAW["touch"], (now, thread_id))


def bench_hot(args: argparse.Namespace, workdir: Path) -> list[Row]:
    import psycopg

    name = f"{PREFIX}_hot"
    drop(args.server, name)
    with admin(args.server) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    front = args.pgbouncer or args.server
    via = "pgbouncer" if args.pgbouncer else "direct"
    url = with_database(front, name)
    rows: list[Row] = []
    try:
        store = SessionStore(url=url)
        con = psycopg.connect(url, autocommit=True, prepare_threshold=None)
        session = store.create_session(name="bench", amp_prompt="p", repo_root="/r").id
        raw_thread, orm_thread = (
            store.create_thread(session, "raw").id,
            store.create_thread(session, "orm").id,
        )
        singles = sample_messages(args.single_messages)
        raws, orms = interleave(
            lambda: (
                lambda i: raw_append(con, raw_thread, [singles[i]]),
                lambda i: store.add_thread_message(orm_thread, *singles[i]),
                lambda: None,
            ),
            len(singles),
            args.runs,
            "add_thread_message",
        )
        rows.append(ratio_row(f"add_thread_message via {via} (per call)", raws, orms, "ms", 2))
        batch = sample_messages(1000)
        raws, orms = interleave(
            lambda: (
                lambda i: raw_append(con, raw_thread, batch),
                lambda i: store.add_thread_messages(orm_thread, batch),
                lambda: None,
            ),
            3,
            args.runs,
            "add_thread_messages",
        )
        rows.append(ratio_row(f"add_thread_messages, 1,000 messages, via {via}", raws, orms, "ms", 1.5))
        reader = store.create_thread(session, "reader").id
        for start in range(0, 10_000, 1000):
            store.add_thread_messages(reader, sample_messages(1000, start))
        raws, orms = interleave(
            lambda: (
                lambda i: con.execute(RAW["messages"], (reader,)).fetchall(),
                lambda i: store.get_thread_messages(reader),
                lambda: None,
            ),
            5,
            args.runs,
            "get_thread_messages 10,000",
        )
        rows.append(ratio_row(f"get_thread_messages, 10,000 messages, via {via}", raws, orms, "ms", 2))
        raws, orms = interleave(
            lambda: (
                lambda i: con.execute(RAW["last"], (reader, 50)).fetchall(),
                lambda i: store.get_thread_messages(reader, last=50),
                lambda: None,
            ),
            200,
            args.runs,
            "get_thread_messages last=50",
        )
        rows.append(ratio_row(f"get_thread_messages(last=50) via {via}", raws, orms, "ms", 2))
        many = store.create_session(name="many", amp_prompt="p", repo_root="/r").id
        for n in range(1000):
            store.add_thread_messages(store.create_thread(many, f"t{n}"), sample_messages(100))
        raws, orms = interleave(
            lambda: (
                lambda i: con.execute(RAW["session_threads"], (many,)).fetchall(),
                lambda i: store.get_session_threads(many),
                lambda: None,
            ),
            10,
            args.runs,
            "get_session_threads",
        )
        rows.append(
            ratio_row(
                f"get_session_threads, 1,000 threads / 100,000 messages, via {via}", raws, orms, "ms", 2
            )
        )
        con.close()
        store.close()
    finally:
        drop(args.server, name)
    return rows


def bench_prepare(args: argparse.Namespace, workdir: Path) -> list[Row]:
    """Never preparing (the default) against psycopg's prepare_threshold=5, direct connection."""
    name = f"{PREFIX}_prepare"
    drop(args.server, name)
    with admin(args.server) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = with_database(args.server, name)
    try:
        never = SessionStore(url=url)
        prepared = SessionStore(url=url + "?prepare_threshold=5")
        session = never.create_session(name="bench", amp_prompt="p", repo_root="/r").id
        a, b = never.create_thread(session, "a").id, never.create_thread(session, "b").id
        singles = sample_messages(args.single_messages)
        fives, nones = interleave(
            lambda: (
                lambda i: prepared.add_thread_message(b, *singles[i]),
                lambda i: never.add_thread_message(a, *singles[i]),
                lambda: None,
            ),
            len(singles),
            args.runs,
            "add_thread_message prepared vs not",
        )
        never.close()
        prepared.close()
    finally:
        drop(args.server, name)
    row = ratio_row(
        "add_thread_message direct: never prepare (sessionorm's default) vs prepare_threshold=5 (raw column)",
        fives,
        nones,
        "ms",
        2,
    )
    return [row]


# -- driver ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argument_parser(__doc__, BENCHMARKS)
    ap.add_argument("--server", default=os.environ.get("SESSIONORM_TEST_PG_URL"))
    ap.add_argument("--pgbouncer", default=os.environ.get("SESSIONORM_TEST_PGBOUNCER_URL"))
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--rss-small", type=int, default=100_000)
    ap.add_argument("--migrate-runs", type=int, default=3)
    ap.add_argument("--verify-runs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5, help="alternating runs of the hot paths")
    ap.add_argument("--single-messages", type=int, default=1000)
    ap.add_argument("--drop-templates", action="store_true", help="drop the kept template databases and exit")
    args = ap.parse_args(argv)
    if not args.server:
        ap.error("give --server (or set $SESSIONORM_TEST_PG_URL)")
    args.only = selected(ap, args.only, BENCHMARKS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.drop_templates:
        with admin(args.server) as con:
            names = [
                n
                for (n,) in con.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{PREFIX}_%",)
                )
            ]
        for name in names:
            drop(args.server, name)
        log(f"dropped {', '.join(names) or 'nothing'}")
        return 0
    with admin(args.server) as con:
        version = con.execute("SHOW server_version").fetchone()[0]
    log(
        f"sessionorm PostgreSQL bench: server {version} at"
        f" {urllib.parse.urlsplit(args.server).netloc.rsplit('@', 1)[-1]},"
        f" pgbouncer: {bool(args.pgbouncer)}, {os.cpu_count()} CPUs"
    )
    functions = {"migrate": bench_migrate, "verify": bench_verify, "hot": bench_hot, "prepare": bench_prepare}
    rows: list[Row] = []
    started = time.perf_counter()
    with working_directory(None, prefix="sessionorm-pgbench-") as workdir:
        for name in BENCHMARKS:
            if name in args.only:
                log(f"== {name}")
                rows.extend(functions[name](args, workdir))
    print_report(
        f"sessionorm on PostgreSQL {version} — medians of alternating runs,"
        f" {time.perf_counter() - started:.0f} s",
        rows,
    )
    if args.json:
        write_json(args.json, rows_json(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
