"""What a copy proves when PostgreSQL is one side: the bytes of every row, as they travelled
(`sessionorm.backends.row_digests`). A target changed while the copy loads it -- a value, a
boolean, a missing row -- is caught and the copy leaves nothing behind; the psycopg internals
the proof stands on are pinned."""

from __future__ import annotations

import hashlib
import importlib

import pytest
from cli_support import invoke, one_error_line
from pg_support import pg_database
from test_copy import migrated_file, sqlite_dump

from sessionorm import copy
from sessionorm.backends import sqlite_copy
from sessionorm.backends.row_digests import SIGNATURE, binary_formatter
from sessionorm.copy.tables import CopyError

TAMPER = {  # what a row trigger on the target's sessions does to one row as it is loaded
    "a changed value": "NEW.name := NEW.name || '!'; RETURN NEW;",
    "a flipped boolean": 'NEW."contextIncluded" := NOT coalesce(NEW."contextIncluded", false); RETURN NEW;',
    "a missing row": "RETURN NULL;",
}


@pytest.fixture
def server():
    with pg_database("postgresql") as database:
        yield database


def add_tamperer(server, body: str) -> None:
    """An event trigger that gives the target's `sessions`, as soon as the copy creates it, a
    row trigger doing `body` to the third session."""
    server.execute(
        "CREATE FUNCTION tamper_row() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE n int; BEGIN"
        " n := coalesce(nullif(current_setting('tamper.rows', true), ''), '0')::int + 1;"
        " PERFORM set_config('tamper.rows', n::text, true);"  # rows seen, in this transaction
        f" IF n = 3 THEN {body} END IF; RETURN NEW; END $$"
    )
    server.execute(
        "CREATE FUNCTION add_tamperer() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE'"
        " AND object_identity = 'public.sessions') THEN"
        " CREATE TRIGGER tamper BEFORE INSERT ON public.sessions FOR EACH ROW EXECUTE FUNCTION tamper_row();"
        " END IF; END $$"
    )
    server.execute("CREATE EVENT TRIGGER tamperer ON ddl_command_end EXECUTE FUNCTION add_tamperer()")


@pytest.mark.parametrize("what", TAMPER)
def test_a_target_changed_while_loading_is_caught_and_rolled_back(server, tmp_path, what):
    source = migrated_file(tmp_path / "source.db", n=6)
    add_tamperer(server, TAMPER[what])
    try:
        result = invoke("copy", "--from", source, "--to", server.target)
        assert result.exit_code == 2, result.output
        assert "the copy differs from the source" in one_error_line(result.stderr)
        assert server.tables() == set()  # nothing was committed
    finally:
        server.execute("DROP EVENT TRIGGER tamperer")


def test_a_sqlite_target_that_stores_other_bytes_than_it_received_is_caught(tmp_path, monkeypatch):
    """A value changed between the wire and the file (as a bug or a bad disk would): the target's
    rows, encoded again, no longer hash as the bytes received."""
    with pg_database("postgresql") as server:
        copy(migrated_file(tmp_path / "source.db", n=6), server.target)
        batches = sqlite_copy.source_batches

        def changed(src, table, *args, **kwargs):
            for n, (batch, checksum) in enumerate(batches(src, table, *args, **kwargs)):
                if table.name == "threads" and n == 0:
                    at = table.names.index("name")
                    first = list(batch[0])
                    first[at] += "!"
                    batch = [tuple(first), *batch[1:]]
                yield batch, checksum

        monkeypatch.setattr(sqlite_copy, "source_batches", changed)
        target = tmp_path / "target.db"
        with pytest.raises(CopyError, match="the copy differs from the source.*threads"):
            copy(server.target, target)
        assert not target.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".target.db")] == []


def test_both_ways_carry_every_byte_and_say_so(tmp_path):
    source = migrated_file(tmp_path / "source.db", n=12)
    with pg_database("postgresql") as server:
        there = copy(source, server.target)
        back = copy(server.target, tmp_path / "back.db")
    assert all(t.ok for t in there.tables + back.tables)
    assert sqlite_dump(tmp_path / "back.db") == sqlite_dump(source)


# -- the psycopg internals the proof relies on -------------------------------------------------


def test_psycopgs_encoder_writes_what_the_server_sends_back(tmp_path):
    """`format_row_binary` (via `binary_formatter`) gives, value for value, the bytes of
    `COPY … TO STDOUT (FORMAT BINARY)`; `formatter.parse_row` reads them; the header is SIGNATURE bytes."""
    import psycopg

    types = ["text", "int4", "int8", "bool", "bytea", "float8", "int2", "float4", "varchar"]
    row = ("é\\N\t\n\u2028🙂", 2**31 - 1, -(2**63), True, b"\x00\xff", 1.5e-300, -7, 0.25, "v")
    with pg_database("postgresql") as server, psycopg.connect(server.target, autocommit=True) as con:
        con.execute("CREATE TABLE t (" + ", ".join(f"c{i} {t}" for i, t in enumerate(types)) + ")")
        with con.cursor().copy("COPY t FROM STDIN (FORMAT BINARY)") as load:
            load.set_types(types)
            load.write_row(row)
            load.write_row((None,) * len(types))
        with con.cursor().copy("COPY t TO STDOUT (FORMAT BINARY)") as out:
            out.set_types(types)
            messages = [bytes(m) for m in out]
            parsed = [out.formatter.parse_row(m) for m in messages]
    encode, tx = binary_formatter(types)
    mine = bytearray()
    encode(row, tx, mine)
    first = len(mine)
    encode((None,) * len(types), tx, mine)
    assert messages[0][:SIGNATURE].startswith(b"PGCOPY\n\xff\r\n\x00")
    assert messages[0][SIGNATURE:] + messages[1] == bytes(mine)
    assert len(messages[0]) - SIGNATURE == first and messages[2] == b"\xff\xff"  # the trailer alone
    assert parsed[0] == row and parsed[1] == (None,) * len(types) and parsed[2] is None
    assert hashlib.sha256(mine).digest() == hashlib.sha256(messages[0][SIGNATURE:] + messages[1]).digest()


def test_a_copy_to_postgres_reads_the_source_once(tmp_path, monkeypatch):
    """The proof is had from the bytes sent: the source is not read a second time to hash it."""
    checks = importlib.import_module("sessionorm.copy.checks")  # `sessionorm.copy` is the function

    source = migrated_file(tmp_path / "source.db", n=6)
    monkeypatch.setattr(checks, "hash_rows", lambda *a: pytest.fail("the source was read again"))
    with pg_database("postgresql") as server:
        report = copy(source, server.target)
    assert all(t.ok for t in report.tables)
