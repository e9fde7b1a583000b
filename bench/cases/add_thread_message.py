"""add_thread_message: one message per call, against a hand-written transaction per message."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from harness import Outcome, Step, interleave, iso_now, ratio_row, sample_messages

from sessionorm import SessionStore

from .common import RAW_SQL, Config, copy_db, make_template, raw_connect


def measure(cfg: Config, workdir: Path) -> Outcome:
    template, _, thread_id = make_template(workdir)
    messages = sample_messages(cfg.single_messages)
    sql = RAW_SQL

    def setup() -> tuple[Step, Step, Callable[[], None]]:
        con = raw_connect(copy_db(template, workdir / "raw.db"))
        store = SessionStore(copy_db(template, workdir / "orm.db"))
        execute, add = con.execute, store.add_thread_message

        # The timed raw side is written out in full (no helper) so that it pays no more
        # calls than a careful sqlite3 user would.
        def raw_step(i: int) -> None:
            role, content = messages[i]
            message_id, now = str(uuid.uuid4()), iso_now()
            execute("BEGIN IMMEDIATE")
            try:
                idx = execute(sql["next_idx"], (thread_id,)).fetchone()[0]
                execute(sql["insert"], (message_id, thread_id, role, content, now, idx))
                execute(sql["touch"], (now, thread_id))
            except BaseException:
                execute("ROLLBACK")
                raise
            execute("COMMIT")

        def orm_step(i: int) -> None:
            add(thread_id, *messages[i])

        def teardown() -> None:
            assert store.get_thread_messages(thread_id, last=1)[0].idx == len(messages) - 1
            store.close()
            con.close()

        return raw_step, orm_step, teardown

    raws, orms = interleave(setup, len(messages), cfg.runs, "add_thread_message (per call)")
    row = ratio_row(f"add_thread_message, {len(messages):,} calls (per call)", raws, orms, "ms", 2)

    def profile() -> None:
        with SessionStore(copy_db(template, workdir / "orm.db")) as store:
            for role, content in messages:
                store.add_thread_message(thread_id, role, content)

    return Outcome([row], profile)
