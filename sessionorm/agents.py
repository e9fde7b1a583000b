"""`SessionormSession`: the OpenAI Agents SDK's `Session`, kept in the orchestrator's tables.

    from agents import Agent, Runner
    from sessionorm.agents import SessionormSession     # pip install 'sessionorm[agents]'

    session = SessionormSession("user-42", "sessions.sqlite")   # or a URL; None: the default file
    result = await Runner.run(agent, "Hello", session=session)

One agent session is one orchestrator session with one thread, made on the first write; its
items are the thread's messages, readable in the app, each kept exactly (`agent_memory`).
Every database operation of a session runs in that session's own worker thread, on one
connection, so tasks, threads and event loops may share a session; processes meet at the
database's write lock. A mutation whose caller is cancelled still finishes, and the
cancellation is raised once its outcome is known.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

try:
    from agents.memory.session_settings import (
        SessionSettings,
        coerce_session_settings,
        resolve_session_limit,
    )
except ImportError as exc:  # the package imports without the SDK; this module needs it
    raise ImportError(
        "sessionorm.agents needs the OpenAI Agents SDK: pip install 'sessionorm[agents]'"
    ) from exc

from .agent_memory import AgentMemory, AgentSessionInfo
from .store import SessionStore

__all__ = ["AgentSessionInfo", "SessionormSession"]

T = TypeVar("T")
MEMORY = ":memory:"


class AgentStore(SessionStore):
    """A store opened for agent sessions: it leaves the models bound where they were."""

    def _bind(self) -> None:
        self.db.sessionorm_store = weakref.ref(self)  # type: ignore[attr-defined]


class SessionormSession:
    """Conversation memory for the OpenAI Agents SDK (its `Session` protocol) in a sessionorm
    database: SQLite or PostgreSQL, beside the orchestrator app."""

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        db: str | os.PathLike | None = None,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        busy_timeout: float | None = None,
        migrate: bool = False,
        repo_root: str | None = None,
    ) -> None:
        """`db`: a SQLite path, a database URL, `":memory:"` (a private file removed at
        `close()`), or None for sessionorm's default database. A database holding data with
        migrations pending raises `NeedsMigrationError` unless `migrate=True`.
        `repo_root`: the `repoRoot` of the orchestrator session made for it (default: the
        current directory)."""
        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )
        self._closed = False
        self._folder: str | None = None
        if db is not None and os.fspath(db) == MEMORY:
            self._folder = tempfile.mkdtemp(prefix="sessionorm-agent-")
            weakref.finalize(self, shutil.rmtree, self._folder, True)  # also if never closed
            db = os.path.join(self._folder, "memory.sqlite")
        # one worker thread, one connection: close() closes it where it was opened
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sessionorm-agent")
        try:
            self._store = self._worker.submit(
                AgentStore, db, busy_timeout=busy_timeout, migrate=migrate
            ).result()
            self._memory = AgentMemory(self._store, repo_root)
            self._memory.check_key(session_id)
        except BaseException:
            self._closed = True
            if hasattr(self, "_store"):
                self._worker.submit(self._store.close).result()
            self._release()
            raise
        self.location = self._store.location

    def __repr__(self) -> str:
        return f"<SessionormSession {self.session_id!r} in {self.location}>"

    # -- plumbing ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("SessionormSession is closed")

    async def _read(self, work: Callable[..., T], *args: Any) -> T:
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._worker, work, *args)

    async def _mutate(self, work: Callable[..., T], *args: Any) -> T:
        """Run a write to its end even if the caller is cancelled; then raise the cancellation."""
        self._check_open()
        future = asyncio.get_running_loop().run_in_executor(self._worker, work, *args)
        cancelled: asyncio.CancelledError | None = None
        while not future.done():
            try:
                await asyncio.wait({future})
            except asyncio.CancelledError as exc:
                cancelled = cancelled or exc
        if cancelled is not None:
            if not future.cancelled():
                future.exception()  # retrieved: a failure behind the cancellation is not "never retrieved"
            raise cancelled
        return future.result()

    # -- the SDK's Session protocol ----------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> builtins.list[Any]:
        """The latest `limit` items (None: `session_settings.limit`, else all), oldest first."""
        return await self._read(
            self._memory.items, self.session_id, resolve_session_limit(limit, self.session_settings)
        )

    async def add_items(self, items: builtins.list[Any]) -> None:
        """Append items in order, all or nothing (an item that is not JSON: `TypeError`)."""
        self._check_open()
        if items:
            await self._mutate(self._memory.add, self.session_id, items)

    async def pop_item(self) -> Any:
        """Remove and return the latest item; None when there is none."""
        return await self._mutate(self._memory.pop, self.session_id)

    async def clear_session(self) -> None:
        """Delete every item (the orchestrator session, its thread and the metadata stay)."""
        await self._mutate(self._memory.clear, self.session_id)

    # -- beyond the protocol -----------------------------------------------------------------------

    async def get_metadata(self) -> dict[str, Any]:
        """The session's metadata ({} until set)."""
        return await self._read(self._memory.metadata, self.session_id)

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the session's metadata: a dict of JSON values."""
        await self._mutate(self._memory.set_metadata, self.session_id, metadata)

    def close(self) -> None:
        """Close the connection (and remove a `":memory:"` database); the session is then unusable."""
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.submit(self._store.close).result()
        finally:
            self._release()

    def _release(self) -> None:
        self._worker.shutdown(wait=True)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> SessionormSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def list(
        cls, db: str | os.PathLike | None = None, *, busy_timeout: float | None = None
    ) -> builtins.list[AgentSessionInfo]:
        """Every agent session in `db` (None: the default database), the latest written first,
        with its item count, last activity and metadata."""
        with SessionStore(db, readonly=True, busy_timeout=busy_timeout) as store:
            return store.agent_sessions()
