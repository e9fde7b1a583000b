"""One backend per engine: outside `backends/` and the URL parsing in `target.py`, no module of
the package asks which engine it runs on, and each backend answers every question for it."""

from __future__ import annotations

import re
from pathlib import Path

import peewee
import pytest

import sessionorm
from sessionorm import commands
from sessionorm.backends import Backend, PostgresBackend, SqliteBackend, backend_for, backend_of, opened
from sessionorm.target import Target

PACKAGE = Path(sessionorm.__file__).parent
ALLOWED = {PACKAGE / "target.py"}  # reads the URL's scheme: which engine a target names
# The ways the question was asked before there were backends, and the ways it could come back.
ENGINE_QUESTIONS = re.compile(
    r"\bis_server\b|\bis_pg\b|\bis_postgres\b|\bis_sqlite\b"
    r"|\bPostgresqlDatabase\b|\bSqliteDatabase\b|\bCockroachDatabase\b"
    r"|\bSqliteBackend\b|\bPostgresBackend\b|\bSqliteMigrator\b|\bPostgresqlMigrator\b"
    r"|\bimport psycopg\b|\bfrom psycopg\b"
    r"|\bbackend\w*\.name\b|[!=]=\s*[\"'](?:SQLite|PostgreSQL)[\"']"
    r"|\bsqlite_master\b|\bpg_catalog\b"
)


def engine_questions(path: Path) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ENGINE_QUESTIONS.search(line)
    ]


def test_no_module_outside_backends_asks_which_engine_it_runs_on():
    outside = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "backends" not in p.relative_to(PACKAGE).parts and p not in ALLOWED
    ]
    assert len(outside) > 30
    found = [hit for path in outside for hit in engine_questions(path)]
    assert found == []


def test_the_grep_finds_what_it_looks_for(tmp_path: Path):
    """The pattern is not blind: each old way of asking is caught."""
    for line in (
        "if target.is_server:",
        "if side.is_pg:",
        "isinstance(db, peewee.PostgresqlDatabase)",
        "isinstance(db, SqliteDatabase)",
        "if backend.name == 'SQLite':",
        "import psycopg",
        "SELECT name FROM sqlite_master",
    ):
        assert ENGINE_QUESTIONS.search(line), line
    assert engine_questions(PACKAGE / "backends" / "choice.py")  # where the question is asked


def test_a_backend_is_chosen_once_from_the_target_or_the_database(tmp_path: Path):
    target = Target.of(tmp_path / "b.sqlite")
    assert backend_for(target) is SqliteBackend
    assert backend_for(Target.of("postgresql://u@h/db")) is PostgresBackend
    with opened(target, create=True) as db:
        assert isinstance(backend_of(db), SqliteBackend)
        assert backend_of(db).catalog.table_names() == []
    with pytest.raises(TypeError, match="SQLite and PostgreSQL"):
        backend_of(peewee.Database(None))


def test_each_backend_answers_every_question_of_the_base():
    asked = {
        name
        for name, value in vars(Backend).items()
        if callable(value) or isinstance(value, (classmethod, staticmethod))
    } - {"__init__"}
    for backend in (SqliteBackend, PostgresBackend):
        for name in asked:
            assert getattr(backend, name) is not None, (backend, name)
        assert backend.open is not Backend.open and backend.backup is not Backend.backup
        assert backend.rehearsal is not Backend.rehearsal and backend.copy_into is not Backend.copy_into
        assert backend.snapshot is not Backend.snapshot and backend.copy_out is not Backend.copy_out
        assert set(backend.copy_types) == {"text", "integer", "boolean", "real", "blob"}


def test_sessionorm_copy_is_the_command_not_the_package():
    """The `copy/` package's name is also the command's: the package's __init__ binds the
    function after importing the package, and importing a module of it again changes nothing."""
    import sessionorm.copy.transfer  # noqa: F401

    assert sessionorm.copy is commands.copy and callable(sessionorm.copy)
