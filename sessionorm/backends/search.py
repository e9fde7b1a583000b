"""Full-text search over messages, each engine's half (migration 7 makes the index).

`MessageSearch` is what the store and the commands ask: the ranked hits of a query (with the
store's filters), how many messages match, and the batched build of the index for messages
written before it existed. `SqliteSearch` (FTS5, keyed by `sessionorm_search_keys`) and
`PostgresSearch` (a stored tsvector with a GIN index) answer it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Backend, Progress

KEYS, SEARCH = "sessionorm_search_keys", "sessionorm_search"
OPEN, CLOSE = (
    "\N{LEFT-POINTING DOUBLE ANGLE QUOTATION MARK}",
    "\N{RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK}",
)
WINDOW = 5000  # bm25 ranks the newest this many matches: a common word costs no more than this
BATCH = 20000  # messages indexed per write transaction by `build`


@dataclass
class Filters:
    """What a search is narrowed to (None: no narrowing)."""

    session_id: str | None = None
    thread_id: str | None = None
    role: str | None = None

    def sql(self, param: str) -> tuple[str, str, list[Any]]:
        """(joins, conditions, params) on `m` (thread_messages) and `t` (threads)."""
        joins, conditions, params = "", [], []
        if self.session_id is not None:
            joins = ' JOIN threads t ON t.id = m."threadId"'
            conditions.append(f't."sessionId" = {param}')
            params.append(self.session_id)
        if self.thread_id is not None:
            conditions.append(f'm."threadId" = {param}')
            params.append(self.thread_id)
        if self.role is not None:
            conditions.append(f"m.role = {param}")
            params.append(self.role)
        return joins, "".join(f" AND {c}" for c in conditions), params


class MessageSearch:
    """One engine's search; `columns` are the message columns to return, on alias `m`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def present(self) -> bool:
        return SEARCH in self.backend.db.get_tables()

    def hits(self, query: str, filters: Filters, limit: int, columns: str) -> list[tuple]:
        """Rows of (columns…, snippet, rank), best first."""
        raise NotImplementedError

    def count(self, query: str, filters: Filters) -> int:
        raise NotImplementedError

    def unindexed(self) -> int:
        """How many messages the index does not hold yet (reads every message)."""
        raise NotImplementedError

    def catch_up(self, progress: Progress = None) -> int:
        """After migrations: index the messages written before the index existed (`build`), if
        the index is there and behind; `progress` hears how far. Return how many were indexed."""
        if not self.present() or not self.behind():
            return 0

        def tell(done: int, total: int) -> None:
            if progress is not None:
                progress(f"search index: {done:,} of {total:,} messages")

        return self.build(tell)

    def behind(self) -> bool:
        """Whether the index holds fewer entries than there are messages: two counts, cheap
        enough for every `migrate` (a stale entry, which `verify` reports, could hide one)."""
        table = self.entries_table
        return bool(
            self.backend.execute(
                f"SELECT (SELECT count(*) FROM thread_messages) > (SELECT count(*) FROM {table})"
            ).fetchone()[0]
        )

    entries_table = SEARCH  # the table with one row per indexed message

    def check(self) -> tuple[list[str], list[str]]:
        """(problems, notes): the index agrees with the messages, nothing stale, nothing missing."""
        problems = self.disagreements()
        unindexed = self.unindexed()
        notes = (
            [f"{unindexed} messages are not in the search index yet: `sessionorm migrate` indexes them"]
            if unindexed
            else []
        )
        return problems, notes

    def compact(self) -> None:
        """Inside a write transaction: leave nothing in the index of the messages deleted
        (`prune --vacuum`); where the engine's own vacuum does it (PostgreSQL), nothing."""

    def disagreements(self) -> list[str]:
        """What the engine finds wrong in the index against the messages."""
        raise NotImplementedError

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """A bulk load without the index's triggers (`copy`), the index then made in one go:
        row by row, a copy of 1M messages took 53.9 s to SQLite and 44.8 s to PostgreSQL,
        in one go 30.7 s and 39.6 s."""
        raise NotImplementedError
        yield

    def build(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Index the messages written before the index existed, `BATCH` per write transaction
        (a killed build resumes: what is indexed is skipped); return how many were indexed."""
        raise NotImplementedError
