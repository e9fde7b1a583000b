"""Identifiers are quoted everywhere (`identifiers.q`): a table of another program named with a
double quote in it does not break `SessionStore`, `migrate --backup`, `backup` or `rollback`."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from cli_support import invoke
from legacy import make_legacy_db

from sessionorm import NeedsMigrationError, SessionStore

WEIRD = 'we"ird'


def with_weird_table(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE "we""ird" (id INTEGER PRIMARY KEY, "a""b" TEXT)')
    con.executemany('INSERT INTO "we""ird" ("a""b") VALUES (?)', [("x",), ("y",)])
    con.commit()
    con.close()
    return path


def weird_rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute('SELECT * FROM "we""ird" ORDER BY id').fetchall()
    finally:
        con.close()


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    return with_weird_table(make_legacy_db(tmp_path / "legacy.sqlite", 20))


def test_the_store_refuses_a_file_needing_migration_with_its_own_error(legacy):
    before = hashlib.sha256(legacy.read_bytes()).hexdigest()
    with pytest.raises(NeedsMigrationError, match="pending migrations"):
        SessionStore(legacy)
    assert hashlib.sha256(legacy.read_bytes()).hexdigest() == before


def test_migrate_with_backup_backup_and_rollback_carry_the_table(legacy, tmp_path):
    done = invoke("migrate", "--backup", "--db-path", str(legacy))
    assert done.exit_code == 0, done.output + (done.stderr or "")
    backups = sorted(tmp_path.glob("legacy.sqlite.backup-*"))
    assert len(backups) == 1 and weird_rows(backups[0]) == [(1, "x"), (2, "y")]
    done = invoke("backup", "--db-path", str(legacy), "-o", str(tmp_path / "copy.sqlite"))
    assert done.exit_code == 0, done.output + (done.stderr or "")
    assert weird_rows(tmp_path / "copy.sqlite") == [(1, "x"), (2, "y")]
    with SessionStore(legacy) as store:  # migrated now: the store opens it
        store.create_session(name="s", amp_prompt="p", repo_root="/r")
    done = invoke("rollback", "--db-path", str(legacy))
    assert done.exit_code == 0, done.output + (done.stderr or "")
    assert weird_rows(legacy) == [(1, "x"), (2, "y")]
    done = invoke("verify", "--db-path", str(legacy))
    assert "unrecognized token" not in done.output + (done.stderr or "")
