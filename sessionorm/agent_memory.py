"""An agent's conversation memory in a `SessionStore`: synchronous, engine-neutral, SDK-free.

One agent session (any text id) is one orchestrator session with one thread, made on its
first write and found through `sessionorm_agent_sessions`; its items are the thread's
messages in `idx` order, each item kept exactly in `sessionorm_agent_items` (migration 6).
Messages of that thread written by anything else (the app, the store) come back as
`{"role": …, "content": …}` items. `sessionorm.agents.SessionormSession` runs these
operations in worker threads for the OpenAI Agents SDK.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .agent_items import item_json, readable
from .database import translate_errors
from .errors import NotFoundError, ValidationError
from .models import AGENT_TABLES
from .validation import check_count, check_text, quoted
from .values import new_id, now_timestamp, parse_timestamp

if TYPE_CHECKING:
    from .store import SessionStore

SESSIONS, ITEMS = AGENT_TABLES


def item_rows(columns: str) -> str:
    """An agent session's messages with their items (`{p}`: the agent session id), then `columns`."""
    return (
        f"SELECT i.item, {columns} FROM {SESSIONS} a"
        ' JOIN thread_messages m ON m."threadId" = a."threadId"'
        f' LEFT JOIN {ITEMS} i ON i."messageId" = m.id WHERE a."agentSessionId" = {{p}}'
    )


# The message's role and content only where it has no item (written by the app or the store);
# all of them when an item is damaged.
LEAN = item_rows("CASE WHEN i.item IS NULL THEN m.role END, CASE WHEN i.item IS NULL THEN m.content END")
FULL = item_rows("m.role, m.content")
LISTED = (
    f'SELECT a."agentSessionId", a."sessionId", a."threadId", a.metadata, a."createdAt", t."updatedAt",'
    ' (SELECT count(*) FROM thread_messages m WHERE m."threadId" = a."threadId")'
    f' FROM {SESSIONS} a JOIN threads t ON t.id = a."threadId"'
)
STATEMENTS = {
    "find": f'SELECT "threadId" FROM {SESSIONS} WHERE "agentSessionId" = {{p}}',
    "map": f'INSERT INTO {SESSIONS} ("agentSessionId", "sessionId", "threadId", metadata, "createdAt")'
    " VALUES ({p}, {p}, {p}, {p}, {p})",
    "insert_item": f'INSERT INTO {ITEMS} ("messageId", item) VALUES ({{p}}, {{p}})',
    "all": LEAN + " ORDER BY m.idx",
    "last": LEAN + " ORDER BY m.idx DESC LIMIT {p}",
    "all_full": FULL + " ORDER BY m.idx",
    "last_full": FULL + " ORDER BY m.idx DESC LIMIT {p}",
    "latest": f"SELECT m.id, i.item, m.role, m.content FROM thread_messages m LEFT JOIN {ITEMS} i"
    ' ON i."messageId" = m.id WHERE m."threadId" = {p} ORDER BY m.idx DESC LIMIT 1',
    "clear": 'DELETE FROM thread_messages WHERE "threadId" = {p}',
    "metadata": f'SELECT metadata FROM {SESSIONS} WHERE "agentSessionId" = {{p}}',
    "set_metadata": f'UPDATE {SESSIONS} SET metadata = {{p}} WHERE "agentSessionId" = {{p}}',
    "list": LISTED + ' ORDER BY t."updatedAt" DESC, a."agentSessionId"',
    "one": LISTED + ' WHERE a."agentSessionId" = {p}',
}


@dataclass
class AgentSessionInfo:
    """One agent session: its id, where the orchestrator keeps it, how many items, when last
    written (the thread's `updatedAt`), and its metadata."""

    session_id: str
    orchestrator_session_id: str
    thread_id: str
    item_count: int
    created_at: dt.datetime | str | None
    last_activity: dt.datetime | str | None
    metadata: dict[str, Any] = field(default_factory=dict)


class AgentMemory:
    """The agent-memory operations on one open store (thread-safe as the store is: each
    thread uses its own connection)."""

    def __init__(self, store: SessionStore, repo_root: str | None = None) -> None:
        self.store = store
        self.repo_root = repo_root
        self.sql = {key: store.backend.sql(template) for key, template in STATEMENTS.items()}

    def check_key(self, key: object) -> str:
        if not isinstance(key, str):
            raise ValidationError(f"an agent session id must be text, not {quoted(key)}")
        return check_text(key, "agent session id", nul_ok=self.store.backend.nul_in_text)

    # -- the orchestrator session behind an agent session --------------------------------------

    def _thread(self, key: str) -> str | None:
        row = self.store._query(self.sql["find"], (key,)).fetchone()
        return row[0] if row else None

    def _thread_or_new(self, key: str, first: list[tuple[str, str]]) -> str:
        """The thread of `key`, made with its orchestrator session if it has none (inside the
        caller's write transaction; PostgreSQL: first-time writers of one key queue)."""
        thread_id = self._thread(key)
        if thread_id is not None:
            return thread_id
        self.store.backend.lock_key(f"sessionorm agent session {key}")
        thread_id = self._thread(key)
        if thread_id is not None:
            return thread_id
        prompt = next((content for role, content in first if role == "user"), "")
        session = self.store.create_session(
            name=f"Agent session {key}" if key.strip() else "Agent session",
            amp_prompt=prompt,
            repo_root=self.repo_root or os.getcwd(),
        )
        thread = self.store.create_thread(session, f"Agent memory: {key}" if key.strip() else "Agent memory")
        self.store._query(self.sql["map"], (key, session.id, thread.id, "{}", now_timestamp()))
        return thread.id

    # -- the SDK's operations --------------------------------------------------------------------

    def add(self, key: str, items: list[Any]) -> None:
        """Append `items` in order, all or nothing; each checked before anything is written."""
        if not isinstance(items, list):
            raise ValidationError(f"items must be a list, not {type(items).__name__}")
        texts = [item_json(item, n) for n, item in enumerate(items)]
        shown = [readable(item) for item in items]
        if not items:
            return
        store = self.store
        ids = [new_id() for _ in items]
        with store._write():
            thread_id = self._thread_or_new(key, shown)
            now = now_timestamp()  # not before the session it may have made
            first = store._next_idx(thread_id)
            rows = [
                (mid, thread_id, role, content, now, first + n)
                for n, (mid, (role, content)) in enumerate(zip(ids, shown, strict=True))
            ]
            store.backend.executemany(store._sql["insert_message"], rows)
            store.backend.executemany(self.sql["insert_item"], list(zip(ids, texts, strict=True)))
            store._execute("touch_thread", (now, thread_id))

    def items(self, key: str, limit: int | None = None) -> list[Any]:
        """The latest `limit` items (None: all), oldest first, read in one statement."""
        limit = check_count(limit, "limit")
        if limit == 0:
            return []
        params = (key,) if limit is None else (key, limit)
        rows = self._item_rows("all" if limit is None else "last", params)
        texts = [
            item if item is not None else dumps({"role": role, "content": content})
            for item, role, content in rows
        ]
        try:  # one parse of them all: a third of the time of one parse per item
            items = loads("[" + ",".join(texts) + "]")
        except ValueError:
            items = None
        if items is not None and len(items) == len(rows):
            return items
        # an item's JSON damaged by hand: read again, each item on its own (a broken one: its message)
        full = ("all" if limit is None else "last") + "_full"
        return [stored_item(*row) for row in self._item_rows(full, params)]

    def _item_rows(self, key: str, params: tuple) -> list[tuple]:
        """Rows of statement `key`, oldest first."""
        with translate_errors(self.store.location):
            rows = self.store._query(self.sql[key], params).fetchall()
        if key.startswith("last"):
            rows.reverse()
        return rows

    def pop(self, key: str) -> Any:
        """Remove and return the latest item, under the thread's append lock (None: empty)."""
        store = self.store
        with store._write():
            thread_id = self._thread(key)
            if thread_id is None or not store.backend.lock_thread(thread_id):
                return None
            row = store._query(self.sql["latest"], (thread_id,)).fetchone()
            if row is None:
                return None
            store._execute("delete_message", (row[0],))  # its item goes with it (ON DELETE CASCADE)
            store._execute("touch_thread", (now_timestamp(), thread_id))
        return stored_item(*row[1:])

    def clear(self, key: str) -> None:
        """Delete every item; the orchestrator session, its thread and the metadata stay."""
        store = self.store
        with store._write():
            thread_id = self._thread(key)
            if thread_id is None or not store.backend.lock_thread(thread_id):
                return
            store._query(self.sql["clear"], (thread_id,))
            store._execute("touch_thread", (now_timestamp(), thread_id))

    # -- beyond the SDK ------------------------------------------------------------------------

    def metadata(self, key: str) -> dict[str, Any]:
        with translate_errors(self.store.location):
            row = self.store._query(self.sql["metadata"], (key,)).fetchone()
        return json.loads(row[0]) if row else {}

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the session's metadata (a dict of JSON values); makes the session if new."""
        if not isinstance(metadata, dict):
            raise ValidationError(f"metadata must be a dict, not {type(metadata).__name__}")
        text = item_json(metadata)
        with self.store._write():
            self._thread_or_new(key, [])
            self.store._query(self.sql["set_metadata"], (text, key))

    def session(self, key: str) -> AgentSessionInfo:
        """One agent session; `NotFoundError` if it has none here (yet)."""
        found = self._infos("one", (key,))
        if not found:
            raise NotFoundError(f"no agent session with id {quoted(key)}")
        return found[0]

    def sessions(self) -> list[AgentSessionInfo]:
        """Every agent session, the latest written first, with its item count."""
        return self._infos("list", ())

    def _infos(self, statement: str, params: tuple) -> list[AgentSessionInfo]:
        with translate_errors(self.store.location):
            rows = self.store._query(self.sql[statement], params).fetchall()
        return [
            AgentSessionInfo(
                key,
                session_id,
                thread_id,
                count,
                parse_timestamp(created),
                parse_timestamp(updated),
                json.loads(metadata),
            )
            for key, session_id, thread_id, metadata, created, updated, count in rows
        ]


loads, dumps = json.loads, json.dumps


def stored_item(item: str | None, role: str, content: str) -> Any:
    """The exact item; for a message written by something else (or an item that is no longer
    JSON), the message as an item."""
    if item is not None:
        try:
            return json.loads(item)
        except ValueError:
            pass
    return {"role": role, "content": content}
