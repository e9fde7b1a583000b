"""Peewee models: the source of truth for the schema that `diff` and `verify` compare.

Column names are camelCase in the database and snake_case in Python. The migration
scripts hold frozen DDL of their own; `sessionorm diff` proves the two agree.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from peewee import (
    SQL,
    BackrefAccessor,
    BooleanField,
    Check,
    FieldAccessor,
    ForeignKeyAccessor,
    ForeignKeyField,
    IntegerField,
    Metadata,
    Model,
    ModelBase,
    ModelIndex,
    TextField,
)

from .indexes import CONTRACT_INDEXES
from .values import format_timestamp, parse_timestamp

ROLES = ("user", "assistant", "system")


class TimestampAccessor(FieldAccessor):
    """Parses stored text on first read, so listing 10,000 rows parses none it does not show."""

    def __get__(self, instance: Any, instance_type: type | None = None) -> Any:
        if instance is None:
            return self.field
        value = instance.__data__.get(self.name)
        if isinstance(value, str):
            value = instance.__data__[self.name] = parse_timestamp(value)
        return value


class TimestampField(TextField):
    """ISO-8601 UTC text in the database, an aware `datetime` in Python."""

    accessor_class = TimestampAccessor

    def db_value(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return format_timestamp(value)
        return value

    def python_value(self, value: Any) -> Any:
        return parse_timestamp(value)


def json_text(value: list | tuple) -> str:
    """JSON text as JavaScript's JSON.stringify writes it (no spaces, no escaped non-ASCII)."""
    return json.dumps(list(value), ensure_ascii=False, separators=(",", ":"))


class JSONListField(TextField):
    """JSON text in the database (as the orchestrator writes it), a list in Python.

    Text that is not a JSON list comes back verbatim: legacy rows may hold anything.
    """

    def db_value(self, value: Any) -> Any:
        return json_text(value) if isinstance(value, (list, tuple)) else value

    def python_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, list) else value


class ContractMetadata(Metadata):
    """Gives the contract's indexes the orchestrator's names; subclasses of the models inherit it.

    peewee names an index `<table>_<columns>`; the orchestrator's start-up would add a
    duplicate of every index not named its way.
    """

    def fields_to_index(self) -> list[Any]:
        return [
            self.contract_named(index) if isinstance(index, ModelIndex) else index
            for index in super().fields_to_index()
        ]

    def contract_named(self, index: ModelIndex) -> ModelIndex:
        """`index` under the orchestrator's name for its table and columns, if it has one."""
        parts = vars(index)  # peewee keeps an index's parts private (tests/test_peewee_internals.py)
        if parts["_where"] is not None or parts["_unique"]:
            return index
        columns = tuple(getattr(p, "column_name", None) for p in parts["_expressions"])
        name = CONTRACT_INDEXES.get((self.table_name, columns))  # type: ignore[arg-type]
        if name is None:
            return index
        return ModelIndex(
            self.model,
            parts["_expressions"],
            unique=False,
            safe=parts["_safe"],
            using=parts["_using"],
            name=name,
        )


class CreatedOnFirstUse:
    """An instance attribute made by `factory` when first read.

    The store builds rows with only `__data__` (building is the cost of a 10,000-row read);
    peewee's bookkeeping (`_dirty`, `__rel__`) appears when something uses it.
    """

    def __init__(self, name: str, factory: type) -> None:
        self.name, self.factory = name, factory

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.factory()
        return value


class DataFromRow:
    """`__data__` made on first use from the row tuple a store left in `_row`.

    Listing 10,000 messages then builds no dict per row; rows made the usual way (peewee's
    `__init__` sets `__data__` on the instance) never reach this descriptor.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        data = instance.__dict__["__data__"] = dict(zip(self.names, instance.__dict__["_row"], strict=True))
        return data


class RowFieldAccessor(FieldAccessor):
    """A plain field of a store-built row, read straight from the driver's row tuple until
    something makes `__data__` (a write, a timestamp, `save`): reading four fields of
    10,000 messages then builds no dict per row."""

    def __init__(self, model: type, field: Any, name: str, index: int) -> None:
        super().__init__(model, field, name)
        self.index = index

    def __get__(self, instance: Any, instance_type: type | None = None) -> Any:
        if instance is None:
            return self.field
        state = instance.__dict__
        data = state.get("__data__")
        if data is None:
            return state["_row"][self.index]
        return data.get(self.name)


class LazyRowState:
    """What peewee's `Model.__init__` gives every instance (`_dirty`, `__rel__`), made on first
    use instead, for rows a store builds without `__init__`."""

    _dirty = CreatedOnFirstUse("_dirty", set)
    __rel__ = CreatedOnFirstUse("__rel__", dict)


class RowModelBase(ModelBase):
    """peewee's model metaclass, for models whose rows are built from driver rows.

    A model that sets `data_from_row = True` gets `__data__` from the `_row` tuple on first
    use (`DataFromRow`, in field order: the store's SELECT lists them so).
    """

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any], **kwargs: Any) -> Any:
        cls = super().__new__(mcs, name, bases, attrs, **kwargs)
        del cls.__rel__  # peewee's class-level None would hide LazyRowState's
        if "__repr__" not in attrs:
            del cls.__repr__  # peewee's terse one would hide BaseModel's
        if attrs.get("data_from_row"):
            fields = cls._meta.sorted_fields
            cls.__data__ = DataFromRow(tuple(f.name for f in fields))
            for index, field in enumerate(fields):
                if type(cls.__dict__.get(field.name)) is FieldAccessor:  # plain fields only
                    setattr(cls, field.name, RowFieldAccessor(cls, field, field.name, index))
        return cls


class StoreForeignKeyAccessor(ForeignKeyAccessor):
    """`thread.session`, `message.thread`: fetched through the store that returned the row.

    The models are bound to no database (two stores may be open at once), so peewee's own
    lazy load has nowhere to go; a row a store built carries that store as `_store`.
    """

    def get_rel_instance(self, instance: Any) -> Any:
        store = instance.__dict__.get("_store")
        value = instance.__data__.get(self.name)
        if store is None or value is None:
            return super().get_rel_instance(instance)
        if self.name not in instance.__rel__:
            instance.__rel__[self.name] = store._related(self.rel_model, value)
        return instance.__rel__[self.name]


class StoreBackrefAccessor(BackrefAccessor):
    """`session.threads` (newest updated first), `thread.messages` (by idx), via the row's store."""

    def __get__(self, instance: Any, instance_type: type | None = None) -> Any:
        store = instance.__dict__.get("_store") if instance is not None else None
        if store is None:
            return super().__get__(instance, instance_type)
        return store._children(self.rel_model, instance.__data__[self.field.rel_field.name])


class StoreForeignKeyField(ForeignKeyField):
    """A foreign key whose accessors go through the store that returned the row."""

    accessor_class = StoreForeignKeyAccessor
    backref_accessor_class = StoreBackrefAccessor


class BaseModel(LazyRowState, Model, metaclass=RowModelBase):
    """Readable repr for REPL use: the class and its identifying columns."""

    _repr_fields: tuple[str, ...] = ("id",)
    _store: Any  # the SessionStore a row came from: its relations go through it
    _row: tuple  # message rows: the driver's row, until `__data__` is first used

    class Meta:
        model_metadata_class = ContractMetadata

    def save(self, force_insert: bool = False, only: Any = None) -> Any:
        """peewee's `save`; on a database a `SessionStore` has open, through the store: the
        values checked as its own writes are, in its write transaction (`SessionStore._save`)."""
        store_ref = getattr(self._meta.database, "sessionorm_store", None)  # a weak reference
        store = store_ref() if store_ref is not None else None
        if store is None:
            return super().save(force_insert=force_insert, only=only)
        return store._save(self, force_insert, only)

    def __repr__(self) -> str:
        shown = [f"{name}={getattr(self, name)!r}" for name in self._repr_fields]
        shown += [f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_")]
        return f"<{type(self).__name__} {', '.join(shown)}>"


class Session(BaseModel):
    """A row of the orchestrator's legacy `sessions` table (the `pre` layout)."""

    id = TextField(primary_key=True)
    name = TextField()
    amp_prompt = TextField(column_name="ampPrompt")
    follow_up_prompts = JSONListField(column_name="followUpPrompts", null=True)
    repo_root = TextField(column_name="repoRoot")
    base_branch = TextField(column_name="baseBranch")
    branch_name = TextField(column_name="branchName")
    worktree_path = TextField(column_name="worktreePath")
    status = TextField()
    script_command = TextField(column_name="scriptCommand", null=True)
    model_override = TextField(column_name="modelOverride", null=True)
    thread_id = TextField(column_name="threadId", null=True)
    created_at = TimestampField(column_name="createdAt")
    last_run = TimestampField(column_name="lastRun", null=True)
    notes = TextField(null=True)
    context_included = BooleanField(column_name="contextIncluded", null=True)

    thread_count: int  # set on sessions the store returns
    message_count: int  # set by `list_sessions(activity=True)`, with `last_activity`
    last_activity: dt.datetime | None

    _repr_fields = ("id", "name", "status", "thread_id")

    class Meta:
        table_name = "sessions"


class Thread(BaseModel):
    """A conversation thread of a session."""

    message_count: int  # set on threads the store returns
    session_id: str  # the session's id, without a query (the foreign key's `object_id_name`)
    id = TextField(primary_key=True)
    session = StoreForeignKeyField(
        Session,
        column_name="sessionId",
        field="id",
        object_id_name="session_id",
        on_delete="CASCADE",
        backref="threads",
    )
    name = TextField()
    created_at = TimestampField(column_name="createdAt", index=True)
    updated_at = TimestampField(column_name="updatedAt", index=True)
    status = TextField(default="active", constraints=[SQL("DEFAULT 'active'")], index=True)
    # The orchestrator app's column (its f785b0c start-up adds it), with the app's CHECK.
    amp_mode = TextField(
        column_name="ampMode", null=True, constraints=[Check(""""ampMode" IN ('production', 'local-cli')""")]
    )

    _repr_fields = ("id", "session_id", "name", "status", "updated_at")

    class Meta:
        table_name = "threads"
        # Listing a session's threads, newest updated first, without a sort or scan.
        indexes = ((("session", "updated_at"), False),)


class ThreadMessage(BaseModel):
    """One message of a thread; `idx` orders them from 0 without gaps."""

    id = TextField(primary_key=True)
    thread = StoreForeignKeyField(
        Thread,
        column_name="threadId",
        field="id",
        object_id_name="thread_id",
        on_delete="CASCADE",
        backref="messages",
    )
    thread_id: str  # the thread's id, without a query (the foreign key's `object_id_name`)
    role = TextField(constraints=[Check("role IN ('user','assistant','system')")], index=True)
    content = TextField()
    created_at = TimestampField(column_name="createdAt", index=True)
    idx = IntegerField(index=True)

    _repr_fields = ("id", "thread_id", "idx", "role")
    data_from_row = True  # the store's message rows: `__data__` from `_row` on first use

    class Meta:
        table_name = "thread_messages"
        constraints = [SQL('UNIQUE ("threadId", "idx")')]


class MigrationRecord(BaseModel):
    """A row of the `migrations` history table, shared with the TypeScript tool."""

    # null=True only drops peewee's "NOT NULL": the orchestrator's DDL is `version INTEGER
    # PRIMARY KEY`, and a rowid alias can never hold NULL anyway.
    version = IntegerField(primary_key=True, null=True)
    name = TextField()
    applied_at = TextField()

    _repr_fields = ("version", "name", "applied_at")

    class Meta:
        table_name = "migrations"


class MigrationChecksum(BaseModel):
    """sha256 of each migration script when it was applied, so `verify` sees later edits.

    A table of its own: `migrations` stays exactly as the TypeScript tool defined it.
    """

    version = IntegerField(primary_key=True)
    sha256 = TextField()

    _repr_fields = ("version", "sha256")

    class Meta:
        table_name = "migration_checksums"


MODELS = (Session, Thread, ThreadMessage, MigrationRecord)
# Every table sessionorm's schema names (its migrations lock them; any other is another program's).
# The record of migrated threads (migrations 4 and 5; see `thread_record`).
RECORD_TABLES = ("sessionorm_migrated_threads", "sessionorm_unmatched_sessions", "sessionorm_renamed_threads")
# An agent's sessions and its exact items (migration 6; see `agent_memory`).
AGENT_TABLES = ("sessionorm_agent_sessions", "sessionorm_agent_items")
# The search index (migration 7; see `backends.search`): never carried by `copy`, whose
# target's migrations make it and whose triggers fill it. SQLite's FTS5 keeps its index in
# the shadow tables `<name>_data`, `_idx`, `_docsize` and `_config`.
SEARCH_TABLES = (
    "sessionorm_search_keys",
    "sessionorm_search",
    *(f"sessionorm_search_{shadow}" for shadow in ("data", "idx", "docsize", "config", "content")),
)
# Its other objects: SQLite's view and triggers, PostgreSQL's trigger.
SEARCH_OBJECTS = (
    "view sessionorm_search_text",
    "trigger sessionorm_search_insert",
    "trigger sessionorm_search_delete",
    "trigger sessionorm_search_update",
    "trigger sessionorm_search_index",
)
OWN_TABLES = frozenset(m._meta.table_name for m in (*MODELS, MigrationChecksum)) | {
    *RECORD_TABLES,
    *AGENT_TABLES,
    *SEARCH_TABLES,
}
