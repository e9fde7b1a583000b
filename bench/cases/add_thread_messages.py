"""add_thread_messages: batches of messages, against the same transaction with executemany."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from harness import Outcome, Step, interleave, iso_now, ratio_row, sample_messages

from sessionorm import SessionStore

from .common import RAW_SQL, Config, copy_db, make_template, raw_connect


def measure(cfg: Config, workdir: Path) -> Outcome:
    template, _, thread_id = make_template(workdir)
    batches = [sample_messages(cfg.batch_size, b * cfg.batch_size) for b in range(cfg.batches)]
    sql = RAW_SQL

    def setup() -> tuple[Step, Step, Callable[[], None]]:
        con = raw_connect(copy_db(template, workdir / "raw.db"))
        store = SessionStore(copy_db(template, workdir / "orm.db"))

        # Written out in full, like add_thread_message's raw side (no helper in the timing).
        def raw_step(i: int) -> None:
            now = iso_now()
            con.execute("BEGIN IMMEDIATE")
            try:
                first = con.execute(sql["next_idx"], (thread_id,)).fetchone()[0]
                rows = [
                    (str(uuid.uuid4()), thread_id, role, content, now, first + n)
                    for n, (role, content) in enumerate(batches[i])
                ]
                con.executemany(sql["insert"], rows)
                con.execute(sql["touch"], (now, thread_id))
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

        def orm_step(i: int) -> None:
            store.add_thread_messages(thread_id, batches[i])

        def teardown() -> None:
            store.close()
            con.close()

        return raw_step, orm_step, teardown

    raws, orms = interleave(setup, len(batches), cfg.runs, "add_thread_messages (per batch)")
    row = ratio_row(f"add_thread_messages, {cfg.batch_size:,} messages (per batch)", raws, orms, "ms", 1.5)

    def profile() -> None:
        with SessionStore(copy_db(template, workdir / "orm.db")) as store:
            for batch in batches:
                store.add_thread_messages(thread_id, batch)

    return Outcome([row], profile)
