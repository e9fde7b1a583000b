"""The models' row mechanism: set up where each class is defined, never patched after import."""

from __future__ import annotations

import ast
from pathlib import Path

from sessionorm import models
from sessionorm import store as store_module
from sessionorm.models import (
    MODELS,
    BaseModel,
    DataFromRow,
    LazyRowState,
    MigrationChecksum,
    RowFieldAccessor,
    RowModelBase,
    ThreadMessage,
)


def module_level_statements(tree: ast.Module) -> list[ast.stmt]:
    """The statements models.py runs at import, outside its class and function bodies."""
    return [s for s in tree.body if not isinstance(s, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]


def test_models_module_patches_no_class_after_the_fact():
    """No `Model.attr = …`, `del Model.attr`, `setattr(…)` or loop at the module's top level:
    what a model needs comes from its metaclass (`RowModelBase`) and its class body."""
    tree = ast.parse(Path(models.__file__).read_text())
    for statement in module_level_statements(tree):
        assert not isinstance(statement, (ast.Delete, ast.For, ast.While)), ast.unparse(statement)
        for node in ast.walk(statement):
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            assert not any(isinstance(t, ast.Attribute) for t in targets), ast.unparse(statement)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"setattr", "delattr"}, ast.unparse(statement)


def test_every_model_gets_the_row_mechanism_from_its_metaclass():
    for model in (*MODELS, MigrationChecksum):
        assert type(model) is RowModelBase
        assert "__rel__" not in vars(model)  # peewee's class-level None removed: LazyRowState's applies
        assert model.__rel__ is vars(LazyRowState)["__rel__"]
        assert "__repr__" not in vars(model) and model.__repr__ is BaseModel.__repr__
    data = vars(ThreadMessage)["__data__"]
    assert isinstance(data, DataFromRow)
    assert data.names == tuple(f.name for f in ThreadMessage._meta.sorted_fields)
    # the store's SELECT lists the columns in the order `DataFromRow` zips them with
    columns = ", ".join(f'"{f.column_name}"' for f in ThreadMessage._meta.sorted_fields)
    assert store_module.STATEMENTS["messages"].startswith(f"SELECT {columns} FROM")
    assert not any(isinstance(vars(m).get("__data__"), DataFromRow) for m in MODELS if m is not ThreadMessage)


def test_listed_messages_hold_only_their_row_until_used(store, thread_id):
    """The fast read: no dict, no `_dirty`, no `__rel__` per row until something uses them."""
    store.add_thread_messages(thread_id, [("user", "a"), ("assistant", "b")])
    first, second = store.get_thread_messages(thread_id)
    assert set(vars(first)) == {"_row", "_store"}
    # plain fields come straight from the row (`RowFieldAccessor`): still no dict
    assert (first.role, first.content, first.idx, len(first.id)) == ("user", "a", 0, 36)
    assert set(vars(first)) == {"_row", "_store"}
    assert first.created_at.tzinfo is not None and set(vars(first)) == {"_row", "_store", "__data__"}
    assert second.thread.id == thread_id and set(vars(second)) == {"_row", "_store", "__data__", "__rel__"}
    assert "_dirty" not in vars(second)
    second.content = "edited"
    assert second._dirty == {"content"} and second.content == "edited" and second.idx == 1


def test_plain_message_fields_read_from_the_row_and_other_fields_keep_peewees_accessors():
    """Pins peewee's plain `FieldAccessor` class, which `RowModelBase` replaces field by field."""
    accessors = {name: type(vars(ThreadMessage)[name]) for name in ("id", "role", "content", "idx")}
    assert set(accessors.values()) == {RowFieldAccessor}
    assert type(vars(ThreadMessage)["created_at"]).__name__ == "TimestampAccessor"
    assert type(vars(ThreadMessage)["thread"]).__name__ == "StoreForeignKeyAccessor"
    made = ThreadMessage(id="m", thread="T-1", role="user", content="c", idx=3)  # peewee's own way
    assert (made.id, made.role, made.content, made.idx, made.thread_id) == ("m", "user", "c", 3, "T-1")
    made.idx = 4
    assert made.idx == 4 and made._dirty >= {"idx"}
