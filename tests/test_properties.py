"""Property-based: random sequences of store operations against a plain-Python model.

After every step: each thread's idx runs 0..n-1, `message_count` is the real count, no
thread or message is orphaned, and the database holds exactly what the model holds. A
step that fails (NotFoundError, ValidationError) changes nothing at all.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from sessionorm import NotFoundError, SessionStore, ValidationError

ROLES = ("user", "assistant", "system")


@st.composite
def mostly(draw, valid: st.SearchStrategy, invalid: st.SearchStrategy):
    """`valid` about four times out of five: enough failures to test, enough successes to build on.

    (`st.one_of(valid, valid, valid, valid, invalid)` would not do: it drops the duplicates.)
    """
    return draw(valid if draw(st.sampled_from((True, True, True, True, False))) else invalid)


text = st.text(max_size=20)  # any code point but surrogates: NULs, RTL, combining marks …
names = text.map(lambda s: s if s.strip() else s + "n")
bad_names = st.sampled_from(["", " ", "\t\n", None, b"name", 3, ["n"]])
roles = mostly(st.sampled_from(ROLES), st.sampled_from(["admin", "User", "", " user", None, 1, b"user"]))
contents = mostly(text, st.binary(max_size=3) | st.integers() | st.none() | st.lists(text, max_size=1))
unknown_ids = st.uuids(version=4).map(str)
counts = mostly(st.none() | st.integers(min_value=0, max_value=6), st.sampled_from([-1, True, 1.0, "2"]))


def valid_message(role: object, content: object) -> bool:
    return role in ROLES and isinstance(content, str)


class StoreMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")
    threads = Bundle("threads")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="sessionorm-prop-"))
        self.store = SessionStore(self.folder / "prop.db")
        self.model: dict[str, dict[str, list[tuple[str, str]]]] = {}  # session → thread → messages
        self.thread_session: dict[str, str] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------

    def snapshot(self) -> list[str]:
        return list(self.store.db.connection().iterdump())

    def fails(self, error: type[Exception], call) -> None:
        """`call` raises `error` and leaves every byte of content as it was."""
        before = self.snapshot()
        try:
            call()
        except error:
            pass
        else:
            raise AssertionError(f"expected {error.__name__}")
        assert not self.store.db.connection().in_transaction
        assert self.snapshot() == before

    def messages(self, thread_id: str) -> list[tuple[str, str]] | None:
        session_id = self.thread_session.get(thread_id)
        return None if session_id is None else self.model[session_id][thread_id]

    # -- rules ------------------------------------------------------------------------------

    @initialize(target=threads, name=names)
    def first_thread(self, name):
        """Start from one session with one thread, so that most steps have something to act on."""
        session_id = self.create_session(name, "prompt")
        return self.create_thread(session_id, name)

    @rule(target=sessions, name=names, prompt=text)
    def create_session(self, name, prompt):
        session = self.store.create_session(name=name, amp_prompt=prompt, repo_root="/repo")
        assert (session.name, session.amp_prompt) == (name, prompt)
        self.model[session.id] = {}
        return session.id

    @rule(target=threads, session_id=mostly(sessions, unknown_ids), name=mostly(names, bad_names))
    def create_thread(self, session_id, name):
        if not isinstance(name, str) or not name.strip():
            self.fails(ValidationError, lambda: self.store.create_thread(session_id, name).id)
            return multiple()
        if session_id not in self.model:
            self.fails(NotFoundError, lambda: self.store.create_thread(session_id, name).id)
            return multiple()
        thread_id = self.store.create_thread(session_id, name).id
        self.model[session_id][thread_id] = []
        self.thread_session[thread_id] = session_id
        return thread_id

    @rule(thread_id=mostly(threads, unknown_ids), role=roles, content=contents)
    def add_thread_message(self, thread_id, role, content):
        call = lambda: self.store.add_thread_message(thread_id, role, content).id  # noqa: E731
        if not valid_message(role, content):
            self.fails(ValidationError, call)
        elif self.messages(thread_id) is None:
            self.fails(NotFoundError, call)
        else:
            call()
            self.messages(thread_id).append((role, content))

    @rule(
        thread_id=mostly(threads, unknown_ids),
        batch=mostly(
            st.lists(st.tuples(st.sampled_from(ROLES), text), min_size=1, max_size=4),
            st.lists(st.tuples(roles, contents), max_size=4),
        ),
    )  # often invalid
    def add_thread_messages(self, thread_id, batch):
        call = lambda: self.store.add_thread_messages(thread_id, batch)  # noqa: E731
        if not batch or not all(valid_message(r, c) for r, c in batch):
            self.fails(ValidationError, call)
        elif self.messages(thread_id) is None:
            self.fails(NotFoundError, call)
        else:
            ids = call()
            assert len(ids) == len(set(ids)) == len(batch)
            self.messages(thread_id).extend(batch)

    @rule(thread_id=mostly(threads, unknown_ids))
    def delete_thread(self, thread_id):
        if self.messages(thread_id) is None:
            self.fails(NotFoundError, lambda: self.store.delete_thread(thread_id))
            return
        self.store.delete_thread(thread_id)
        del self.model[self.thread_session.pop(thread_id)][thread_id]

    @rule(session_id=mostly(sessions, unknown_ids))
    def delete_session(self, session_id):
        if session_id not in self.model:
            self.fails(NotFoundError, lambda: self.store.delete_session(session_id))
            return
        self.store.delete_session(session_id)
        for thread_id in self.model.pop(session_id):
            del self.thread_session[thread_id]

    @rule(thread_id=mostly(threads, unknown_ids))
    def update_thread_timestamp(self, thread_id):
        if self.messages(thread_id) is None:
            self.fails(NotFoundError, lambda: self.store.update_thread_timestamp(thread_id))
        else:
            self.store.update_thread_timestamp(thread_id)

    @rule(thread_id=mostly(threads, unknown_ids), after_idx=counts, limit=counts, last=counts)
    def get_thread_messages(self, thread_id, after_idx, limit, last):
        call = lambda: self.store.get_thread_messages(  # noqa: E731
            thread_id, after_idx=after_idx, limit=limit, last=last
        )
        if not all(v is None or (type(v) is int and v >= 0) for v in (after_idx, limit, last)) or (
            limit is not None and last is not None
        ):
            self.fails(ValidationError, call)
            return
        expected = self.messages(thread_id)
        if expected is None:
            self.fails(NotFoundError, call)
            return
        wanted = [(i, r, c) for i, (r, c) in enumerate(expected) if after_idx is None or i > after_idx]
        if limit is not None:
            wanted = wanted[:limit]
        if last is not None:
            wanted = wanted[max(0, len(wanted) - last) :] if last else []
        assert [(m.idx, m.role, m.content) for m in call()] == wanted

    @rule(thread_id=mostly(threads, unknown_ids))
    def get_thread(self, thread_id):
        expected = self.messages(thread_id)
        if expected is None:
            self.fails(NotFoundError, lambda: self.store.get_thread(thread_id))
        else:
            assert self.store.get_thread(thread_id).message_count == len(expected)

    @rule(session_id=mostly(sessions, unknown_ids))
    def get_session(self, session_id):
        if session_id not in self.model:
            self.fails(NotFoundError, lambda: self.store.get_session(session_id))
            self.fails(NotFoundError, lambda: self.store.get_session_threads(session_id))
        else:
            assert self.store.get_session(session_id).id == session_id

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def idx_is_contiguous_from_zero(self):
        bad = self.store.db.execute_sql(
            'SELECT "threadId", count(*), min(idx), max(idx) FROM thread_messages GROUP BY "threadId"'
            " HAVING min(idx) != 0 OR max(idx) != count(*) - 1 OR count(DISTINCT idx) != count(*)"
        ).fetchall()
        assert bad == []

    @invariant()
    def nothing_is_orphaned(self):
        orphans = self.store.db.execute_sql(
            'SELECT (SELECT count(*) FROM threads t LEFT JOIN sessions s ON s.id = t."sessionId"'
            "        WHERE s.id IS NULL),"
            ' (SELECT count(*) FROM thread_messages m LEFT JOIN threads t ON t.id = m."threadId"'
            "        WHERE t.id IS NULL)"
        ).fetchone()
        assert tuple(orphans) == (0, 0)
        assert self.store.db.execute_sql("PRAGMA foreign_key_check").fetchall() == []

    @invariant()
    def database_matches_the_model(self):
        for session_id, threads in self.model.items():
            listed = self.store.get_session_threads(session_id)
            assert {t.id: t.message_count for t in listed} == {t: len(m) for t, m in threads.items()}
            assert [t.updated_at for t in listed] == sorted((t.updated_at for t in listed), reverse=True)
        for thread_id, session_id in self.thread_session.items():
            stored = self.store.get_thread_messages(thread_id)
            assert [(m.idx, m.role, m.content) for m in stored] == [
                (i, r, c) for i, (r, c) in enumerate(self.model[session_id][thread_id])
            ]
        totals = self.store.db.execute_sql(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM threads),"
            " (SELECT count(*) FROM thread_messages)"
        ).fetchone()
        assert tuple(totals) == (
            len(self.model),
            len(self.thread_session),
            sum(len(m) for t in self.model.values() for m in t.values()),
        )


StoreMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_store_operations_keep_every_invariant = StoreMachine.TestCase
