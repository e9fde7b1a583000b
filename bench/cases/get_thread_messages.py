"""get_thread_messages: a whole 10,000-message thread, its last 50, and four fields of each
message read, against plain SELECTs and tuple indexing."""

from __future__ import annotations

from pathlib import Path
from statistics import median

from harness import Outcome, interleave, ratio_row, reads, sample_messages

from sessionorm import SessionStore, ThreadMessage

from .common import RAW_SQL, Config, copy_db, make_template, raw_connect


def reading_db(workdir: Path, cfg: Config) -> tuple[Path, str, str]:
    """A thread of `thread_messages` messages next to another thread of the same size."""
    path, session_id, thread_id = make_template(workdir)
    reading = workdir / "reading.db"
    copy_db(path, reading)
    with SessionStore(reading) as store:
        other = store.create_thread(session_id, "other thread").id
        for start in range(0, cfg.thread_messages, 1000):
            size = min(1000, cfg.thread_messages - start)
            store.add_thread_messages(thread_id, sample_messages(size, start))
            store.add_thread_messages(other, sample_messages(size, start))
    return reading, session_id, thread_id


def measure(cfg: Config, workdir: Path) -> Outcome:
    path, _, thread_id = reading_db(workdir, cfg)
    con = raw_connect(path)
    store = SessionStore(path)
    total, last = cfg.thread_messages, cfg.last_n
    assert len(store.get_thread_messages(thread_id)) == total
    latest = store.get_thread_messages(thread_id, last=last)
    assert [m.idx for m in latest] == list(range(total - last, total))

    raws, orms = interleave(
        reads(
            lambda: con.execute(RAW_SQL["messages"], (thread_id,)).fetchall(),
            lambda: store.get_thread_messages(thread_id),
        ),
        cfg.reads_per_run,
        cfg.runs,
        "get_thread_messages (per call)",
    )
    full_row = ratio_row(f"get_thread_messages, {total:,}-message thread", raws, orms, "ms", 1.5)
    raws, orms = interleave(
        reads(
            lambda: con.execute(RAW_SQL["last"], (thread_id, last)).fetchall(),
            lambda: store.get_thread_messages(thread_id, last=last),
        ),
        cfg.last_reads_per_run,
        cfg.runs,
        f"get_thread_messages last={last} (per call)",
    )
    last_row = ratio_row(f"get_thread_messages last={last} of {total:,}", raws, orms, "ms", 2)

    # What a caller does with the rows: four fields of each (issue 23), against tuple indexing.
    raws, orms = interleave(
        reads(
            lambda: [(r[0], r[2], r[3], r[5]) for r in con.execute(RAW_SQL["messages"], (thread_id,))],
            lambda: [(m.id, m.role, m.content, m.idx) for m in store.get_thread_messages(thread_id)],
        ),
        cfg.reads_per_run,
        cfg.runs,
        "get_thread_messages + 4 fields of each (per call)",
    )
    # The floor the issue names, for the README: one peewee instance a row, made the usual way.
    columns = [f.name for f in ThreadMessage._meta.sorted_fields]
    peewee_rows, _ = interleave(
        reads(
            lambda: [
                (m.id, m.role, m.content, m.idx)
                for m in (
                    ThreadMessage(**dict(zip(columns, r, strict=True)))
                    for r in con.execute(RAW_SQL["messages"], (thread_id,))
                )
            ],
            lambda: None,
        ),
        cfg.reads_per_run,
        cfg.runs,
        "sqlite3 rows made peewee instances + 4 fields (per call)",
    )
    fields_row = ratio_row(
        f"get_thread_messages, {total:,} messages, reading id, role, content, idx of each",
        raws,
        orms,
        "ms",
        2,
        note=f"one peewee instance a row, made the usual way (`ThreadMessage(**row)`): "
        f"{median(peewee_rows) * 1000:.1f} ms ({median(peewee_rows) / median(raws):.2f}× raw)",
    )

    def profile() -> None:
        for _ in range(cfg.reads_per_run):
            store.get_thread_messages(thread_id)
        for _ in range(cfg.last_reads_per_run):
            store.get_thread_messages(thread_id, last=last)

    return Outcome([full_row, last_row, fields_row], profile, lambda: (store.close(), con.close()))
