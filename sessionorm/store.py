"""`SessionStore`: sessions, their threads and each thread's ordered messages.

Hot paths send fixed SQL straight to the driver (no query building per call); rows come
back as model instances with snake_case attributes and aware datetimes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import peewee

from .agent_memory import AgentMemory, AgentSessionInfo
from .backends import backend_for, backend_of, opened
from .backends.search import Filters, MessageSearch
from .database import first_line, translate_errors
from .errors import NeedsMigrationError, NotFoundError, SessionormError, ValidationError
from .identifiers import q
from .migration_options import BackfillResult
from .model_loading import store_models
from .models import JSONListField, Session, Thread, ThreadMessage, json_text
from .runner import MigrationRunner, runner_for
from .session_children import delete_session_rows
from .target import Target
from .thread_record import RECORD_DELETED, RECORD_SESSION_DELETED
from .validation import (
    INTEGER_RANGE,
    check_amp_mode,
    check_column_value,
    check_count,
    check_id,
    check_messages,
    check_model_row,
    check_role,
    check_since,
    check_text,
    quoted,
)
from .values import format_timestamp, new_id, new_thread_id, now_timestamp, parse_timestamp


def column_list(model: type[peewee.Model], alias: str = "") -> str:
    """The model's columns in field order, quoted: the order rows are built from."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + q(f.column_name) for f in model._meta.sorted_fields)


def insert_template(model: type[peewee.Model]) -> str:
    """`INSERT` of every column of the model, a `{p}` marker each."""
    marks = ", ".join(["{p}"] * len(model._meta.sorted_fields))
    return f"INSERT INTO {q(model._meta.table_name)} ({column_list(model)}) VALUES ({marks})"


LATEST_MESSAGE = '(SELECT max(m."createdAt") FROM thread_messages m WHERE m."threadId" = t.id)'
ID_CHUNK = 500  # ids per `IN (…)` list, well under every engine's limit of parameters
MESSAGE_COUNT = '(SELECT count(*) FROM thread_messages m WHERE m."threadId" = t.id)'


def thread_select(model: type[Thread]) -> str:
    """SELECT of a thread model's columns, then its message count (`thread_from_row`)."""
    return f"SELECT {column_list(model, 't')}, {MESSAGE_COUNT} FROM threads t"


THREAD_SELECT = thread_select(Thread)
# A session's threads, counted by the `sessionId` index: `session.thread_count`.
THREAD_COUNT = '(SELECT count(*) FROM threads c WHERE c."sessionId" = sessions.id) AS "threadCount"'


def insert_thread_template(own_columns: Iterable[str] = ()) -> str:
    """INSERT of a thread into an existing session (no row when the session is missing), with
    the columns of your own thread model after sessionorm's; `{p}` markers."""
    own = list(own_columns)
    columns = column_list(Thread) + "".join(f", {q(c)}" for c in own)
    marks = "".join(", {p}" for _ in own)
    return (
        f"INSERT INTO threads ({columns}) SELECT {{p}}, id, {{p}}, {{p}}, {{p}}, 'active', {{p}}{marks}"
        " FROM sessions WHERE id = {p}"
    )


# The store's fixed statements, `{p}` standing for the backend's parameter marker.
STATEMENTS = {
    "next_idx": "SELECT (SELECT coalesce(max(idx), -1) + 1 FROM thread_messages"
    ' WHERE "threadId" = {p}) FROM threads WHERE id = {p}',
    "insert_message": insert_template(ThreadMessage),
    "touch_thread": 'UPDATE threads SET "updatedAt" = {p} WHERE id = {p}',
    "insert_thread": insert_thread_template(),
    "get_thread": THREAD_SELECT + " WHERE t.id = {p}",
    "session_threads": THREAD_SELECT + ' WHERE t."sessionId" = {p} ORDER BY t."updatedAt" DESC',
    "thread_exists": "SELECT 1 FROM threads WHERE id = {p}",
    "session_exists": "SELECT 1 FROM sessions WHERE id = {p}",
    "get_session": f"SELECT *, {THREAD_COUNT} FROM sessions WHERE id = {{p}}",
    "delete_thread": "DELETE FROM threads WHERE id = {p}",
    "delete_message": "DELETE FROM thread_messages WHERE id = {p}",
    "message_thread": 'SELECT "threadId" FROM thread_messages WHERE id = {p}',
    "latest_message": f"SELECT {column_list(ThreadMessage)} FROM thread_messages"
    ' WHERE "threadId" = {p} ORDER BY idx DESC LIMIT 1',
    "forget_thread": RECORD_DELETED,
    "forget_session_threads": RECORD_SESSION_DELETED,
    "messages": f"SELECT {column_list(ThreadMessage)} FROM thread_messages WHERE " + '"threadId" = {p}',
}


# Columns holding JSON text, as the orchestrator writes them: a list in Python.
JSON_COLUMNS = {f.column_name for f in Session._meta.sorted_fields if isinstance(f, JSONListField)}


def json_list(value: list | tuple, key: str) -> str:
    """A list of strings as the JSON text the orchestrator stores."""
    if not all(isinstance(item, str) for item in value):
        raise ValidationError(f"{key} must be a list of strings")
    return json_text(value)


def snake_case(column: str) -> str:
    """`repoRoot` → `repo_root`."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", column).lower()


def messages_from_rows(rows: list[tuple], store: SessionStore) -> list[ThreadMessage]:
    """Model instances from rows: the row and its store; `__data__` is made on first use.

    Two plain attribute assignments per row (see `models.DataFromRow`): building a dict per
    row, or one `__dict__.update`, took most of a 10,000-message read.
    """
    new = ThreadMessage.__new__
    out = []
    for row in rows:
        message = new(ThreadMessage)
        message._row = row
        message._store = store
        out.append(message)
    return out


@dataclass
class SearchHit:
    """One message a search found: `.message` (its thread and session reachable), `.snippet`
    (the match in context, marked «like this»), `.rank` (higher is better)."""

    message: ThreadMessage
    snippet: str
    rank: float


class Unset:
    """The default of an argument for which None means "set to NULL" (`update_thread`)."""


UNSET = Unset()

BOUND_MODELS = (Session, Thread, ThreadMessage)  # the models a store's database answers for
# Oldest first: the models query the latest one's database. Weak: a store dropped without
# `close()` is collected as before (its database stays bound until another store opens or closes).
OPEN_STORES: list[weakref.ref[SessionStore]] = []


def latest_open_store() -> SessionStore | None:
    for ref in reversed(OPEN_STORES):
        store = ref()
        if store is not None and not store._closed:
            return store
    return None


def bound_models(own: Iterable[type[peewee.Model]]) -> tuple[type[peewee.Model], ...]:
    """sessionorm's models and a store's own subclasses of them."""
    return tuple(dict.fromkeys([*BOUND_MODELS, *own]))


def bind_models(db: peewee.Database | None, own: Iterable[type[peewee.Model]] = ()) -> None:
    """Point the models (`bound_models`) at `db` (None: at no database), as `Model.bind` does."""
    for model in bound_models(own):
        model.bind(db, bind_refs=False, bind_backrefs=False)  # type: ignore[arg-type]  # None unbinds


class ThreadMessages(Sequence):
    """`thread.messages`: the thread's messages in idx order, read when first used; called, a
    page of them read on its own (`thread.messages(limit=20, after_idx=40)`, `(last=5)`), as
    `get_thread_messages` takes them, without reading the rest."""

    def __init__(self, store: SessionStore, thread_id: str) -> None:
        self._store, self._thread_id = store, thread_id
        self._all: list[ThreadMessage] | None = None

    def _messages(self) -> list[ThreadMessage]:
        if self._all is None:
            self._all = self._store.get_thread_messages(self._thread_id)
        return self._all

    def __call__(
        self, after_idx: int | None = None, limit: int | None = None, last: int | None = None
    ) -> list[ThreadMessage]:
        return self._store.get_thread_messages(self._thread_id, after_idx=after_idx, limit=limit, last=last)

    def __getitem__(self, index: Any) -> Any:
        return self._messages()[index]

    def __len__(self) -> int:
        return len(self._messages())

    def __eq__(self, other: object) -> bool:
        return self._messages() == (list(other) if isinstance(other, Sequence) else other)

    __hash__ = None  # type: ignore[assignment]  # a list's value, not an identity

    def __repr__(self) -> str:
        return repr(self._messages())


class SessionStore:
    """Sessions, threads and messages in one SQLite file (or a PostgreSQL URL).

    Opening a new or empty database applies every migration; opening one that holds
    data with migrations pending raises `NeedsMigrationError` unless `migrate=True`.
    """

    def __init__(
        self,
        path: str | os.PathLike | Target | None = None,
        *,
        url: str | None = None,
        busy_timeout: float | None = None,
        migrate: bool = False,
        readonly: bool = False,
        models: Iterable[type[peewee.Model]] | str | None = None,
    ) -> None:
        """`path`: a SQLite file or a database URL (None: the default path); or `url`.

        `busy_timeout`: seconds to wait for another writer's lock (default 5, or the
        URL's `timeout`). `readonly`: read an existing, migrated database (a file without
        write permission too); every write raises `SessionormError`, and the file and its
        -wal/-shm are left as they were. `models`: your subclasses of `Session`, `Thread` or
        `ThreadMessage` with columns of your own (a list, or `MODULE[:ATTR]`; default:
        `$SESSIONORM_MODELS`, else sessionorm's), which the store then reads and writes.
        """
        self._closed = True  # until it is open
        self._models = store_models(models)
        if path is not None and url is not None:
            raise ValidationError("give a path or a url, not both")
        if readonly and migrate:
            raise ValidationError("a read-only store cannot migrate (readonly=True with migrate=True)")
        target = Target.of(Target.from_url(url) if url is not None else path, busy_timeout)
        self.location = str(target)
        self._target: Target | None = target  # whose scripts the runner runs (`runner_for`)
        backend = backend_for(target)
        if readonly:
            self._open_read_only(target)
            return
        backend.check_writable(target)  # the store writes: refused before anything reads it
        if backend.needs_read_only_check(target):
            self._refuse_if_needs_migration(target, migrate)
        self.db = backend.open(target, create=True)
        self._attach(self.db, self.location)
        try:
            self._apply_migrations(migrate)
        except BaseException:
            self.db.close()
            raise
        self._bind()

    def _open_read_only(self, target: Target) -> None:
        """The database as it is, never written: it must exist and be fully migrated."""
        self.db = backend_for(target).open(target, readonly=True)
        self._attach(self.db, self.location)
        self._readonly = True
        try:
            with translate_errors(self.location):
                pending = [m.name for m in runner_for(self._target, self.db).pending()]
            if pending:
                option = self.backend.cli_option
                raise NeedsMigrationError(
                    f"{self.location} has pending migrations ({', '.join(pending)}); a read-only "
                    f"store reads migrated databases only (`sessionorm migrate --backup {option} "
                    f"{self.location}` migrates it)"
                )
        except BaseException:
            self.db.close()
            self._closed = True
            raise
        self._bind()

    def _bind(self) -> None:
        """The models answer queries against this store's database until it closes (or a
        store opened later takes them; `bound()` names one explicitly)."""
        self.db.sessionorm_store = weakref.ref(self)  # type: ignore[attr-defined]  # for BaseModel.save
        OPEN_STORES.append(weakref.ref(self))
        bind_models(self.db, self._models)

    def bound(self) -> Any:
        """A block in which `Session`, `Thread` and `ThreadMessage` query this store's
        database, whichever store was opened last (peewee's `Database.bind_ctx`)."""
        self._refuse_closed()
        return self.db.bind_ctx(bound_models(self._models), bind_refs=False, bind_backrefs=False)

    def _save(self, instance: peewee.Model, force_insert: bool, only: Any) -> Any:
        """`instance.save()` on this store's database: its values checked as the store's own
        writes are (`check_model_row`), then written in one write transaction."""
        names = [f if isinstance(f, str) else f.name for f in only] if only else list(instance.__data__)
        check_model_row(instance, names, self._nul_ok)
        try:
            with self._write():
                return peewee.Model.save(instance, force_insert=force_insert, only=only)
        except (sqlite3.IntegrityError, peewee.IntegrityError) as exc:
            raise ValidationError(
                f"the database refused the {type(instance).__name__}: {first_line(exc)}"
            ) from None

    @classmethod
    def on_database(
        cls, db: peewee.Database, location: str = "", target: Target | None = None
    ) -> SessionStore:
        """A store on a database that is already open (no migrations run; the caller closes it).

        Writes made inside a transaction the caller holds become savepoints of it, so one
        outer rollback undoes them all (`verify --exercise`). `target`: the database's
        `Target`, whose migrations folder the data step runs too (default: the shipped scripts).
        """
        store = cls.__new__(cls)
        store._models = (Session, Thread, ThreadMessage)
        store._target = target
        store._attach(db, location or repr(db))
        return store

    def _attach(self, db: peewee.Database, location: str) -> None:
        """Use the open `db`: its backend's SQL, no cached column list yet."""
        self.db, self.location = db, location
        self.backend = backend_of(db)
        self._sql = {key: self.backend.sql(template) for key, template in STATEMENTS.items()}
        thread_model = self._models[1]
        if thread_model is not Thread:  # your own columns: read them too
            select = thread_select(thread_model)
            self._sql["get_thread"] = self.backend.sql(select + " WHERE t.id = {p}")
            self._sql["session_threads"] = self.backend.sql(
                select + ' WHERE t."sessionId" = {p} ORDER BY t."updatedAt" DESC'
            )
        self._nul_ok = self.backend.nul_in_text
        self._session_columns: dict[str, Any] | None = None
        self._has_search = False  # known once asked (`_search_index`)
        self._closed = False
        self._readonly = False

    # -- lifecycle -------------------------------------------------------------------------

    def _pending(self, db: peewee.Database) -> tuple[MigrationRunner, list[str]]:
        runner = runner_for(self._target, db)
        return runner, [m.name for m in runner.pending()]

    def _refuse_data(self, pending: list[str], db: peewee.Database) -> None:
        """`NeedsMigrationError` if `db` holds data: migrating it is a decision for its owner."""
        if holds_data(db):
            option = backend_of(db).cli_option
            raise NeedsMigrationError(
                f"{self.location} has pending migrations ({', '.join(pending)}); back it up and "
                f"run `sessionorm migrate --backup {option} {self.location}` "
                "(or open it with migrate=True)"
            )

    def _refuse_if_needs_migration(self, target: Target, migrate: bool) -> None:
        """Check the database read-only first, so that a refused one keeps every byte
        (`Backend.needs_read_only_check`): another program's tables always, data needing a
        migration unless `migrate`."""
        with opened(target, readonly=True) as db:
            runner = runner_for(self._target, db)
            pending = runner.pending()
            if pending:
                runner.refuse_foreign_tables([m.load() for m in pending])
                if not migrate:
                    self._refuse_data([m.name for m in pending], db)

    def _apply_migrations(self, migrate: bool) -> None:
        with translate_errors(self.location):
            runner, pending = self._pending(self.db)
            if pending:
                # decided under the write lock: another process may have migrated the file
                # and written rows since (then nothing is pending and nothing is refused)
                refuse = None if migrate else (lambda names: self._refuse_data(names, self.db))
                runner.up(before=refuse)
                self.backend.search.catch_up()  # messages from before the index, as `migrate` does

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards. The models go back to
        the latest store still open (or to no database)."""
        self._closed = True
        OPEN_STORES[:] = [ref for ref in OPEN_STORES if ref() not in (None, self)]
        latest = latest_open_store()
        bind_models(latest.db if latest is not None else None, latest._models if latest is not None else ())
        self.db.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SessionStore {self.location}>"

    # -- plumbing --------------------------------------------------------------------------

    def _execute(self, key: str, params: tuple = ()) -> Any:
        return self._query(self._sql[key], params)

    def _query(self, sql: str, params: tuple | list = ()) -> Any:
        self._refuse_closed()
        return self.backend.execute(sql, params)

    def _refuse_closed(self) -> None:
        # peewee reconnects on demand (a feature for other threads); a closed store must not.
        if self._closed:
            raise SessionormError(f"{self!r} is closed")

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction holding the write lock from its first statement (a savepoint
        inside a transaction the caller holds)."""
        with translate_errors(self.location):
            self._refuse_closed()
            if self._readonly:
                raise SessionormError(f"{self!r} is open read-only; nothing was written")
            with self.backend.write():
                yield

    def _read(self, key: str, params: tuple) -> list[tuple]:
        with translate_errors(self.location):
            return self._execute(key, params).fetchall()

    def _require(self, key: str, ident: str, what: str) -> None:
        if not self._execute(key, (ident,)).fetchone():
            raise NotFoundError(f"no {what} with id {quoted(ident)}")

    # -- sessions --------------------------------------------------------------------------

    def _session_meta(self) -> dict[str, Any]:
        """The live `sessions` columns by name (legacy layouts differ in columns and order)."""
        if self._session_columns is None:
            self._session_columns = {c.name: c for c in self.db.get_columns("sessions")}
        return self._session_columns

    def session_columns(self) -> list[str]:
        return list(self._session_meta())

    def create_session(
        self, name: str, amp_prompt: str | None, repo_root: str, **other_columns: Any
    ) -> Session:
        """Insert a session; unset NOT NULL legacy columns get the orchestrator's defaults."""
        check_text(name, "name", allow_empty=False, nul_ok=self._nul_ok)
        if amp_prompt is not None:
            check_text(amp_prompt, "amp_prompt", nul_ok=self._nul_ok)
        check_text(repo_root, "repo_root", allow_empty=False, nul_ok=self._nul_ok)
        row = self._other_session_columns(other_columns)
        session_id = row.setdefault("id", new_id())
        check_id(session_id, "id", nul_ok=self._nul_ok)
        row.update(name=name, ampPrompt=amp_prompt, repoRoot=repo_root)
        session_defaults(row, name, repo_root, session_id)
        self._check_not_null(row)
        names = ", ".join(map(q, row))
        marks = ", ".join([self.backend.param] * len(row))
        try:
            with self._write():
                if self._execute("session_exists", (session_id,)).fetchone():
                    raise ValidationError(f"a session with id {quoted(session_id)} already exists")
                self._query(f"INSERT INTO sessions ({names}) VALUES ({marks})", tuple(row.values()))
        except (sqlite3.IntegrityError, peewee.IntegrityError) as exc:  # e.g. a CHECK of its own
            raise ValidationError(f"the database refused the session: {first_line(exc)}") from None
        return self.get_session(session_id)

    def _other_session_columns(self, other_columns: dict[str, Any]) -> dict[str, Any]:
        """`create_session`'s keyword columns (camelCase or snake_case) as this database's
        `sessions` takes them; refused before any SQL when unknown or of a type it cannot hold."""
        columns = self.session_columns()
        by_snake = {snake_case(c): c for c in columns}
        row: dict[str, Any] = {}
        for key, value in other_columns.items():
            column = key if key in columns else by_snake.get(key)
            if column is None:
                raise ValidationError(f"sessions has no column {key!r}")
            value = self._session_column_value(key, column, value)
            row[column] = self.backend.session_value(self._session_meta()[column].data_type, value)
        return row

    def _session_column_value(self, key: str, column: str, value: Any) -> Any:
        """One keyword column's value, checked by the column's type the same way on every engine
        (`check_column_value`): datetimes and JSON lists as the app stores them."""
        if isinstance(value, dt.datetime):
            return format_timestamp(value)
        if column in JSON_COLUMNS and isinstance(value, (list, tuple)):
            return json_list(value, key)
        if value is not None and not isinstance(value, (str, int, float)):
            raise ValidationError(f"{key} must be text, a number, a bool or a datetime")
        return check_column_value(value, key, self._session_meta()[column].data_type, self._nul_ok)

    def _check_not_null(self, row: dict[str, Any]) -> None:
        """`ValidationError` for a None, or a missing value, where this database's `sessions`
        has a NOT NULL column without a default (e.g. of another layout)."""
        meta = self._session_meta()
        for column, value in row.items():
            if value is None and not meta[column].null and meta[column].default is None:
                raise ValidationError(f"{snake_case(column)} must not be None in this database")
        for column, info in meta.items():
            if column not in row and not info.null and info.default is None and not info.primary_key:
                raise ValidationError(
                    f"sessions.{column} is NOT NULL in this database and has no "
                    f"default: pass {snake_case(column)}=…"
                )

    def list_sessions(
        self,
        status: str | None = None,
        limit: int | None = None,
        *,
        repo_root: str | None = None,
        since: dt.datetime | str | None = None,
        offset: int | None = None,
        activity: bool = False,
    ) -> list[Session]:
        """Sessions, newest created first: only those with `status`, in `repo_root`, created
        at or after `since` (a datetime, or ISO text as the app stores it); `offset` skips the
        first ones, `limit` caps how many. `activity=True` also gives each one
        `.message_count` and `.last_activity` (see `attach_activity`), in one more query.

        The orchestrator's `sessions` table has no index on `createdAt`, so this reads the
        whole table (sessions number in the thousands, not millions).
        """
        wheres: list[str] = []
        params: list[Any] = []
        for column, value, what in (("status", status, "status"), ('"repoRoot"', repo_root, "repo_root")):
            if value is not None:
                wheres.append(f"{column} = {self.backend.param}")
                params.append(check_text(value, what, nul_ok=self._nul_ok))
        if since is not None:
            wheres.append(f'"createdAt" >= {self.backend.param}')
            params.append(check_since(since))
        limit, offset = check_count(limit, "limit"), check_count(offset, "offset")
        sql = f"SELECT *, {THREAD_COUNT} FROM sessions" + (f" WHERE {' AND '.join(wheres)}" if wheres else "")
        sql += ' ORDER BY "createdAt" DESC, id'
        if limit is not None or offset is not None:
            sql += f" LIMIT {self.backend.param} OFFSET {self.backend.param}"
            params += [limit if limit is not None else INTEGER_RANGE[1], offset or 0]
        with translate_errors(self.location):
            cursor = self._query(sql, params)
            columns = [d[0] for d in cursor.description]
            sessions = [session_from_row(columns, row, self) for row in cursor.fetchall()]
            if activity:
                self.attach_activity(sessions)
            return sessions

    def attach_activity(self, sessions: list[Session]) -> None:
        """Give each session `.message_count` (over its threads) and `.last_activity`: the
        latest of its `createdAt` and `lastRun`, its threads' `updatedAt` and its messages'
        `createdAt` (as `prune` judges a session's age)."""
        by_id = {session.id: session for session in sessions}
        for session in sessions:
            session.message_count = 0
            moments = [
                parse_timestamp(v) if isinstance(v, str) else v
                for v in (session.created_at, session.last_run)
            ]
            session.last_activity = latest(moments)
        ids = list(by_id)
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            marks = ", ".join([self.backend.param] * len(chunk))
            with translate_errors(self.location):
                rows = self._query(
                    f'SELECT t."sessionId", t."updatedAt", {MESSAGE_COUNT}, {LATEST_MESSAGE} FROM threads t'
                    f' WHERE t."sessionId" IN ({marks})',
                    chunk,
                ).fetchall()
            for session_id, updated, messages, written in rows:
                session = by_id[session_id]
                session.message_count += messages
                moments = [parse_timestamp(v) if isinstance(v, str) else v for v in (updated, written)]
                session.last_activity = latest([session.last_activity, *moments])

    def update_session(self, session: Session | str, **fields: Any) -> Session:
        """Set columns of a session (snake_case or the table's camelCase names, your own
        columns included), checked as `create_session` checks them, in one transaction;
        return the session as stored. Its `id` cannot change."""
        session_id = check_id(session, "session", Session, nul_ok=self._nul_ok)
        if not fields:
            raise ValidationError("update_session needs at least one column to set")
        row = self._other_session_columns(fields)
        if "id" in row:
            raise ValidationError("a session's id cannot change")
        for column, value in row.items():
            if value is None and self._session_meta()[column].null is False:
                raise ValidationError(f"{column} must not be None")
            if column in ("name", "repoRoot") and not str(value).strip():
                raise ValidationError(f"{snake_case(column)} must not be empty")
        try:
            with self._write():
                self._update_row("sessions", row, session_id, "session")
        except (sqlite3.IntegrityError, peewee.IntegrityError) as exc:
            raise ValidationError(f"the database refused the change: {first_line(exc)}") from None
        return self.get_session(session_id)

    def get_session(self, session_id: str) -> Session:
        session_id = check_id(session_id, "session_id", Session, nul_ok=self._nul_ok)
        with translate_errors(self.location):
            cursor = self._execute("get_session", (session_id,))
            row = cursor.fetchone()
            columns = [d[0] for d in cursor.description]
        if row is None:
            raise NotFoundError(f"no session with id {quoted(session_id)}")
        return session_from_row(columns, row, self)

    def delete_session(self, session_id: str) -> dict[str, int]:
        """Delete a session with its threads, their messages and the orchestrator app's rows
        of it, in the app's order, in one transaction; return the rows deleted per table.

        Rows of other tables that reference the session are refused, naming the tables,
        with nothing deleted.
        """
        session_id = check_id(session_id, "session_id", Session, nul_ok=self._nul_ok)
        try:
            with self._write():
                if not self._execute("session_exists", (session_id,)).fetchone():
                    raise NotFoundError(f"no session with id {quoted(session_id)}")
                deleted = delete_session_rows(self.db, self.backend.sql, session_id)
                self._execute("forget_session_threads", (now_timestamp(), session_id))
        except (sqlite3.IntegrityError, peewee.IntegrityError) as exc:  # rows of its rows' rows
            raise ValidationError(
                f"session {session_id} is still referenced, through the rows "
                f"deleted with it, by rows of other tables: {exc}; nothing was "
                "deleted"
            ) from None
        return deleted

    # -- threads ---------------------------------------------------------------------------

    def create_thread(
        self, session_id: Session | str, name: str, amp_mode: str | None = None, **columns: Any
    ) -> Thread:
        """Add a thread to a session; return it (its id is `T-<uuid>`, as the orchestrator app
        makes them: the app lists no other). `amp_mode`: the app's 'production' or 'local-cli'.
        `columns`: fields of your own thread model (`models=`), checked as its `.save()` is;
        those left out take the database's defaults."""
        session_id = check_id(session_id, "session_id", Session, nul_ok=self._nul_ok)
        check_text(name, "name", allow_empty=False, nul_ok=self._nul_ok)
        check_amp_mode(amp_mode)
        own = self._own_thread_columns(columns)
        thread_id, now = new_thread_id(), now_timestamp()
        sql = self._sql["insert_thread"] if not own else self.backend.sql(insert_thread_template(own))
        params = (thread_id, name, now, now, amp_mode, *own.values(), session_id)
        with self._write():
            if self._query(sql, params).rowcount == 0:
                raise NotFoundError(f"no session with id {quoted(session_id)}")
        return self.get_thread(thread_id)

    def _own_thread_columns(self, columns: dict[str, Any]) -> dict[str, Any]:
        """`create_thread`'s keyword fields of the store's thread model, checked, by column."""
        model = self._models[1]
        base = set(Thread._meta.fields)
        unknown = [key for key in columns if key not in model._meta.fields or key in base]
        if unknown:
            raise ValidationError(
                f"{model.__name__} has no field of its own named {unknown[0]!r}"
                + ("" if model is not Thread else " (pass your thread model with models=)")
            )
        probe = model.__new__(model)
        probe.__data__ = dict(columns)
        check_model_row(probe, list(columns), self._nul_ok)
        fields = model._meta.fields
        return {fields[key].column_name: fields[key].db_value(value) for key, value in columns.items()}

    def get_thread(self, thread_id: str) -> Thread:
        """The thread, with `.message_count`."""
        thread_id = check_id(thread_id, "thread_id", Thread, nul_ok=self._nul_ok)
        rows = self._read("get_thread", (thread_id,))
        if not rows:
            raise NotFoundError(f"no thread with id {quoted(thread_id)}")
        return thread_from_row(rows[0], self)

    def get_session_threads(self, session_id: str) -> list[Thread]:
        """A session's threads with `.message_count`, newest updated first, in one query."""
        session_id = check_id(session_id, "session_id", Session, nul_ok=self._nul_ok)
        rows = self._read("session_threads", (session_id,))
        if not rows:
            self._require("session_exists", session_id, "session")
        return [thread_from_row(row, self) for row in rows]

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread and its messages.

        A migrated thread is marked deleted in the record of migrated threads, in the same
        transaction: `verify` counts it as your deletion, not a loss, and `backfill` never
        makes it again.
        """
        thread_id = check_id(thread_id, "thread_id", Thread, nul_ok=self._nul_ok)
        with self._write():
            if self._execute("delete_thread", (thread_id,)).rowcount == 0:
                raise NotFoundError(f"no thread with id {quoted(thread_id)}")
            self._execute("forget_thread", (now_timestamp(), thread_id))

    def update_thread_timestamp(self, thread_id: str) -> None:
        """Set the thread's `updatedAt` to now."""
        thread_id = check_id(thread_id, "thread_id", Thread, nul_ok=self._nul_ok)
        with self._write():
            if self._execute("touch_thread", (now_timestamp(), thread_id)).rowcount == 0:
                raise NotFoundError(f"no thread with id {quoted(thread_id)}")

    def update_thread(
        self,
        thread: Thread | str,
        *,
        name: str | None = None,
        status: str | None = None,
        amp_mode: str | None | Unset = UNSET,
    ) -> Thread:
        """Rename a thread, change its status or its `amp_mode` (None clears it); its
        `updatedAt` moves to now, in the same transaction. Return the thread as stored."""
        thread_id = check_id(thread, "thread", Thread, nul_ok=self._nul_ok)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check_text(name, "name", allow_empty=False, nul_ok=self._nul_ok)
        if status is not None:
            values["status"] = check_text(status, "status", allow_empty=False, nul_ok=self._nul_ok)
        if not isinstance(amp_mode, Unset):
            values["ampMode"] = check_amp_mode(amp_mode)
        if not values:
            raise ValidationError("update_thread needs name, status or amp_mode")
        values["updatedAt"] = now_timestamp()
        with self._write():
            self._update_row("threads", values, thread_id, "thread")
        return self.get_thread(thread_id)

    def _update_row(self, table: str, values: dict[str, Any], row_id: str, what: str) -> None:
        """UPDATE the columns `values` names in the row of `table` with id `row_id` (inside the
        caller's write transaction); `NotFoundError` naming the `what` when there is none."""
        sets = ", ".join(f"{q(column)} = {self.backend.param}" for column in values)
        update = f"UPDATE {q(table)} SET {sets} WHERE id = {self.backend.param}"
        if self._query(update, (*values.values(), row_id)).rowcount == 0:
            raise NotFoundError(f"no {what} with id {quoted(row_id)}")

    # -- messages --------------------------------------------------------------------------

    def _next_idx(self, thread_id: str) -> int:
        if not self.backend.lock_thread(thread_id):
            raise NotFoundError(f"no thread with id {quoted(thread_id)}")
        row = self._execute("next_idx", (thread_id, thread_id)).fetchone()
        if row is None:
            raise NotFoundError(f"no thread with id {quoted(thread_id)}")
        return row[0]

    def add_thread_message(self, thread_id: Thread | str, role: str, content: str) -> ThreadMessage:
        """Append a message (idx = next) and bump the thread's `updatedAt`; return it."""
        thread_id = check_id(thread_id, "thread_id", Thread, nul_ok=self._nul_ok)
        check_role(role)
        check_text(content, "content", nul_ok=self._nul_ok)
        message_id, now = new_id(), now_timestamp()
        with self._write():
            idx = self._next_idx(thread_id)
            row = (message_id, thread_id, role, content, now, idx)
            self._execute("insert_message", row)
            self._execute("touch_thread", (now, thread_id))
        return messages_from_rows([row], self)[0]

    def add_thread_messages(
        self, thread_id: Thread | str, messages: Iterable[tuple[str, str]]
    ) -> list[ThreadMessage]:
        """Append a batch in one transaction, all or nothing; return the messages in order."""
        thread_id = check_id(thread_id, "thread_id", Thread, nul_ok=self._nul_ok)
        batch = check_messages(messages, nul_ok=self._nul_ok)
        now = now_timestamp()
        ids = [new_id() for _ in batch]
        with self._write():
            first = self._next_idx(thread_id)
            rows = [
                (mid, thread_id, role, content, now, first + n)
                for n, (mid, (role, content)) in enumerate(zip(ids, batch, strict=False))
            ]
            self.backend.executemany(self._sql["insert_message"], rows)
            self._execute("touch_thread", (now, thread_id))
        return messages_from_rows(rows, self)

    def get_thread_messages(
        self, thread_id: str, after_idx: int | None = None, limit: int | None = None, last: int | None = None
    ) -> list[ThreadMessage]:
        """Messages ordered by idx: those after `after_idx`, the first `limit` or the latest `last`."""
        thread_id = check_id(thread_id, "thread_id", Thread, nul_ok=self._nul_ok)
        after_idx, limit, last = (
            check_count(after_idx, "after_idx"),
            check_count(limit, "limit"),
            check_count(last, "last"),
        )
        if limit is not None and last is not None:
            raise ValidationError("give limit or last, not both")
        param = self.backend.param
        sql = self._sql["messages"]
        params: list[Any] = [thread_id]
        if after_idx is not None:
            sql += f" AND idx > {param}"
            params.append(after_idx)
        sql += " ORDER BY idx DESC" if last is not None else " ORDER BY idx"
        if limit is not None or last is not None:
            sql += f" LIMIT {param}"
            params.append(limit if limit is not None else last)
        with translate_errors(self.location):
            rows = self._query(sql, params).fetchall()
            if not rows:
                self._require("thread_exists", thread_id, "thread")
        if last is not None:
            rows.reverse()
        return messages_from_rows(rows, self)

    def delete_thread_message(self, message: ThreadMessage | str) -> None:
        """Delete one message; the thread's `updatedAt` moves to now. The other messages keep
        their `idx`: a gap remains, and the next message appended takes the highest + 1."""
        message_id = check_id(message, "message", ThreadMessage, nul_ok=self._nul_ok)
        with self._write():
            row = self._execute("message_thread", (message_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no message with id {quoted(message_id)}")
            self.backend.lock_thread(row[0])
            self._execute("delete_message", (message_id,))
            self._execute("touch_thread", (now_timestamp(), row[0]))

    def pop_thread_message(self, thread: Thread | str) -> ThreadMessage:
        """Delete the thread's latest message (highest `idx`) and return it, atomically: under
        the thread's append lock, so no message appended meanwhile is the one taken.
        `NotFoundError` if the thread has no messages."""
        thread_id = check_id(thread, "thread", Thread, nul_ok=self._nul_ok)
        with self._write():
            if not self.backend.lock_thread(thread_id):
                raise NotFoundError(f"no thread with id {quoted(thread_id)}")
            row = self._execute("latest_message", (thread_id,)).fetchone()
            if row is None:
                self._require("thread_exists", thread_id, "thread")
                raise NotFoundError(f"thread {quoted(thread_id)} has no messages")
            self._execute("delete_message", (row[0],))
            self._execute("touch_thread", (now_timestamp(), thread_id))
        return messages_from_rows([tuple(row)], self)[0]

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        session: Session | str | None = None,
        thread: Thread | str | None = None,
        role: str | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """Messages matching `query` (web-search syntax: words, "a phrase", OR, -word), best
        first: `.message`, `.snippet` (the match in context, marked «like this») and `.rank`
        (higher is better; bm25 on SQLite, ts_rank on PostgreSQL). Nothing a user types is a
        syntax error; a query with no word in it finds nothing."""
        filters = self._search_filters(query, session, thread, role)
        if check_count(limit, "limit") is None or limit < 1:
            raise ValidationError(f"limit must be at least 1, not {quoted(limit)}")
        with translate_errors(self.location):
            rows = self._search_index().hits(query, filters, limit, column_list(ThreadMessage, "m"))
        messages = messages_from_rows([tuple(row[:-2]) for row in rows], self)
        return [SearchHit(m, row[-2], row[-1]) for m, row in zip(messages, rows, strict=True)]

    def count_matches(
        self,
        query: str,
        *,
        session: Session | str | None = None,
        thread: Thread | str | None = None,
        role: str | None = None,
    ) -> int:
        """How many messages `query` matches (as `search` reads it), with the same filters."""
        filters = self._search_filters(query, session, thread, role)
        with translate_errors(self.location):
            return self._search_index().count(query, filters)

    def _search_filters(self, query: object, session: object, thread: object, role: object) -> Filters:
        if not isinstance(query, str) or not query.strip():
            raise ValidationError('a search needs a query: words, "a phrase", OR, -excluded')
        check_text(query, "query", nul_ok=self._nul_ok)
        return Filters(
            check_id(session, "session", Session, nul_ok=self._nul_ok) if session is not None else None,
            check_id(thread, "thread", Thread, nul_ok=self._nul_ok) if thread is not None else None,
            check_role(role) if role is not None else None,
        )

    def _search_index(self) -> MessageSearch:
        """The backend's search, once known to exist here (asked once per store: the catalog
        query costs more than a search)."""
        self._refuse_closed()
        search = self.backend.search
        if not self._has_search:
            if not search.present():
                raise SessionormError(
                    f"{self.location} has no search index yet: `sessionorm migrate` adds it"
                )
            self._has_search = True
        return search

    # -- agent memory ----------------------------------------------------------------------

    def agent_sessions(self) -> list[AgentSessionInfo]:
        """The agent sessions kept here (`sessionorm.agents.SessionormSession`), the latest
        written first, each with its item count, last activity and metadata."""
        return AgentMemory(self).sessions()

    # -- relations of returned rows (see models.StoreForeignKeyField) ----------------------

    def _related(self, model: type[peewee.Model], key: str) -> peewee.Model:
        """The parent row a foreign key names: `thread.session`, `message.thread`."""
        return self.get_session(key) if model is Session else self.get_thread(key)

    def _children(self, model: type[peewee.Model], key: str) -> Sequence:
        """`session.threads` (newest updated first) or `thread.messages` (by idx; call it to
        page: `thread.messages(limit=20, after_idx=40)`, `thread.messages(last=5)`)."""
        if issubclass(model, Thread):
            return self.get_session_threads(key)
        return ThreadMessages(self, key)

    # -- data migration --------------------------------------------------------------------

    def migrate_session_thread_ids(self) -> BackfillResult:
        """Give every session with a legacy threadId its thread, once (migration 1's data step)."""
        with self._write():
            return runner_for(self._target, self.db).backfill()


def session_defaults(row: dict[str, Any], name: str, repo_root: str, session_id: str) -> None:
    """The orchestrator's defaults for the columns `row` leaves unset."""
    now = dt.datetime.now(dt.UTC)
    slug = re.sub(r"[^a-z0-9-]", "", name.lower().replace(" ", "-")) or "session"
    row.setdefault("baseBranch", "main")
    row.setdefault("status", "idle")
    row.setdefault("createdAt", format_timestamp(now))
    row.setdefault("branchName", f"amp/{slug}/{now:%Y-%m-%dT%H-%M-%S}")
    row.setdefault("worktreePath", f"{repo_root.rstrip('/')}/.worktrees/{session_id}")


def thread_from_row(row: tuple, store: SessionStore) -> Thread:
    """A thread (of the store's thread model) with `.message_count`, from a row of
    `thread_select`: its columns, then the count."""
    model = store._models[1]
    thread = model.__new__(model)
    thread._store = store
    thread.__data__ = dict(zip(model._meta.sorted_field_names, row, strict=False))
    thread.message_count = row[-1]
    return thread


def session_from_row(columns: list[str], row: tuple, store: SessionStore) -> Session:
    """A `Session`; columns the model lacks (the `final` layout's) become attributes too."""
    session = Session.__new__(Session)
    session._store = store
    session.__data__ = {}
    fields = {f.column_name: f for f in Session._meta.sorted_fields}
    for column, value in zip(columns, row, strict=False):
        field = fields.get(column)
        if field is not None:
            session.__data__[field.name] = field.python_value(value)
        else:
            setattr(session, snake_case(column), value)
    return session


def latest(moments: list[Any]) -> dt.datetime | None:
    """The latest of these timestamps (text the app wrote that does not parse is left out)."""
    known = [m if m.tzinfo else m.replace(tzinfo=dt.UTC) for m in moments if isinstance(m, dt.datetime)]
    return max(known, default=None)


def holds_data(db: peewee.Database) -> bool:
    """Whether any table has a row (a file with empty tables counts as new)."""
    for table in db.get_tables():
        if db.execute_sql(f"SELECT 1 FROM {q(table)} LIMIT 1").fetchone():
            return True
    return False
