"""PostgreSQL's search: a stored tsvector per message (`sessionorm_search`) with a GIN index.

Queries are `websearch_to_tsquery('simple', …)` (web-search syntax, never a syntax error),
ranked by `ts_rank` on the stored tsvector (ranking never parses the text again), with
`ts_headline` for the snippet of each hit returned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .search import BATCH, CLOSE, OPEN, SEARCH, Filters, MessageSearch

QUERY = "websearch_to_tsquery('simple', %s)"
HEADLINE = f"StartSel={OPEN},StopSel={CLOSE},MaxWords=24,MinWords=12"
# A query with nothing to find (only exclusions, `-word`, which would match every other
# message): no hits, as on SQLite.
FINDS = "querytree(q) <> 'T'"


class PostgresSearch(MessageSearch):
    def _joined(self, filters: Filters) -> tuple[str, str, list]:
        joins, conditions, params = filters.sql("%s")
        if joins or conditions:
            return f' JOIN thread_messages m ON m.id = s."messageId"{joins}', conditions, params
        return "", "", []

    def hits(self, query: str, filters: Filters, limit: int, columns: str) -> list[tuple]:
        joins, conditions, params = self._joined(filters)
        rows = self.backend.execute(
            f"SELECT {columns}, ts_headline('simple', m.content, h.q, %s), h.r FROM ("
            f' SELECT s."messageId" AS id, q, ts_rank(s.doc, q) AS r FROM {SEARCH} s{joins}, {QUERY} q'
            f' WHERE s.doc @@ q AND {FINDS}{conditions} ORDER BY r DESC, s."messageId" LIMIT %s) h'
            " JOIN thread_messages m ON m.id = h.id ORDER BY h.r DESC, m.id",
            (HEADLINE, query, *params, limit),
        ).fetchall()
        return [tuple(row) for row in rows]

    def count(self, query: str, filters: Filters) -> int:
        joins, conditions, params = self._joined(filters)
        return self.backend.execute(
            f"SELECT count(*) FROM {SEARCH} s{joins}, {QUERY} q WHERE s.doc @@ q AND {FINDS}{conditions}",
            (query, *params),
        ).fetchone()[0]

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        execute = self.backend.execute
        execute(f"ALTER TABLE thread_messages DISABLE TRIGGER {SEARCH}_index")
        yield
        execute(f"ALTER TABLE thread_messages ENABLE TRIGGER {SEARCH}_index")
        execute(
            f'INSERT INTO {SEARCH} ("messageId", doc)'
            " SELECT id, to_tsvector('simple', content) FROM thread_messages"
        )

    def unindexed(self) -> int:
        return self.backend.execute(
            "SELECT count(*) FROM thread_messages m"
            f' WHERE NOT EXISTS (SELECT 1 FROM {SEARCH} s WHERE s."messageId" = m.id)'
        ).fetchone()[0]

    def disagreements(self) -> list[str]:
        stale, wrong = self.backend.execute(
            f"SELECT count(*) FILTER (WHERE m.id IS NULL),"
            f" count(*) FILTER (WHERE m.id IS NOT NULL AND s.doc <> to_tsvector('simple', m.content))"
            f' FROM {SEARCH} s LEFT JOIN thread_messages m ON m.id = s."messageId"'
        ).fetchone()
        problems = []
        if stale:
            problems.append(f"the search index holds {stale} messages that are gone")
        if wrong:
            problems.append(f"the search index holds {wrong} messages with older text")
        return problems

    def build(self, progress: Callable[[int, int], None] | None = None) -> int:
        execute = self.backend.execute
        total = execute("SELECT count(*) FROM thread_messages").fetchone()[0]
        after, done, seen = "", 0, 0
        while True:
            with self.backend.write():
                rows = execute(
                    "WITH batch AS (SELECT id, content FROM thread_messages"
                    " WHERE id > %s ORDER BY id LIMIT %s),"
                    f' added AS (INSERT INTO {SEARCH} ("messageId", doc)'
                    " SELECT id, to_tsvector('simple', content) FROM batch"
                    ' ON CONFLICT ("messageId") DO NOTHING RETURNING 1)'
                    " SELECT (SELECT max(id) FROM batch), (SELECT count(*) FROM batch),"
                    " (SELECT count(*) FROM added)",
                    (after, BATCH),
                ).fetchone()
            last, batch, added = rows
            if not batch:
                return done
            after, done, seen = last, done + added, seen + batch
            if progress is not None:
                progress(seen, total)
