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


def timed_printer(echo: Callable[[str], None]) -> Callable[[str, tuple], None]:
    """A sink that echoes each statement with the time since the previous one."""
    last = [time.monotonic()]

    def sink(sql: str, params: tuple) -> None:
        now = time.monotonic()
        echo(f"[+{now - last[0]:.3f}s] {sql}" + (f"  {list(params)!r}" if params else ""))
        last[0] = now

    return sink
