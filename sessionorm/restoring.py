"""`restore`: a whole database replaced by a checked backup, atomically, the replaced one kept
(the backend does it: `Backend.restore`); then what the restored database's migrations say."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .backends import backend_for, opened
from .progress import Progress
from .runner import runner_for
from .target import Target


@dataclass
class DatabaseRestoreReport:
    """What `restore` did."""

    database: str
    backup: Path  # the backup restored
    kept: str | None  # the replaced database, kept: a file, or a server database's name
    tables: dict[str, int] = field(default_factory=dict)  # rows per table, as restored
    pending: list[str] = field(default_factory=list)  # migrations the backup predates
    seconds: float = 0.0


def restore(backup: str | os.PathLike, target: Target, progress: Progress = None) -> DatabaseRestoreReport:
    """`commands.restore` on a parsed `Target`."""
    start = time.monotonic()
    path = Path(backup).expanduser()
    restored = backend_for(target).restore(target, path, progress)
    report = DatabaseRestoreReport(str(target), path, restored.kept, restored.tables)
    with opened(target, readonly=True) as database:
        report.pending = [m.name for m in runner_for(target, database).pending()]
    report.seconds = time.monotonic() - start
    return report
