"""get_session_threads: 1,000 threads with their message counts, against one SELECT."""

from __future__ import annotations

from pathlib import Path

from harness import Outcome, interleave, ratio_row, reads, sample_messages

from sessionorm import SessionStore

from .common import RAW_SQL, Config, copy_db, make_template, raw_connect


def measure(cfg: Config, workdir: Path) -> Outcome:
    path, session_id, _ = make_template(workdir)
    db = workdir / "threads.db"
    copy_db(path, db)
    with SessionStore(db) as store:
        messages = sample_messages(cfg.messages_per_thread)
        for n in range(cfg.threads - 1):  # the template's thread counts as one
            store.add_thread_messages(store.create_thread(session_id, f"thread {n}"), messages)
        store.add_thread_messages(store.get_session_threads(session_id)[-1].id, messages)
        other = store.create_session(name="other", amp_prompt="p", repo_root="/tmp/o")
        for n in range(cfg.threads // 5):  # a neighbour, so that a scan would show
            store.add_thread_messages(store.create_thread(other.id, f"other {n}"), messages[:10])
    con = raw_connect(db)
    store = SessionStore(db)
    threads = store.get_session_threads(session_id)
    assert len(threads) == cfg.threads
    assert sum(t.message_count for t in threads) == cfg.threads * cfg.messages_per_thread

    raws, orms = interleave(
        reads(
            lambda: con.execute(RAW_SQL["session_threads"], (session_id,)).fetchall(),
            lambda: store.get_session_threads(session_id),
        ),
        cfg.session_reads_per_run,
        cfg.runs,
        "get_session_threads (per call)",
    )
    row = ratio_row(
        f"get_session_threads, {cfg.threads:,} threads / {cfg.threads * cfg.messages_per_thread:,} messages",
        raws,
        orms,
        "ms",
        2,
    )

    def profile() -> None:
        for _ in range(cfg.session_reads_per_run):
            store.get_session_threads(session_id)

    return Outcome([row], profile, lambda: (store.close(), con.close()))
