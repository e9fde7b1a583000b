"""`export`: sessions with their threads and messages, streamed from one snapshot.

The rows are read in a fixed order — sessions by (createdAt, id), each session's threads by
(createdAt, id), each thread's messages by idx, text compared byte by byte on every engine —
with cursors that fetch as they go, and written one record at a time, so memory stays flat.
`rows_of` yields them as `Record`s; `write_jsonl` writes the JSONL format (README, "Export
and import"), `markdown_export.write_markdown` the transcripts.

Values are written as the app stores them in SQLite, whatever the engine: booleans 0/1,
blobs `{"base64": …}`; each row's columns by database name, in name order. An export of the
same rows is therefore the same bytes on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import operator
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from .backends import Backend, backend_of, opened
from .documents import document
from .errors import NotFoundError, ValidationError
from .markdown_export import write_markdown
from .moments import parse_moment
from .planning import refuse_pending
from .progress import Progress
from .target import Target
from .values import parse_timestamp

FORMAT = "sessionorm-export"
VERSION = 1  # of the JSONL format; `import` refuses a newer one
FORMATS = ("jsonl", "markdown")
SESSION, THREAD, AGENT_SESSION, MESSAGE, END = "session", "thread", "agent_session", "message", "end"
AGENT_ITEM = "agent_item"  # beside "message": the message's exact agent item, as stored
AGENT_SESSIONS, AGENT_ITEMS = "sessionorm_agent_sessions", "sessionorm_agent_items"
TABLES = {SESSION: "sessions", THREAD: "threads", AGENT_SESSION: AGENT_SESSIONS, MESSAGE: "thread_messages"}
PROGRESS_EVERY = 0.5  # seconds between progress lines


@dataclass
class ExportReport:
    """What `export` wrote: rows per kind, where (`path`: None for a stream), how long."""

    database: str
    format: str
    path: Path | None = None
    sessions: int = 0
    threads: int = 0
    messages: int = 0
    agent_sessions: int = 0
    agent_items: int = 0
    seconds: float = 0.0


def canonical(value: Any) -> Any:
    """`value` as the export writes it: what SQLite would hand back (booleans are 0 and 1)."""
    if value.__class__ is bool:
        return int(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    return document(value)  # a blob as {"base64": …}, a time as ISO text, as `--json` writes them


# One encoder for every line (`json.dumps` with options builds one per call).
record_text: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=document
).encode
"""One JSONL line, without its newline: compact, UTF-8 as it is (NUL as `\\u0000`)."""


class RowShape:
    """How a cursor's rows become dicts: columns in name order; booleans made 0/1 in the
    columns named in `booleans` (None: in any column)."""

    def __init__(self, names: list[str], booleans: Iterable[str] | None = None) -> None:
        order = sorted(range(len(names)), key=names.__getitem__)
        self.keys = [names[i] for i in order]
        self.pick = operator.itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
        self.booleans = [n for n, i in enumerate(order) if booleans is None or names[i] in booleans]

    def __call__(self, row: tuple) -> dict[str, Any]:
        values = self.pick(row)
        if self.booleans:
            values = list(values)
            for n in self.booleans:
                if values[n].__class__ is bool:
                    values[n] = int(values[n])
        return dict(zip(self.keys, values, strict=True))


class Shapes:
    """Each table's `RowShape`, made from its first cursor; booleans where the catalog says."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.made: dict[str, RowShape] = {}

    def of(self, table: str, cursor: Any, extra: int = 0) -> RowShape:
        shape = self.made.get(table)
        if shape is None:
            names = [d[0] for d in cursor.description]
            booleans = {c.name for c in self.backend.catalog.table(table).columns if c.kind == "boolean"}
            shape = self.made[table] = RowShape(names[: len(names) - extra], booleans)
        return shape


@contextlib.contextmanager
def rows(shapes: Shapes, table: str, sql: str, params: Iterable[Any] = (), extra: int = 0) -> Iterator[Any]:
    """(shape, cursor) of a streamed SELECT of `table`; `extra` trailing columns are not its."""
    backend = shapes.backend
    with backend.streaming(backend.sql(sql), params) as cursor:
        yield shapes.of(table, cursor, extra), cursor


def chosen_sessions(
    backend: Backend, session_ids: Iterable[str], since: dt.datetime | None
) -> tuple[str, tuple[str, ...], Callable[[dict[str, Any]], bool]]:
    """The WHERE clause, its parameters and a row test that choose the sessions to export;
    `NotFoundError` naming the ids no session has."""
    ids = tuple(dict.fromkeys(session_ids))
    for session_id in ids:
        if not isinstance(session_id, str) or not session_id:
            raise ValidationError(f"a session id must be non-empty text, not {session_id!r}")
    where = ""
    if ids:
        marks = ", ".join(["{p}"] * len(ids))
        where = f" WHERE id IN ({marks})"
        found = {r[0] for r in backend.execute(backend.sql(f"SELECT id FROM sessions{where}"), ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(
                f"no session has the id {', '.join(map(repr, missing))} (nothing was written)"
            )

    def wanted(row: dict[str, Any]) -> bool:
        if since is None:
            return True
        created = parse_timestamp(row.get("createdAt"))  # text the app may have written its way
        return isinstance(created, dt.datetime) and created >= since

    return where, ids, wanted


def records(
    backend: Backend,
    report: ExportReport,
    session_ids: Iterable[str] = (),
    since: dt.datetime | None = None,
    progress: Progress = None,
) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(kind, row, agent item) of every chosen session, then each of its threads, followed by
    the thread's agent session (if any) and its messages, in the export's order, counted into
    `report`; inside the caller's snapshot."""
    where, params, wanted = chosen_sessions(backend, session_ids, since)
    shapes = Shapes(backend)
    order = f'"createdAt"{backend.byte_order}, id{backend.byte_order}'
    sessions_sql = f"SELECT * FROM sessions{where} ORDER BY {order}"
    threads_sql = f'SELECT * FROM threads WHERE "sessionId" = {{p}} ORDER BY {order}'
    agents_sql = f'SELECT * FROM {AGENT_SESSIONS} WHERE "sessionId" = {{p}}'
    messages_sql = (
        f"SELECT m.*, i.item FROM thread_messages m LEFT JOIN {AGENT_ITEMS} i"
        ' ON i."messageId" = m.id WHERE m."threadId" = {p} ORDER BY m.idx'
    )
    tell = Progressing(report, progress)
    with rows(shapes, "sessions", sessions_sql, params) as (session_shape, sessions):
        for session_row in sessions:
            session = session_shape(session_row)
            if not wanted(session):
                continue
            report.sessions += 1
            yield SESSION, session, None
            with rows(shapes, AGENT_SESSIONS, agents_sql, (session["id"],)) as (agent_shape, agent_rows):
                agents = {a["threadId"]: a for a in map(agent_shape, agent_rows)}
            with rows(shapes, "threads", threads_sql, (session["id"],)) as (thread_shape, threads):
                for thread_row in threads:
                    thread = thread_shape(thread_row)
                    report.threads += 1
                    yield THREAD, thread, None
                    if thread["id"] in agents:
                        report.agent_sessions += 1
                        yield AGENT_SESSION, agents[thread["id"]], None
                    with rows(shapes, "thread_messages", messages_sql, (thread["id"],), 1) as (
                        shape,
                        messages,
                    ):
                        n = 0
                        for n, message in enumerate(messages, 1):  # noqa: B007 (counted after)
                            item = message[-1]
                            if item is not None:
                                report.agent_items += 1
                            if not n & 4095:
                                tell(report.messages + n)
                            yield MESSAGE, shape(message), item
                        report.messages += n
                    tell(report.messages)


class Progressing:
    """A progress line about every half second: rows so far and the rate."""

    def __init__(self, report: ExportReport, progress: Progress) -> None:
        self.report, self.progress = report, progress
        self.start = time.monotonic()
        self.due = self.start + PROGRESS_EVERY

    def __call__(self, messages: int) -> None:
        if self.progress is None or time.monotonic() < self.due:
            return
        now = time.monotonic()
        self.due = now + PROGRESS_EVERY
        r = self.report
        self.progress(
            f"exported {r.sessions:,} sessions, {r.threads:,} threads, {messages:,} messages "
            f"({messages / max(now - self.start, 1e-9):,.0f}/s)"
        )


def end_counts(report: ExportReport) -> dict[str, int]:
    """The counts the JSONL's last line carries (import checks them: a cut file is refused)."""
    return {
        "sessions": report.sessions,
        "threads": report.threads,
        "agent_sessions": report.agent_sessions,
        "messages": report.messages,
        "agent_items": report.agent_items,
    }


def write_jsonl(
    records: Iterable[tuple[str, dict[str, Any], str | None]], out: TextIO, report: ExportReport
) -> None:
    """The JSONL format: a header, one line per record, and an end line with the counts."""
    write, text = out.write, record_text
    write(text({"format": FORMAT, "version": VERSION}) + "\n")
    for kind, row, item in records:
        if item is None:
            write(text({kind: row}) + "\n")
        else:
            write(text({kind: row, AGENT_ITEM: item}) + "\n")
    write(text({END: end_counts(report)}) + "\n")


def refuse_output(path: Path, force: bool) -> None:
    """Refuse an output path that is a folder, or exists (without `force`)."""
    if path.is_dir():
        raise ValidationError(f"{path} is a directory (nothing was written)")
    if path.exists() and not force:
        raise ValidationError(
            f"{path} exists; remove it, choose another name, or use --force (nothing was written)"
        )
    if not path.parent.is_dir():
        raise ValidationError(f"no folder {path.parent} for {path.name} (nothing was written)")


@contextlib.contextmanager
def output_file(path: Path, force: bool) -> Iterator[TextIO]:
    """A file that appears at `path` only once the block succeeds: written under a hidden
    temporary name beside it, synced, then linked (or with `force`, renamed) into place."""
    refuse_output(path, force)
    temporary = path.with_name(f".{path.name}.export-{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8", newline="\n") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if force:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # fails if the name was taken meanwhile: never overwrite
            except FileExistsError:
                raise ValidationError(f"{path} appeared while exporting; nothing was written there") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def export_database(
    target: Target,
    output: str | os.PathLike | TextIO | None,
    *,
    session_ids: Iterable[str] = (),
    since: str | dt.datetime | None = None,
    format: str = "jsonl",
    force: bool = False,
    progress: Progress = None,
) -> ExportReport:
    """Export from one snapshot of `target` into `output` (a path, a text stream, or None:
    stdout); a path appears only complete (`output_file`)."""
    if format not in FORMATS:
        raise ValidationError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    moment = since if isinstance(since, dt.datetime) or since is None else parse_moment(since)
    if isinstance(moment, dt.datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    refuse_pending(target)
    start = time.monotonic()
    if output is None:
        output = sys.stdout
    path = None if hasattr(output, "write") else Path(output)
    report = ExportReport(str(target), format, path)
    if path is not None:
        refuse_output(path, force)  # before anything is read
    with opened(target, readonly=True) as database:
        chosen = records(backend_of(database), report, session_ids, moment, progress)
        with contextlib.closing(chosen):  # type: ignore[type-var]  # its cursors close before the database
            first = next(chosen, None)  # unknown ids are refused before any output
            stream = itertools.chain([first] if first else [], chosen)
            destination = (
                output_file(path, force) if path is not None else contextlib.nullcontext(cast(TextIO, output))
            )
            with destination as out:
                if format == "jsonl":
                    write_jsonl(stream, out, report)
                else:
                    write_markdown(stream, out)
                out.flush()
    report.seconds = time.monotonic() - start
    return report
