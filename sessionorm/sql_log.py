"""Capture or show the SQL that peewee sends (dry-run plans, --verbose)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

LOGGER = logging.getLogger("peewee")


class _Handler(logging.Handler):
    def __init__(self, sink: Callable[[str, tuple], None]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            self.sink(*record.msg)


@contextlib.contextmanager
def capturing(sink: Callable[[str, tuple], None]) -> Iterator[None]:
    """Pass every statement peewee executes to `sink(sql, params)`."""
    handler = _Handler(sink)
    old_level = LOGGER.level
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(old_level)


def log_statement(sql: str) -> None:
    """Tell `capturing` sinks about a statement peewee does not log itself (COMMIT)."""
    LOGGER.debug((sql, ()))


class TimedPrinter:
    """A sink that echoes each statement with its own duration.

    peewee logs a statement before running it, so a statement's line is printed when the
    next one starts (or at `flush()`), with the time in between.
    """

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.pending: tuple[str, tuple, float] | None = None

    def __call__(self, sql: str, params: tuple) -> None:
        now = time.monotonic()
        self.flush(now)
        self.pending = (sql, params, now)

    def flush(self, now: float | None = None) -> None:
        if self.pending is None:
            return
        sql, params, start = self.pending
        self.pending = None
        took = (now if now is not None else time.monotonic()) - start
        self.echo(f"[{took:.3f}s] {sql}" + (f"  {list(params)!r}" if params else ""))
