"""`import`: a JSONL export (`exporting`) into a migrated database, all or nothing.

The file is read line by line and written in batches (`executemany`) inside one write
transaction (`Backend.write`): any refusal — a line that is not JSON, a file that is not an
export or is cut short, a column the database lacks, text the engine cannot hold, rows that
conflict with the database's — rolls everything back. A row whose id is present already is
skipped when every column the file gives is identical, and a conflict otherwise; a message
whose (threadId, idx) another message holds is a conflict too. Conflicts are all collected,
then refused together, named. A table empty when the import began needs no presence check.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import Backend, backend_of, opened
from .database import is_constraint
from .errors import ImportRefusedError
from .exporting import (
    AGENT_ITEM,
    AGENT_ITEMS,
    AGENT_SESSION,
    END,
    FORMAT,
    MESSAGE,
    SESSION,
    TABLES,
    THREAD,
    VERSION,
    RowShape,
    canonical,
)
from .identifiers import q
from .planning import refuse_pending
from .progress import Progress
from .target import Target

BATCH = 5_000  # records per flush: a few MB whatever the file's size
KINDS = (MESSAGE, THREAD, SESSION, AGENT_SESSION)  # the commonest first
FLUSH_ORDER = (SESSION, THREAD, AGENT_SESSION, MESSAGE)  # parents before children
KEYS = {SESSION: "id", THREAD: "id", AGENT_SESSION: "agentSessionId", MESSAGE: "id"}
PLAIN = frozenset({str, int, float, type(None), bool, bytes})  # what a column value may be
NAMED = 10  # conflicts named in the error; the rest are counted
PROGRESS_EVERY = 0.5


@dataclass
class ImportReport:
    """What `import` wrote (rows per kind), `skipped` (rows present already, identical), how long."""

    database: str
    path: Path
    sessions: int = 0
    threads: int = 0
    agent_sessions: int = 0
    messages: int = 0
    agent_items: int = 0
    skipped: int = 0
    seconds: float = 0.0


Entry = tuple[int, dict[str, Any], Any]  # line number, row, the message's agent item (or None)


def refuse(path: Path, line: int | None, text: str) -> ImportRefusedError:
    where = f"{path}, line {line}" if line else str(path)
    return ImportRefusedError(f"{where}: {text} (nothing was imported)")


def file_records(path: Path) -> Iterator[tuple[int, str, dict[str, Any], Any]]:
    """(line number, kind, row, agent item) of every record, after the header is checked and
    until the end line, whose counts must match what came before."""
    counts = dict.fromkeys(("sessions", "threads", "agent_sessions", "messages", "agent_items"), 0)
    plural = {SESSION: "sessions", THREAD: "threads", AGENT_SESSION: "agent_sessions", MESSAGE: "messages"}
    with open(path, "rb") as lines:
        number = 0
        ended = False
        for number, raw in enumerate(lines, 1):
            if not raw.endswith(b"\n"):
                raise refuse(path, number, "the line is cut short (no newline at its end)")
            try:
                obj = json.loads(raw)
            except ValueError as exc:  # UnicodeDecodeError is one
                raise refuse(path, number, f"not JSON ({exc})") from None
            if number == 1:
                check_header(path, obj)
                continue
            if ended:
                raise refuse(path, number, "a line after the end line")
            if type(obj) is not dict or not obj:
                raise refuse(path, number, "not a record (a JSON object naming its kind)")
            for kind in KINDS:
                row = obj.get(kind)
                if row is not None:
                    break
            else:
                if END in obj:
                    if obj[END] != counts:
                        raise refuse(path, number, f"the end line says {obj[END]}, the file holds {counts}")
                    ended = True
                    continue
                raise refuse(path, number, f"no record kind ({', '.join(KINDS)}) in {sorted(obj)}")
            item = obj.get(AGENT_ITEM)
            if len(obj) != 1 + (AGENT_ITEM in obj) or (AGENT_ITEM in obj and kind != MESSAGE):
                raise refuse(path, number, f"unexpected keys {sorted(obj)}")
            if type(row) is not dict or not isinstance(row.get(KEYS[kind]), str):
                raise refuse(path, number, f"a {kind} must be an object with a text {KEYS[kind]!r}")
            if kind == MESSAGE:
                if not isinstance(row.get("threadId"), str) or type(row.get("idx")) is not int:
                    raise refuse(path, number, "a message needs a text threadId and an integer idx")
                if item is not None:
                    if not isinstance(item, str):
                        raise refuse(path, number, "an agent item must be its JSON text")
                    counts["agent_items"] += 1
            counts[plural[kind]] += 1
            yield number, kind, row, item
        if number == 0:
            raise refuse(path, None, "the file is empty, not a sessionorm export")
        if not ended:
            raise refuse(path, None, "the file ends without its end line: it was cut short")


def check_header(path: Path, obj: Any) -> None:
    if type(obj) is not dict or obj.get("format") != FORMAT:
        raise refuse(path, 1, f'not a sessionorm export (its first line must be {{"format": "{FORMAT}", …}})')
    version = obj.get("version")
    if type(version) is not int or version < 1:
        raise refuse(path, 1, f"no valid format version: {version!r}")
    if version > VERSION:
        raise refuse(
            path, 1, f"format version {version} is newer than this sessionorm reads ({VERSION}); upgrade"
        )


class TableInto:
    """One table of the target: its columns' kinds, whether it was empty, the rows pending."""

    def __init__(self, backend: Backend, kind: str) -> None:
        self.kind, self.name, self.key = kind, TABLES[kind], KEYS[kind]
        self.kinds = {c.name: c.kind for c in backend.catalog.table(self.name).columns}
        self.empty = backend.execute(f"SELECT 1 FROM {q(self.name)} LIMIT 1").fetchone() is None
        self.pending: list[Entry] = []


class Importer:
    """One import, inside the caller's write transaction."""

    def __init__(self, backend: Backend, path: Path, report: ImportReport) -> None:
        self.backend, self.path, self.report = backend, path, report
        self.tables = {kind: TableInto(backend, kind) for kind in FLUSH_ORDER}
        self.conflicts: list[str] = []
        self.conflict_count = 0
        self.pending = 0

    def add(self, line: int, kind: str, row: dict[str, Any], item: Any) -> None:
        self.tables[kind].pending.append((line, row, item))
        self.pending += 1
        if self.pending >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Every pending row, parents first: checked against the database, then written."""
        for kind in FLUSH_ORDER:
            table = self.tables[kind]
            entries, table.pending = table.pending, []
            if entries and not table.empty:
                entries = self.absent(table, entries)
                if kind == MESSAGE:
                    entries = self.free_places(entries)
            if entries and not self.conflict_count:  # after a conflict, only look for more
                self.insert(table, entries)
        self.pending = 0

    def conflict(self, text: str) -> None:
        self.conflict_count += 1
        if len(self.conflicts) < NAMED:
            self.conflicts.append(text)

    def absent(self, table: TableInto, entries: list[Entry]) -> list[Entry]:
        """The entries whose id the table lacks; identical ones are skipped, others conflicts."""
        backend = self.backend
        ids = list(dict.fromkeys(row[table.key] for _, row, _ in entries))
        marks = ", ".join([backend.param] * len(ids))
        item = table.kind == MESSAGE
        select = (
            f"SELECT t.*{', i.item' if item else ''} FROM {q(table.name)} t"
            + (f' LEFT JOIN {AGENT_ITEMS} i ON i."messageId" = t.id' if item else "")
            + f" WHERE t.{q(table.key)} IN ({marks})"
        )
        cursor = backend.execute(select, ids)
        names = [d[0] for d in cursor.description]
        shape = RowShape(names[: len(names) - item])
        present = {}
        for found in cursor.fetchall():
            row = {k: canonical(v) for k, v in shape(found).items()}
            present[row[table.key]] = (row, found[-1] if item else None)
        left = []
        for line, row, entry_item in entries:
            there = present.get(row[table.key])
            if there is None:
                left.append((line, row, entry_item))
                continue
            stored, stored_item = there
            differs = [k for k, v in row.items() if k not in stored or stored[k] != v]
            if item and stored_item != entry_item:
                differs.append(AGENT_ITEM)
            if differs:
                self.conflict(f"{table.kind} {row[table.key]} (line {line}: {', '.join(differs)} differ)")
            else:
                self.report.skipped += 1
        return left

    def free_places(self, entries: list[Entry]) -> list[Entry]:
        """The messages whose (threadId, idx) no other message holds; the others are conflicts."""
        backend = self.backend
        left = []
        by_thread = itertools.groupby(entries, key=lambda e: e[1]["threadId"])
        select = backend.sql(
            'SELECT idx, id FROM thread_messages WHERE "threadId" = {p} AND idx BETWEEN {p} AND {p}'
        )
        for thread_id, group in by_thread:
            messages = list(group)
            idxs = [row["idx"] for _, row, _ in messages]
            taken = dict(backend.execute(select, (thread_id, min(idxs), max(idxs))).fetchall())
            for line, row, item in messages:
                holder = taken.get(row["idx"])
                if holder is None:
                    left.append((line, row, item))
                else:
                    self.conflict(
                        f"message {row['id']} (line {line}: thread {thread_id}'s idx {row['idx']} "
                        f"is message {holder})"
                    )
        return left

    def insert(self, table: TableInto, entries: list[Entry]) -> None:
        """The entries' rows (and messages' agent items) by `executemany`, a run of rows with the
        same columns at a time."""
        for columns, run in itertools.groupby(entries, key=lambda e: tuple(e[1])):
            rows = list(run)
            fix = self.fixes(table, columns, rows[0][0])
            sql = (
                f"INSERT INTO {q(table.name)} ({', '.join(map(q, columns))})"
                f" VALUES ({', '.join([self.backend.param] * len(columns))})"
            )
            self.write(sql, [self.values(table, columns, fix, line, row) for line, row, _ in rows], rows)
        written = len(entries)
        if table.kind == MESSAGE:
            items = [(row["id"], item) for _, row, item in entries if item is not None]
            if items:
                sql = self.backend.sql(f'INSERT INTO {AGENT_ITEMS} ("messageId", item) VALUES ({{p}}, {{p}})')
                self.write(sql, items, entries)
            self.report.messages += written
            self.report.agent_items += len(items)
        elif table.kind == THREAD:
            self.report.threads += written
        elif table.kind == SESSION:
            self.report.sessions += written
        else:
            self.report.agent_sessions += written

    def fixes(self, table: TableInto, columns: tuple[str, ...], line: int) -> list[tuple[int, str]]:
        """(position, kind) of the columns whose values need converting; refuses missing columns."""
        missing = [c for c in columns if c not in table.kinds]
        if missing:
            raise refuse(
                self.path, line, f"the database's {table.name} has no column {', '.join(map(repr, missing))}"
            )
        return [(i, table.kinds[c]) for i, c in enumerate(columns) if table.kinds[c] in ("boolean", "blob")]

    def values(
        self, table: TableInto, columns: tuple[str, ...], fix: list[tuple[int, str]], line: int, row: dict
    ) -> tuple:
        values = list(row.values())
        for i, kind in fix:
            value = values[i]
            if type(value) is dict and set(value) == {"base64"}:
                value = blob(self.path, line, value["base64"])
            values[i] = self.backend.session_value(kind, value)
        if not set(map(type, values)) <= PLAIN:  # a list, an object: no column holds those
            odd = next(i for i, v in enumerate(values) if type(v) not in PLAIN)
            raise refuse(
                self.path, line, f"{columns[odd]} holds {type(values[odd]).__name__}, not a column value"
            )
        if not self.backend.nul_in_text:
            for i, value in enumerate(values):
                if type(value) is str and "\x00" in value:
                    raise refuse(
                        self.path,
                        line,
                        f"{table.kind} {row[table.key]}: {columns[i]} holds a NUL character, "
                        "which this database's text cannot hold",
                    )
        return tuple(values)

    def write(self, sql: str, values: list[tuple], entries: list[Entry]) -> None:
        try:
            self.backend.executemany(sql, values)
        except Exception as exc:  # a constraint: named with the lines it came from
            if not is_constraint(exc):
                raise
            first, last = entries[0][0], entries[-1][0]
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise refuse(self.path, None, f"lines {first}–{last} break a constraint: {text}") from None

    def refuse_conflicts(self) -> None:
        if self.conflict_count:
            more = self.conflict_count - len(self.conflicts)
            named = "; ".join(self.conflicts) + (f"; and {more} more" if more else "")
            raise refuse(
                self.path,
                None,
                f"{self.conflict_count} rows are present in the database with other content: {named}",
            )


def blob(path: Path, line: int, text: Any) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise refuse(path, line, 'a {"base64": …} value that is not base64') from None


def import_file(target: Target, file: str | os.PathLike, progress: Progress = None) -> ImportReport:
    """Import the JSONL export `file` into `target` in one write transaction (module docstring)."""
    path = Path(file)
    if not path.is_file():
        raise ImportRefusedError(f"no file {path} (nothing was imported)")
    refuse_pending(target)
    start = time.monotonic()
    report = ImportReport(str(target), path)
    due = start + PROGRESS_EVERY
    with opened(target) as database:
        backend = backend_of(database)
        with backend.bulk_pragmas(), backend.write():
            importer = Importer(backend, path, report)
            for n, (line, kind, row, item) in enumerate(file_records(path)):
                importer.add(line, kind, row, item)
                if progress is not None and n % 1000 == 0 and time.monotonic() >= due:
                    due = time.monotonic() + PROGRESS_EVERY
                    progress(f"imported {line:,} lines ({line / (time.monotonic() - start):,.0f}/s)")
            importer.flush()
            importer.refuse_conflicts()
    report.seconds = time.monotonic() - start
    return report
