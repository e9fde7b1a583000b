"""`backup -o` into a folder that does not exist names that folder (it named the hidden
`.partial` file), creates nothing, and leaves the database as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

from test_cli_contract import sessionorm

from sessionorm import SessionStore


def test_backup_into_a_missing_folder_names_the_folder(tmp_path: Path):
    db = tmp_path / "s.sqlite"
    SessionStore(db).close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    dest = tmp_path / "missing" / "x.sqlite"
    for args in (["backup", "-o", str(dest)], ["backup", "--output", str(dest)]):
        done = sessionorm(*args, "--db-path", db)
        assert done.returncode == 2
        assert done.stderr == f"error: no folder {dest.parent} for the backup {dest}; create it first\n"
    assert not dest.parent.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
