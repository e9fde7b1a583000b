"""`sessionorm copy` (issue 15): SQLite <-> PostgreSQL, streaming, verified, all or nothing.

Real files, the real server (`$SESSIONORM_TEST_PG_URL`, and pgbouncer in transaction pooling
where `$SESSIONORM_TEST_PGBOUNCER_URL` names one: conftest's `backend` fixture), the real
CLI in subprocesses where it matters (SIGKILL). The databases are looked at through the plain
drivers, never through sessionorm.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import (
    NEW_TABLES,
    REPO_ROOT,
    SEARCH_TABLES_PG,
    SEARCH_TABLES_SQLITE,
    invoke,
    one_error_line,
    run_module,
)
from legacy import make_legacy_db
from pg_support import Backend, legacy_rows, pg_database

from sessionorm import MigrationError, commands, copy
from sessionorm.backends.sqlite_files import open_sqlite
from sessionorm.copy.checks import checksum
from sessionorm.copy.tables import Side
from sessionorm.target import Target

OWN = ["sessions", *NEW_TABLES]  # in foreign-key order
# The legacy layouts' other tables (migration 3 makes them in a SQLite file), in the order
# copy loads them: every parent before its children.
OTHERS = [
    "batches",
    "iterations",
    "merge_history",
    "stream_events",
    "swebench_runs",
    "batch_items",
    "swebench_case_results",
    "tool_calls",
]
MB_TEXT = "ü" * 400_000 + "🧵" * 100_000 + "x" * 100_000  # 1.3 MB in UTF-8, 600,000 characters


# -- helpers ---------------------------------------------------------------------------------


def migrated_file(path: Path, n: int = 30, flavor: str = "pre", iterations: int = 2) -> Path:
    """A legacy file of either layout, with iterations and tool_calls, migrated by sessionorm."""
    make_legacy_db(path, n, flavor=flavor, iterations=iterations)
    commands.migrate(path)
    return path


def without_search_index(
    out: dict[str, list[tuple]], backend: Backend | None = None
) -> dict[str, list[tuple]]:
    """The search index is rebuilt by a copy, not carried: its tables give way to the ids of the
    messages it holds (SQLite's keys, PostgreSQL's rows)."""
    tables = {name: out.pop(name, []) for name in {*SEARCH_TABLES_SQLITE, *SEARCH_TABLES_PG}}
    if backend is not None and backend.is_pg:
        held = sorted(row[0] for row in tables["sessionorm_search"])
    else:
        held = sorted(row[1] for row in tables["sessionorm_search_keys"])
    out["search index"] = held
    return out


def sqlite_dump(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows, in primary-key (rowid) order, as sqlite3 returns them."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return without_search_index(
            {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in names}
        )
    finally:
        con.close()


def dump(backend: Backend) -> dict[str, list[tuple]]:
    """Every table's rows; PostgreSQL booleans read as SQLite stores them (0/1)."""
    if not backend.is_pg:
        return sqlite_dump(Path(backend.target))
    out = {}
    for table in backend.tables():
        rows = [
            tuple(int(v) if isinstance(v, bool) else v for v in row)
            for row in backend.query(f'SELECT * FROM "{table}"')
        ]
        out[table] = sorted(rows, key=repr)
    return without_search_index(out, backend)


def columns(backend: Backend, table: str) -> list[tuple[str, str]]:
    if backend.is_pg:
        return backend.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?"
            " ORDER BY ordinal_position",
            (table,),
        )
    return [(r[1], r[2]) for r in backend.query(f'PRAGMA table_info("{table}")')]


def file_state(path: Path) -> str | None:
    """sha256 of the file, or None when there is no file."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.copy-"))


@pytest.fixture(params=["postgresql", "pgbouncer"])
def server(request, tmp_path: Path, monkeypatch) -> Iterator[Backend]:
    """A fresh, empty PostgreSQL database, reached directly or through pgbouncer."""
    monkeypatch.chdir(tmp_path)
    with pg_database(request.param) as database:
        yield database


@pytest.fixture
def other(backend: Backend, tmp_path: Path) -> Iterator[Backend]:
    """A second fresh database of the same kind as `backend` (same way in: direct or pgbouncer)."""
    if not backend.is_pg:
        yield Backend("sqlite", str(tmp_path / "second.db"))
        return
    with pg_database(backend.name) as database:
        yield database


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["pre", "final"])
def test_a_round_trip_through_the_backend_is_equal_row_for_row(backend, tmp_path, flavor):
    """SQLite -> (SQLite | PostgreSQL | PostgreSQL via pgbouncer) -> SQLite, both legacy layouts."""
    source = migrated_file(tmp_path / "source.db", flavor=flavor)
    back = tmp_path / "back.db"
    first = copy(source, backend.target)
    second = copy(backend.target, back)
    assert sqlite_dump(back) == sqlite_dump(source)
    assert dump(backend) == sqlite_dump(source)
    assert [t.name for t in first.tables] == [*OWN, *OTHERS]  # foreign-key order
    # each copy proves its own rows (digests of the bytes each carried, in its own order)
    assert [(t.name, t.rows) for t in first.tables] == [(t.name, t.rows) for t in second.tables]
    assert all(t.ok for t in first.tables + second.tables)
    assert commands.verify(backend.target).problems == []
    assert commands.verify(back).problems == []
    # the legacy layout's own columns survive, those sessionorm's models do not name included
    names = [c for c, _ in columns(backend, "sessions")]
    assert names == [r[1] for r in sqlite3.connect(source).execute("PRAGMA table_info(sessions)")]
    if flavor == "final":
        assert {"mode", "autoCommit", "ampMode"} <= set(names)


def test_postgres_to_postgres_and_the_migrations_history_is_the_sources(backend, other, tmp_path):
    source = migrated_file(tmp_path / "source.db", n=12)
    copy(source, backend.target)
    copy(backend.target, other.target)
    assert dump(other) == dump(backend) == sqlite_dump(source)
    history = (
        sqlite3.connect(source)
        .execute("SELECT version, name, applied_at FROM migrations ORDER BY version")
        .fetchall()
    )
    assert other.query("SELECT version, name, applied_at FROM migrations ORDER BY version") == history
    assert commands.verify(other.target).problems == []


def test_a_postgres_legacy_database_migrated_there_copies_to_sqlite(server, tmp_path):
    server.load_legacy(legacy_rows())
    commands.migrate(server.target)
    target = tmp_path / "copy.db"
    copy(server.target, target)
    # The SQLite copy also has the app's tables migration 3 makes in a SQLite file, empty;
    # PostgreSQL gets the columns only (iterations is the legacy layout's own).
    on_server = dump(server)
    assert set(OTHERS) - set(on_server) == set(OTHERS) - {"iterations"}
    assert sqlite_dump(target) == {**on_server, **{t: [] for t in OTHERS if t not in on_server}}
    assert commands.verify(target).problems == []


def test_the_schema_is_what_migrate_makes(server, tmp_path):
    """Types on PostgreSQL: booleans are boolean, the other tables' INTEGER columns bigint."""
    copy(migrated_file(tmp_path / "source.db"), server.target)
    assert ("contextIncluded", "boolean") in columns(server, "sessions")
    assert ("changedFiles", "bigint") in columns(server, "iterations")
    assert ("idx", "integer") in columns(server, "thread_messages")
    assert commands.diff(server.target) == []
    constraints = server.query(
        "SELECT conname FROM pg_constraint WHERE conrelid IN"
        " ('threads'::regclass, 'thread_messages'::regclass) ORDER BY 1"
    )
    assert [c for (c,) in constraints] == [
        "thread_messages_pkey",
        "thread_messages_role_check",
        "thread_messages_threadId_fkey",
        "thread_messages_threadId_idx_key",
        "threads_ampMode_check",  # migration 3's CHECK
        "threads_pkey",
        "threads_sessionId_fkey",
    ]
    # foreign keys of the other tables are carried (a child without its parent is refused)
    with pytest.raises(Exception, match="(?i)foreign key"):
        server.execute(
            'INSERT INTO tool_calls (id, "sessionId", "iterationId", timestamp, "toolName",'
            " \"argsJson\", success) VALUES ('t', 'nope', 'nope', 'x', 'x', '{}', true)"
        )


# -- hostile values --------------------------------------------------------------------------

HOSTILE = [
    ("emoji", "🧵 thread 👩‍💻 ✓"),
    ("rtl", "مرحبا بالعالم שלום"),
    ("quotes", 'it\'s "quoted" \\ back\\slash\ttab\nnewline\r\n'),
    ("copy-markers", "\\N\\.\n\\."),
    ("empty", ""),
    ("pipe-colon", "3:abc|-|'"),
    ("big", MB_TEXT),
]


def hostile_file(path: Path) -> Path:
    """A migrated file whose rows hold what a text or COPY format could mangle."""
    migrated_file(path, n=10)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA foreign_keys = ON")
        for i, (name, text) in enumerate(HOSTILE):
            con.execute(
                'INSERT INTO sessions (id, name, "ampPrompt", "repoRoot", "baseBranch", "branchName",'
                ' "worktreePath", status, "threadId", "createdAt", notes, "contextIncluded")'
                " VALUES (?, ?, ?, '/r', 'main', 'b', '/w', 'idle', ?, ?, ?, ?)",
                (
                    f"hostile-{name}",
                    text,
                    text,
                    "" if i % 2 else None,
                    "2025-08-24T12:34:56.789Z",
                    None if i % 2 else "",
                    (0, 1, None)[i % 3],
                ),
            )
        thread = con.execute("SELECT id FROM threads LIMIT 1").fetchone()[0]
        for i, (_, text) in enumerate(HOSTILE):
            con.execute(
                'INSERT INTO thread_messages (id, "threadId", role, content, "createdAt", idx)'
                " VALUES (?, ?, 'user', ?, '2025-08-24T12:34:56.789Z', ?)",
                (f"m-{i}", thread, text, i + 1),
            )
        session = con.execute("SELECT id FROM sessions LIMIT 1").fetchone()[0]
        con.execute(
            'INSERT INTO iterations (id, "sessionId", "startTime", "changedFiles", "tokenUsage")'
            " VALUES ('big-ints', ?, '2025-08-24T12:34:56.000Z', ?, ?)",
            (session, 2**31 + 7, -(2**62)),
        )
        con.execute(
            'INSERT INTO swebench_runs (id, name, "casesDir", "createdAt") VALUES'
            " ('r1', 'run', '/c', '2025-08-24T12:34:56.789Z')"
        )
        con.execute(
            'INSERT INTO swebench_case_results ("runId", "caseId", "sessionId", status,'
            " \"wallTimeSec\") VALUES ('r1', 'c1', ?, 'ok', 0.1), ('r1', 'c2', ?,"
            " 'ok', 1e-300)",
            (session, session),
        )
    finally:
        con.close()
    return path


def test_hostile_values_survive_exactly(backend, tmp_path):
    source = hostile_file(tmp_path / "source.db")
    back = tmp_path / "back.db"
    copy(source, backend.target)
    copy(backend.target, back)
    assert sqlite_dump(back) == sqlite_dump(source)
    rows = dict(backend.query("SELECT id, name FROM sessions WHERE id LIKE 'hostile-%%'"))
    assert rows == {f"hostile-{name}": text for name, text in HOSTILE}
    # NULL stays NULL and '' stays '', booleans stay booleans, big integers stay whole
    assert backend.query(
        'SELECT "threadId", notes, "contextIncluded" FROM sessions WHERE id = \'hostile-rtl\''
    ) == [("", None, 1)]
    assert backend.query("SELECT \"threadId\", notes FROM sessions WHERE id = 'hostile-emoji'") == [
        (None, "")
    ]
    flags = backend.query("SELECT \"contextIncluded\" FROM sessions WHERE id LIKE 'hostile-%%' ORDER BY id")
    assert [type(f) for (f,) in flags if f is not None] == [bool if backend.is_pg else int] * 5
    assert backend.query('SELECT "changedFiles", "tokenUsage" FROM iterations WHERE id = \'big-ints\'') == [
        (2**31 + 7, -(2**62))
    ]
    assert backend.query('SELECT "wallTimeSec" FROM swebench_case_results ORDER BY "caseId"') == [
        (0.1,),
        (1e-300,),
    ]
    assert backend.query("SELECT \"createdAt\" FROM thread_messages WHERE id = 'm-0'") == [
        ("2025-08-24T12:34:56.789Z",)
    ]
    assert commands.verify(backend.target).problems == []


def test_a_nul_byte_is_refused_for_postgres_naming_table_row_and_column(server, tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    with sqlite3.connect(source) as con:
        con.execute(
            "UPDATE sessions SET notes = ? WHERE id = (SELECT max(id) FROM sessions)", ("before\x00after",)
        )
        last = con.execute("SELECT max(id) FROM sessions").fetchone()[0]
    result = run_module("copy", "--from", source, "--to", server.target)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert f"sessions row id='{last}' column notes" in line and "NUL" in line
    assert server.tables() == set()


def test_a_nul_byte_survives_sqlite_to_sqlite(tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    with sqlite3.connect(source) as con:
        con.execute("UPDATE sessions SET notes = ?", ("before\x00after",))
    target = tmp_path / "copy.db"
    copy(source, target)
    assert sqlite_dump(target) == sqlite_dump(source)
    notes = sqlite3.connect(target).execute("SELECT notes FROM sessions").fetchall()
    assert set(notes) == {("before\x00after",)}


@pytest.mark.parametrize(
    ("sql", "column", "why"),
    [
        ('UPDATE sessions SET "contextIncluded" = 2', "contextIncluded", "int 2 where the column is BOOLEAN"),
        ("UPDATE sessions SET \"contextIncluded\" = 'yes'", "contextIncluded", "str 'yes'"),
        ("UPDATE thread_messages SET idx = 3000000000", "idx", "3000000000 does not fit the target's int4"),
        (
            "UPDATE iterations SET \"changedFiles\" = 'many'",
            "changedFiles",
            "str 'many' where the column is INTEGER",
        ),
        ("UPDATE sessions SET notes = X'00FF'", "notes", "bytes b'\\x00\\xff' where the column is TEXT"),
    ],
)
def test_a_value_postgres_cannot_hold_as_it_is_is_refused_and_nothing_is_written(
    server, tmp_path, sql, column, why
):
    source = migrated_file(tmp_path / "source.db", n=4, iterations=1)
    with sqlite3.connect(source) as con:
        con.execute(sql)
    with pytest.raises(MigrationError, match="row id=") as caught:
        copy(source, server.target)
    assert f"column {column}: " in str(caught.value) and why in str(caught.value)
    assert server.tables() == set()


# -- refusals: nothing is written --------------------------------------------------------------


def test_a_non_empty_sqlite_target_is_refused_and_left_as_it_was(tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    target = tmp_path / "busy.db"
    with sqlite3.connect(target) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        con.execute("INSERT INTO notes (body) VALUES ('keep me')")
    before = file_state(target)
    result = run_module("copy", "--from", source, "--to", target)
    assert result.returncode == 2
    assert "is not empty (notes)" in one_error_line(result.stderr)
    assert file_state(target) == before
    assert leftovers(target) == []


def test_a_copy_onto_a_migrated_database_is_refused(backend, tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    copy(source, backend.target)
    before = dump(backend)
    result = invoke("copy", "--from", source, "--to", backend.target)
    assert result.exit_code == 2
    assert "is not empty" in one_error_line(result.stderr)
    assert dump(backend) == before


def test_an_empty_sqlite_file_is_a_valid_target(tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    target = tmp_path / "empty.db"
    target.touch()
    copy(source, target)
    assert sqlite_dump(target) == sqlite_dump(source)


def test_a_source_with_a_pending_migration_is_refused_with_the_command_to_run(backend, tmp_path):
    source = make_legacy_db(tmp_path / "legacy.db", 5)
    before = file_state(source)
    result = run_module("copy", "--from", source, "--to", backend.target)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "pending migrations" in line and f"run `sessionorm migrate --db-path '{source}'`" in line
    assert file_state(source) == before
    if backend.is_pg:
        assert backend.tables() == set()
    else:
        assert not Path(backend.target).exists()


def test_a_postgres_source_with_a_pending_migration_is_refused(server, tmp_path):
    server.load_legacy(legacy_rows())
    target = tmp_path / "copy.db"
    with pytest.raises(MigrationError, match=r"pending migrations .*sessionorm migrate --db-url"):
        copy(server.target, target)
    assert not target.exists() and leftovers(target) == []


def test_a_table_that_cannot_be_carried_is_refused_by_name(backend, tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    with sqlite3.connect(source) as con:
        con.execute("CREATE TABLE audit_log (at TEXT, what TEXT)")  # no primary key
        con.execute("CREATE TABLE scores (id TEXT PRIMARY KEY, score NUMERIC)")
    with pytest.raises(MigrationError) as caught:
        copy(source, backend.target)
    text = str(caught.value)
    assert "audit_log (it has no primary key" in text and "scores (column score has type NUMERIC" in text
    if backend.is_pg:
        assert backend.tables() == set()
    else:
        assert not Path(backend.target).exists()


@pytest.mark.parametrize(
    ("ddl", "named"),
    [
        ("CREATE VIEW idle_sessions AS SELECT * FROM sessions WHERE status = 'idle'", "view idle_sessions"),
        ("CREATE TRIGGER touch AFTER UPDATE ON sessions BEGIN SELECT 1; END", "trigger touch"),
        (
            "CREATE TABLE scores (id TEXT PRIMARY KEY, n INTEGER CHECK (n > 0))",
            "scores (it has a CHECK constraint)",
        ),
        (
            "CREATE TABLE a (id TEXT PRIMARY KEY, b TEXT REFERENCES b(id));"
            " CREATE TABLE b (id TEXT PRIMARY KEY, a TEXT REFERENCES a(id))",
            "a, b form a cycle",
        ),
    ],
)
def test_what_copy_does_not_carry_is_refused_by_name(tmp_path, ddl, named):
    source = migrated_file(tmp_path / "source.db", n=4)
    with sqlite3.connect(source) as con:
        con.executescript(ddl)
    target = tmp_path / "copy.db"
    with pytest.raises(MigrationError) as caught:
        copy(source, target)
    assert named in str(caught.value)
    assert not target.exists() and leftovers(target) == []


def test_copying_a_file_onto_itself_is_refused(tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    before = file_state(source)
    with pytest.raises(MigrationError, match="onto itself"):
        copy(source, source)
    assert file_state(source) == before


# -- the checksum ----------------------------------------------------------------------------


def test_the_checksum_is_the_same_on_both_dialects_and_sees_one_changed_value(server, tmp_path):
    source = migrated_file(tmp_path / "source.db", n=6)
    copy(source, server.target)
    from sessionorm.backends.pg_connections import open_url

    pg = open_url(server.target)
    lite = open_sqlite(source, readonly=True)
    try:
        pg_side, lite_side = Side(Target(url=server.target), pg), Side(Target(path=source), lite)
        for table in OWN + ["iterations"]:
            assert checksum(pg_side, lite_side.table(table)) == checksum(lite_side, lite_side.table(table))
        sessions = lite_side.table("sessions")
        before = checksum(pg_side, sessions)
        server.execute(
            "UPDATE sessions SET notes = '' WHERE id = (SELECT min(id) FROM sessions) AND notes IS NULL"
        )
        assert checksum(pg_side, sessions)[0] == before[0]
        assert checksum(pg_side, sessions)[1] != before[1]  # NULL -> '' is seen
    finally:
        pg.close()
        lite.close()


# -- the CLI ---------------------------------------------------------------------------------


def test_the_cli_prints_each_table_with_its_checksum_and_exits_0(backend, tmp_path):
    source = migrated_file(tmp_path / "source.db", n=6)
    result = invoke("copy", "--from", source, "--to", backend.target)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [*OWN, *OTHERS]
    assert all(line.endswith("source = copy") for line in lines[:-1])
    assert lines[-1].startswith(f"copied {source} to ") and "row counts and checksums match" in lines[-1]


def test_progress_names_each_table_with_its_rows_and_rate(tmp_path):
    source = migrated_file(tmp_path / "source.db", n=30, iterations=2)
    heard: list[str] = []
    copy(source, tmp_path / "copy.db", progress=heard.append)
    rows = sqlite_dump(source)
    for table in [*OWN, *OTHERS]:
        line = next(m for m in reversed(heard) if m.startswith(f"copy: {table}: "))
        assert re.fullmatch(rf"copy: {table}: {len(rows[table]):,} rows, [\d,]+ rows/s", line), line


def test_the_cli_needs_both_ends(tmp_path):
    result = invoke("copy", "--from", tmp_path / "x.db")
    assert result.exit_code == 2 and "--to" in result.stderr


def test_a_missing_source_is_one_line_and_no_target(tmp_path):
    target = tmp_path / "copy.db"
    result = run_module("copy", "--from", tmp_path / "nothing.db", "--to", target)
    assert result.returncode == 2
    assert "no database at" in one_error_line(result.stderr)
    assert not target.exists()


def test_a_password_in_a_url_is_never_printed(server, tmp_path):
    url = server.target.replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores it
    source = migrated_file(tmp_path / "source.db", n=3)
    result = run_module("copy", "--from", source, "--to", url)
    assert result.returncode == 0, result.stderr
    assert "postgres:***@" in result.stdout
    again = run_module("copy", "--from", source, "--to", url)  # refused: not empty any more
    assert again.returncode == 2 and "postgres:***@" in one_error_line(again.stderr)
    assert "s3cret-pw" not in result.stdout + result.stderr + again.stdout + again.stderr


# -- SIGKILL: the target is absent/empty or complete, never partial ----------------------------


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    """A migrated file large enough that a copy takes a few seconds (40,000 sessions)."""
    path = tmp_path_factory.mktemp("big") / "big.db"
    return migrated_file(path, n=40_000, iterations=1)


def start_copy(source: Path, target: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("AMPSM_DB_PATH", "SESSIONORM_DB_URL")}
    return subprocess.Popen(
        [sys.executable, "-m", "sessionorm", "copy", "--from", str(source), "--to", target],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_when(process: subprocess.Popen, underway, timeout: float = 60) -> None:
    """SIGKILL `process` as soon as `underway()` says the copy is writing rows."""
    deadline = time.monotonic() + timeout
    while not underway():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the copy never got underway"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("size", [0, 4_000_000])
def test_sigkill_during_a_copy_to_sqlite_leaves_no_target_and_a_retry_succeeds(big_source, tmp_path, size):
    """Killed as the temporary file appears (the migrations), and once rows are in it."""
    target = tmp_path / "copy.db"
    process = start_copy(big_source, str(target))

    def underway() -> bool:
        partials = [p for p in tmp_path.glob(".copy.db.copy-*") if not p.name.endswith(("-wal", "-shm"))]
        return bool(partials) and partials[0].stat().st_size >= size

    kill_when(process, underway)
    assert not target.exists()
    copy(big_source, target)  # the retry removes the dead copy's temporary file
    assert leftovers(target) == []
    assert sqlite_dump(target) == sqlite_dump(big_source)
    assert commands.verify(target).problems == []


@pytest.mark.slow
@pytest.mark.parametrize("moment", [0.0, 0.3])
def test_sigkill_during_a_copy_to_postgres_leaves_it_empty_and_a_retry_succeeds(big_source, server, moment):
    process = start_copy(big_source, server.target)
    name = server.direct.rsplit("/", 1)[1]
    started = []

    def underway() -> bool:  # a COPY into the target database is running
        if server.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ? AND query LIKE 'COPY %% FROM STDIN%%'",
            (name,),
        )[0][0]:
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] >= moment

    kill_when(process, underway)
    deadline = time.monotonic() + 10  # the server ends the dead client's transaction
    while server.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = ? AND pid <>"
        " pg_backend_pid() AND state <> 'idle'",
        (name,),
    )[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert server.tables() == set()
    copy(big_source, server.target)
    # row for row; `verify` of a copy is tested on smaller databases above (its data check
    # takes 30 s at 40,000 sessions on PostgreSQL, copied or migrated there alike)
    assert dump(server) == sqlite_dump(big_source)


def test_neither_urls_password_reaches_the_terminal(tmp_path):
    """Both ends of a copy may carry a password; an error line names neither."""
    done = run_module(
        "copy",
        "--from",
        "postgresql://me:first-secret@127.0.0.1:1/a",
        "--to",
        "postgresql://me:second-secret@127.0.0.1:1/b",
        "--busy-timeout",
        "1",
    )
    assert done.returncode == 2
    assert one_error_line(done.stderr).startswith("error: ")
    assert "first-secret" not in done.stderr and "second-secret" not in done.stderr
    verbose = run_module(
        "copy",
        "-v",
        "--from",
        "postgresql://me:first-secret@127.0.0.1:1/a",
        "--to",
        "postgresql://me:second-secret@127.0.0.1:1/b",
    )
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr
    assert "first-secret" not in verbose.stderr and "second-secret" not in verbose.stderr


def test_a_postgres_target_with_a_table_in_another_schema_is_refused(server, tmp_path):
    source = migrated_file(tmp_path / "source.db", n=4)
    server.execute('CREATE SCHEMA "other side"')
    server.execute('CREATE TABLE "other side".sessions (id TEXT PRIMARY KEY)')
    server.execute("INSERT INTO \"other side\".sessions VALUES ('theirs')")
    result = invoke("copy", "--from", source, "--to", server.target)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "is not empty" in line and '"other side".sessions' in line, line
    assert server.query('SELECT id FROM "other side".sessions') == [("theirs",)]
    assert server.query("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == [
        (0,)
    ]  # nothing was written
