"""SQLite's search: FTS5 over `thread_messages.content`, keyed by `sessionorm_search_keys`.

Web-search syntax becomes an FTS5 query through `playhouse.fts_parser` (never a syntax
error). Ranking is bm25 over the newest `WINDOW` matches, then `snippet()` for the best
`limit` of them, in a second statement: one statement that joined the window back for
`snippet()` ran the MATCH again for every row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from playhouse.fts_parser import parse

from .search import BATCH, CLOSE, KEYS, OPEN, SEARCH, WINDOW, Filters, MessageSearch

NOTHING = '""'  # what fts_parser makes of a query with no word in it


def fts_query(query: str) -> str | None:
    """The FTS5 form of a web-search query; None when it holds no word."""
    parsed = parse(query)
    return None if parsed.strip() in ("", NOTHING) else parsed


class SqliteSearch(MessageSearch):
    entries_table = KEYS

    def _joined(self, filters: Filters) -> tuple[str, list]:
        """The FROM and WHERE of the matches; the messages joined only when filters need them."""
        if filters == Filters():
            return f"FROM {SEARCH} s WHERE {SEARCH} MATCH ?", []
        joins, conditions, params = filters.sql("?")
        base = (
            f"FROM {SEARCH} s JOIN {KEYS} k ON k.id = s.rowid"
            f' JOIN thread_messages m ON m.id = k."messageId"{joins} WHERE {SEARCH} MATCH ?{conditions}'
        )
        return base, params

    def hits(self, query: str, filters: Filters, limit: int, columns: str) -> list[tuple]:
        match = fts_query(query)
        if match is None:
            return []
        base, params = self._joined(filters)
        execute = self.backend.execute
        window = execute(
            f"SELECT id, r FROM (SELECT s.rowid AS id, bm25({SEARCH}) AS r {base}"
            " ORDER BY s.rowid DESC LIMIT ?) ORDER BY r, id DESC LIMIT ?",
            (match, *params, WINDOW, limit),
        ).fetchall()
        if not window:
            return []
        ranks = {key: -rank for key, rank in window}  # bm25: lower is better; rank: higher is
        marks = ", ".join("?" * len(window))
        rows = execute(
            f"SELECT s.rowid, {columns}, snippet({SEARCH}, 0, '{OPEN}', '{CLOSE}', '…', 16)"
            f' FROM {SEARCH} s JOIN {KEYS} k ON k.id = s.rowid JOIN thread_messages m ON m.id = k."messageId"'
            f" WHERE {SEARCH} MATCH ? AND s.rowid IN ({marks})",
            (match, *ranks),
        ).fetchall()
        order = {key: n for n, (key, _) in enumerate(window)}
        rows.sort(key=lambda row: order[row[0]])
        return [(*row[1:], ranks[row[0]]) for row in rows]

    def count(self, query: str, filters: Filters) -> int:
        match = fts_query(query)
        if match is None:
            return 0
        base, params = self._joined(filters)
        return self.backend.execute(f"SELECT count(*) {base}", (match, *params)).fetchone()[0]

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        execute = self.backend.execute
        triggers = execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'thread_messages'"
            f" AND name LIKE '{SEARCH}%'"
        ).fetchall()
        for name, _ in triggers:
            execute(f'DROP TRIGGER "{name}"')
        yield
        for _, sql in triggers:  # as the migration made them, read back from the schema
            execute(sql)
        execute(f'INSERT INTO {KEYS} ("messageId") SELECT id FROM thread_messages ORDER BY rowid')
        execute(f"INSERT INTO {SEARCH} ({SEARCH}) VALUES ('rebuild')")

    def compact(self) -> None:
        """FTS5 keeps a deleted row's entries as delete markers until its segments merge:
        'optimize' merges them all (after 1,000,000 messages were pruned, 110 MB went)."""
        if self.present():
            self.backend.execute(f"INSERT INTO {SEARCH} ({SEARCH}) VALUES ('optimize')")

    def unindexed(self) -> int:
        return self.backend.execute(
            "SELECT count(*) FROM thread_messages m"
            f' WHERE NOT EXISTS (SELECT 1 FROM {KEYS} k WHERE k."messageId" = m.id)'
        ).fetchone()[0]

    def disagreements(self) -> list[str]:
        # FTS5's own 'integrity-check' is an INSERT, refused on verify's read-only connection:
        # the index is judged by its rows instead (one per key, no key of a message gone)
        keys, entries, stale = self.backend.execute(
            f"SELECT (SELECT count(*) FROM {KEYS}), (SELECT count(*) FROM {SEARCH}_docsize),"
            f" (SELECT count(*) FROM {KEYS} k WHERE NOT EXISTS"
            ' (SELECT 1 FROM thread_messages m WHERE m.id = k."messageId"))'
        ).fetchone()
        problems = []
        if entries != keys:
            problems.append(f"the search index holds {entries} entries for {keys} indexed messages")
        if stale:
            problems.append(f"the search index holds {stale} messages that are gone")
        return problems

    def build(self, progress: Callable[[int, int], None] | None = None) -> int:
        execute = self.backend.execute
        last = execute("SELECT coalesce(max(rowid), 0) FROM thread_messages").fetchone()[0]
        done = 0
        for low in range(0, last, BATCH):
            with self.backend.write():
                before = execute(f"SELECT coalesce(max(id), 0) FROM {KEYS}").fetchone()[0]
                added = execute(
                    f'INSERT INTO {KEYS} ("messageId") SELECT id FROM thread_messages m'
                    " WHERE m.rowid > ? AND m.rowid <= ?"
                    f' AND NOT EXISTS (SELECT 1 FROM {KEYS} k WHERE k."messageId" = m.id) ORDER BY m.rowid',
                    (low, low + BATCH),
                ).rowcount
                if added:
                    execute(
                        f"INSERT INTO {SEARCH} (rowid, content) SELECT k.id, m.content FROM {KEYS} k"
                        ' JOIN thread_messages m ON m.id = k."messageId" WHERE k.id > ?',
                        (before,),
                    )
            done += max(added, 0)
            if progress is not None:
                progress(min(low + BATCH, last), last)
        return done
