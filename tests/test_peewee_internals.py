"""Pins for every peewee / playhouse internal sessionorm relies on.

Each test names the module that uses the internal; when a peewee upgrade changes one, the
test fails here, loudly, instead of the package misbehaving somewhere else.
"""

from __future__ import annotations

import inspect
import sqlite3
from pathlib import Path

import peewee
import pytest
from playhouse.migrate import CockroachDBMigrator, PostgresqlMigrator, SchemaMigrator, SqliteMigrator
from playhouse.migrations import Migration, Runner, _resolve_models

from sessionorm import MigrationError
from sessionorm.backends import backend_of
from sessionorm.backends.pg_migrator import PostgresSafety
from sessionorm.backends.sqlite_migrator import SqliteSafety
from sessionorm.models import Thread, ThreadMessage
from sessionorm.safe_migrator import make_migrator


def test_resolve_models_is_the_loader_commands_load_models_calls():
    """model_loading.load_models: `_resolve_models("module:ATTR")` -> (models, …)."""
    models, _ = _resolve_models("sessionorm.models:MODELS")
    assert Thread in models and ThreadMessage in models


def test_the_runner_planning_copied_from_peewee_still_matches_its_inputs(tmp_path: Path):
    """runner._plan_up/_plan_down (copied from Runner.up/down): `status()` merges files and
    history as `Migration(idx, name, path, applied)`, and `load()` runs a script's file."""
    assert Migration._fields == ("idx", "name", "path", "applied")
    (tmp_path / "0001_first.py").write_text("def up(migrator, database):\n    pass\n")
    found = Migration.load_directory(str(tmp_path))
    assert [(m.idx, m.name) for m in found] == [(1, "0001_first")]
    assert callable(found[0].load().up)
    assert {"up", "down", "status", "applied", "migrations"} <= set(vars(Runner))
    assert "target" in inspect.signature(Runner.up).parameters


def test_model_instances_keep_data_dirty_and_relations_where_the_store_expects():
    """models.DataFromRow / CreatedOnFirstUse: peewee keeps field values in `__data__`, the
    changed names in `_dirty` and fetched parents in `__rel__`, all set by `Model.__init__`."""

    class Plain(peewee.Model):
        name = peewee.TextField()

    row = Plain(name="x")
    assert row.__data__ == {"name": "x"}
    assert row._dirty == {"name"}
    assert row.__rel__ == {}
    init = inspect.getsource(peewee.Model.__init__)
    assert "__data__" in init and "_dirty" in init and "__rel__" in init
    assert "__rel__" in inspect.getsource(peewee.ForeignKeyAccessor.get_rel_instance)


def test_index_objects_keep_their_parts_in_private_attributes():
    """indexes.model_indexes and models.ContractMetadata read an Index's parts."""
    index = Thread._meta.fields_to_index()[0]
    for name in ("_expressions", "_name", "_where", "_unique", "_safe", "_using"):
        assert hasattr(index, name), name


def test_update_column_is_the_rebuild_every_sqlite_alteration_goes_through(tmp_path: Path):
    """safe_migrator.SqliteSafety overrides `_update_column` to refuse unsafe rebuilds."""
    assert list(inspect.signature(SqliteMigrator._update_column).parameters) == [
        "self",
        "table",
        "column_to_update",
        "fn",
    ]
    db = peewee.SqliteDatabase(str(tmp_path / "t.db"))
    db.execute_sql("CREATE TABLE t (a TEXT, b TEXT)")
    db.execute_sql("CREATE TRIGGER keep AFTER INSERT ON t BEGIN SELECT 1; END")
    migrator = make_migrator(db)
    with pytest.raises(MigrationError, match="trigger keep"), migrator.migration_context():
        migrator.migrate(migrator.add_not_null("t", "a"))
    assert (
        db.execute_sql("SELECT sql FROM sqlite_master WHERE name = 't'").fetchone()[0]
        == "CREATE TABLE t (a TEXT, b TEXT)"
    )
    db.close()


def test_from_database_picks_the_class_the_safety_is_mixed_into():
    """safe_migrator.make_migrator mixes its safety in front of `from_database`'s class."""
    from playhouse.cockroachdb import CockroachDatabase

    assert type(SchemaMigrator.from_database(peewee.SqliteDatabase(None))) is SqliteMigrator
    assert type(SchemaMigrator.from_database(peewee.PostgresqlDatabase(None))) is PostgresqlMigrator
    cockroach = CockroachDatabase("x")
    assert type(SchemaMigrator.from_database(cockroach)) is CockroachDBMigrator
    assert issubclass(CockroachDBMigrator, PostgresqlMigrator)
    assert "migration_context" in vars(SchemaMigrator)


def test_the_transaction_stack_dialect_write_pushes_itself_on():
    """backends.sqlite_files.write_transaction: peewee's transaction stack and transaction objects."""
    for name in (
        "transaction_depth",
        "push_transaction",
        "pop_transaction",
        "top_transaction",
        "transaction",
        "savepoint",
    ):
        assert callable(getattr(peewee.Database, name)), name
    for cls in (peewee._transaction, peewee._savepoint):  # type: ignore[attr-defined]
        for name in ("commit", "rollback"):
            assert "begin" in inspect.signature(getattr(cls, name)).parameters, (cls, name)


def test_postgres_begin_relies_on_peewee_internals():
    """postgres.TransactionTimeouts.begin and open_postgres."""
    assert hasattr(peewee, "__exception_wrapper__")
    db = peewee.PostgresqlDatabase("x", host="h", connect_timeout=3)
    assert db.connect_params["connect_timeout"] == 3
    assert hasattr(db, "_isolation_level")
    assert callable(db._adapter.isolation_level_str)


def test_write_inside_write_is_a_savepoint_and_failures_unwind_peewee_stack(tmp_path: Path):
    """The behaviour the store and the migrator rely on, on a real file."""
    db = peewee.SqliteDatabase(str(tmp_path / "w.db"))
    db.execute_sql("CREATE TABLE t (a INTEGER)")
    dialect = backend_of(db)
    with dialect.write():
        assert db.connection().in_transaction and db.transaction_depth() == 1
        db.execute_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(ZeroDivisionError), dialect.write():
            db.execute_sql("INSERT INTO t VALUES (2)")
            raise ZeroDivisionError
        with db.atomic():  # peewee's own atomic() inside: a savepoint too
            db.execute_sql("INSERT INTO t VALUES (3)")
    assert db.transaction_depth() == 0 and not db.connection().in_transaction
    assert [r[0] for r in db.execute_sql("SELECT a FROM t ORDER BY a")] == [1, 3]
    with pytest.raises(sqlite3.Error), dialect.write():
        db.execute_sql("INSERT INTO t VALUES (4)")
        db.connection().execute("ROLLBACK")  # as SQLite does itself on SQLITE_FULL
        db.connection().execute("SELECT * FROM missing")
    assert db.transaction_depth() == 0
    assert [r[0] for r in db.execute_sql("SELECT a FROM t ORDER BY a")] == [1, 3]
    db.close()


def test_make_migrator_keeps_every_setting_of_cockroachdbs_migrator():
    from playhouse.cockroachdb import CockroachDatabase

    migrator = make_migrator(CockroachDatabase("x"))
    assert isinstance(migrator, CockroachDBMigrator) and isinstance(migrator, PostgresSafety)
    assert migrator.transactional_ddl is False and migrator.explicit_create_foreign_key is True
    operation = migrator.drop_index("threads", "idx_x")  # run() would execute it; build it only
    sql, _ = operation.fn(migrator, *operation.args).query()
    assert sql.endswith("CASCADE")
    assert isinstance(make_migrator(peewee.SqliteDatabase(None)), SqliteSafety)


def test_a_model_defined_later_gets_rows_built_from_tuples_too():
    """The row mechanism is the models' metaclass (`RowModelBase`), not a list of classes
    patched after import: a model of the caller's gets it by subclassing `BaseModel`."""
    from sessionorm.models import BaseModel, RowModelBase

    class Note(BaseModel):
        id = peewee.TextField(primary_key=True)
        text = peewee.TextField()
        data_from_row = True

    assert type(Note) is RowModelBase
    note = Note.__new__(Note)
    note._row = ("n1", "hello")
    assert "__data__" not in vars(note)
    assert (note.id, note.text) == ("n1", "hello") and note.__data__ == {"id": "n1", "text": "hello"}
    assert note._dirty == set() and note.__rel__ == {}  # made on first use
    assert repr(note) == "<Note id='n1'>"
    made = Note(id="n2", text="t")  # peewee's own constructor still sets everything itself
    assert vars(made)["__data__"] == {"id": "n2", "text": "t"} and made._dirty == {"id", "text"}
