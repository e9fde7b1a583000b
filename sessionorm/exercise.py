"""`verify --exercise`: run the store's thread functions on the real database, then roll back.

The seed's `migrate:test`. Every step runs inside one transaction that is rolled back at the
end, whatever happens, so nothing is left behind: row counts are unchanged and, in
rollback-journal mode, so is every byte of the file. The SQLite connection keeps the
file's journal mode (the store's own open switches it to WAL, rewriting the header).

The caller (an edge: `commands`) hands in the store on the open database, so that this check
does not import the store; the migration whose row is checked is the runner's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peewee

from .backends import backend_of
from .database import translate_errors
from .errors import DatabaseBusyError, DatabaseOpenError, MigrationError
from .runner import MigrationRunner, record_name

Step = tuple[str, bool, str]  # (what, passed, detail)
COUNTED = ("sessions", "threads", "thread_messages", "migrations")
MESSAGES = [("user", "exercise: question"), ("assistant", "exercise: answer"), ("system", "exercise: note")]


class _RollBack(Exception):
    """Leaves the exercise's transaction, so that it is rolled back."""


class StepFailed(Exception):
    """A step did not do what it should; its message says what happened instead."""


def row_counts(db: peewee.Database) -> dict[str, int]:
    return backend_of(db).catalog.count_rows(COUNTED)


def exercise(store: Any, runner: MigrationRunner, location: str = "") -> list[Step]:
    """Run the checklist on `store.db` inside one transaction that is rolled back; return the steps.

    `store`: a `SessionStore` on the open database (`SessionStore.on_database`); `runner`: the
    database's runner, which names the migration that makes the thread tables. Stops at the
    first failed step. A database without sessions gets one for the length of the exercise
    (rolled back with the rest).
    """
    db: peewee.Database = store.db
    steps: list[Step] = []
    backend = backend_of(db)
    with translate_errors(location or repr(db)):
        try:
            # Counted before and after inside one transaction that keeps its reads stable (the
            # write lock on SQLite, REPEATABLE READ on PostgreSQL): other writers' rows, committed
            # meanwhile, are never taken for rows the exercise left behind.
            with backend.stable_write():
                before = row_counts(db)
                refuse_missing_tables(before)
                try:
                    with backend.write():  # a savepoint: the exercise's own writes
                        run_steps(store, db, runner, steps)
                        raise _RollBack
                except _RollBack:
                    pass
                after = row_counts(db)
                raise _RollBack
        except _RollBack:
            pass
    if after == before:
        steps.append(
            ("rolled back: row counts unchanged", True, ", ".join(f"{t} {n}" for t, n in before.items()))
        )
    else:
        steps.append(("rolled back: row counts unchanged", False, f"before {before}, after {after}"))
    return steps


def refuse_missing_tables(counts: dict[str, int]) -> None:
    missing = {"sessions", "threads", "thread_messages", "migrations"} - set(counts)
    if missing:
        raise MigrationError(
            f"cannot exercise the store: no table {', '.join(sorted(missing))}"
            " (run `sessionorm migrate` first)"
        )


def run_steps(store: Any, db: peewee.Database, runner: MigrationRunner, steps: list[Step]) -> None:
    """Each step appends (what, passed, detail); the first failure ends the run."""

    def step(what: str, action: Callable[[], str]) -> None:
        try:
            steps.append((what, True, action()))
        except (DatabaseBusyError, DatabaseOpenError):
            raise  # busy, unreadable: not the store misbehaving
        except Exception as exc:  # noqa: BLE001 -- any failure is the answer to report
            steps.append((what, False, str(exc) or type(exc).__name__))
            raise _RollBack from None

    state: dict = {}
    row = db.execute_sql("SELECT id FROM sessions ORDER BY id LIMIT 1").fetchone()

    def create_session() -> str:
        state["session"] = store.create_session(
            name="sessionorm verify --exercise", amp_prompt="exercise", repo_root="/exercise"
        ).id
        return f"session {state['session']}, rolled back with the rest"

    if row is None:
        step("create a session (the database has none)", create_session)
    else:
        state["session"] = row[0]
    session_id = state["session"]

    def create() -> str:
        state["thread"] = store.create_thread(session_id, "sessionorm verify --exercise").id
        listed = [t.id for t in store.get_session_threads(session_id)]
        expect(state["thread"] in listed, f"thread {state['thread']} is not among the session's threads")
        return f"thread {state['thread']}"

    def append() -> str:
        ids = [store.add_thread_message(state["thread"], role, text).id for role, text in MESSAGES]
        state["messages"] = ids
        count = store.get_thread(state["thread"]).message_count
        expect(count == 3, f"the thread counts {count} messages, not 3")
        return "3 messages"

    def read_back() -> str:
        got = [(m.id, m.idx, m.role, m.content) for m in store.get_thread_messages(state["thread"])]
        want = [
            (i, n, role, text)
            for n, (i, (role, text)) in enumerate(zip(state["messages"], MESSAGES, strict=True))
        ]
        expect(got == want, f"read back {got}, expected {want}")
        return "idx 0, 1, 2 in order"

    def delete() -> str:
        store.delete_thread(state["thread"])
        left = db.execute_sql(
            f'SELECT count(*) FROM thread_messages WHERE "threadId" = {db.param}', (state["thread"],)
        ).fetchone()[0]
        expect(left == 0, f"{left} messages of the deleted thread are left (no cascade)")
        return "its 3 messages went with it"

    maker = runner.adopter("threads")  # the script that makes the thread tables
    version = maker.idx if maker is not None else None
    name = record_name(maker) if maker is not None else None

    def migration_row() -> str:
        expect(maker is not None, "no migration script makes the thread tables")
        rows = db.execute_sql(
            f"SELECT name, applied_at FROM migrations WHERE version = {db.param}", (version,)
        ).fetchall()
        expect(len(rows) == 1 and rows[0][0] == name, f"migrations row {version} is {rows or 'missing'}")
        return f"{name}, applied {rows[0][1]}"

    step(f"create a thread on session {session_id}", create)
    step("append 3 messages (idx 0..2)", append)
    step("read them back in order", read_back)
    step("delete the thread; its messages cascade", delete)
    step(f"migration row {version} is recorded", migration_row)


def expect(condition: bool, failure: str) -> None:
    if not condition:
        raise StepFailed(failure)
