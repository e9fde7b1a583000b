"""open: SessionStore(path) on an up-to-date file, against sqlite3.connect and the same pragmas."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from harness import Outcome, Row, Step, interleave, log, median, run_process, sample_messages

from sessionorm import SessionStore

from .common import RAW_PRAGMAS, Config, make_template, raw_connect


def measure(cfg: Config, workdir: Path) -> Outcome:
    path, _, thread_id = make_template(workdir)
    with SessionStore(path) as store:  # holds data: an up-to-date file, not a new one
        store.add_thread_messages(thread_id, sample_messages(100))
    opened: list = []

    def setup() -> tuple[Step, Step, Callable[[], None]]:
        def close_all() -> None:
            for handle in opened:
                handle.close()
            opened.clear()

        return (
            lambda i: opened.append(raw_connect(path)),
            lambda i: opened.append(SessionStore(path)),
            close_all,
        )

    # Each handle stays open until the run ends, so closing is never timed (on either side).
    raws, orms = interleave(setup, cfg.opens_per_run, cfg.runs, "open (per open)")
    orm_m, raw_m = median(orms), median(raws)
    row = Row(
        "open SessionStore on an up-to-date db (in process)",
        orm_m,
        raw_m,
        "ms",
        "≤ 20 ms",
        orm_m <= 0.020,
        orm_m / raw_m,
        {"raw": raws, "sessionorm": orms},
    )

    # Informational: a fresh interpreter, imports included (what a CLI call or a script pays).
    raw_cold = [
        sys.executable,
        "-c",
        "import sqlite3, sys; con = sqlite3.connect(sys.argv[1],"
        " isolation_level=None); [con.execute(p) for p in sys.argv[2:]]; con.close()",
        str(path),
        *RAW_PRAGMAS,
    ]
    orm_cold = [
        sys.executable,
        "-c",
        "import sys; from sessionorm import SessionStore; SessionStore(sys.argv[1]).close()",
        str(path),
    ]
    raws, orms = [], []
    for _ in range(max(3, cfg.runs // 2)):
        raws.append(run_process(raw_cold, workdir).seconds)
        orms.append(run_process(orm_cold, workdir).seconds)
    log(
        f"  open in a fresh process: raw {median(raws) * 1000:.0f} ms,"
        f" sessionorm {median(orms) * 1000:.0f} ms"
    )
    cold = Row(
        "open in a fresh process, imports included",
        median(orms),
        median(raws),
        "ms",
        "—",
        None,
        median(orms) / median(raws),
        {"raw": raws, "sessionorm": orms},
    )

    def profile() -> None:
        for _ in range(cfg.opens_per_run):
            SessionStore(path).close()

    return Outcome([row, cold], profile)
