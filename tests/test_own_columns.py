"""Your own columns through the store (issue 23): with the README's `PriorityThread`, migrated in
with `makemigration`, `SessionStore(path, models=...)` (or `$SESSIONORM_MODELS`) writes and
reads `priority` like any other field."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import PRIORITY_MODELS_MODULE

from sessionorm import SessionStore, Thread, ValidationError, commands


@pytest.fixture
def with_priority(tmp_path: Path, monkeypatch) -> Path:
    """A store whose threads have the README's `priority` column, and `mine:MODELS` importable."""
    (tmp_path / "mine.py").write_text(PRIORITY_MODELS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSIONORM_MIGRATIONS_DIR", str(tmp_path / "migrations"))
    (tmp_path / "migrations").mkdir()
    db = tmp_path / "dev.sqlite"
    SessionStore(db).close()
    commands.makemigration("add priority", db, models="mine:MODELS", migrations_dir=tmp_path / "migrations")
    commands.migrate(db, migrations_dir=tmp_path / "migrations")
    return db


def test_create_thread_stores_your_column_and_get_thread_reads_it(with_priority):
    with SessionStore(with_priority, models="mine:MODELS") as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        urgent = store.create_thread(session.id, "urgent", priority=2)
        plain = store.create_thread(session.id, "plain")  # the column's default
        got = store.get_thread(urgent)
        assert type(got).__name__ == "PriorityThread" and got.priority == 2
        assert store.get_thread(plain).priority == 0
        assert sorted(t.priority for t in store.get_session_threads(session.id)) == [0, 2]
        # the bound model is yours too: query by your column
        mine = type(got)
        assert [t.name for t in mine.select().where(mine.priority > 1)] == ["urgent"]


def test_models_come_from_the_environment_like_the_clis(with_priority, monkeypatch):
    monkeypatch.setenv("SESSIONORM_MODELS", "mine:MODELS")
    with SessionStore(with_priority) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        assert store.get_thread(store.create_thread(session.id, "t", priority=5)).priority == 5


def test_your_columns_are_checked_before_any_sql(with_priority):
    with SessionStore(with_priority, models="mine:MODELS") as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        for columns, words in [
            ({"priority": "high"}, "priority is an integer column"),
            ({"priority": None}, "priority must not be None"),
            ({"colour": "red"}, "no field of its own named 'colour'"),
            ({"status": "done"}, "no field of its own named 'status'"),
        ]:
            with pytest.raises(ValidationError, match=words):
                store.create_thread(session.id, "t", **columns)
        assert store.get_session_threads(session.id) == []


def test_without_your_models_an_unknown_column_is_refused(with_priority):
    with SessionStore(with_priority) as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        with pytest.raises(ValidationError, match="pass your thread model with models="):
            store.create_thread(session.id, "t", priority=1)
        assert type(store.get_thread(store.create_thread(session.id, "t"))) is Thread


def test_a_model_that_is_no_subclass_is_refused(tmp_path):
    import peewee

    class Other(peewee.Model):
        class Meta:
            table_name = "threads"

    with pytest.raises(ValidationError, match="must subclass sessionorm's Thread"):
        SessionStore(tmp_path / "x.sqlite", models=[Other])
    assert list(tmp_path.iterdir()) == []
