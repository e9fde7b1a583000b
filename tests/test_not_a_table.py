"""An object named like one of sessionorm's tables that is not a table (a view here) is refused
by name before anything is written or backed up, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
from cli_support import invoke

from sessionorm import MigrationError


def test_a_view_named_sessions_is_refused_before_any_backup(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a backup would land here
    with backend.connect() as con:
        con.execute("CREATE VIEW sessions AS SELECT 'x' AS id")
    done = invoke("migrate", "--backup", *backend.cli_args)
    assert done.exit_code == 2
    assert done.stderr == (
        "error: refusing to migrate: sessions is a view, not a table (rename it or use another "
        "database; nothing was changed)\n"
    ), done.stderr
    assert [p.name for p in tmp_path.iterdir() if "backup" in p.name or p.suffix == ".dump"] == []
    with pytest.raises(MigrationError, match="sessions is a view, not a table"):
        backend.store(migrate=True)
    with backend.connect() as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                if backend.name == "sqlite"
                else "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r'"
                " AND relnamespace = current_schema()::regnamespace"
            ).fetchall()
        ]
    assert tables == []
