"""Objects in, objects out (issue 23): `create_*` and `add_*` return the model instances, every
method that takes an id takes the instance too, and relations are objects."""

from __future__ import annotations

from sessionorm import Session, SessionStore, Thread, ThreadMessage


def test_creates_and_appends_return_instances_that_the_other_methods_take(tmp_path):
    with SessionStore(tmp_path / "o.sqlite") as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "t")
        assert isinstance(thread, Thread) and thread.id.startswith("T-") and thread.name == "t"
        assert thread.session_id == session.id and thread.message_count == 0
        message = store.add_thread_message(thread, "user", "hello")
        assert isinstance(message, ThreadMessage)
        assert (message.thread_id, message.idx, message.role, message.content) == (
            thread.id,
            0,
            "user",
            "hello",
        )
        batch = store.add_thread_messages(thread, [("assistant", "hi"), ("user", "again")])
        assert [(m.idx, m.content) for m in batch] == [(1, "hi"), (2, "again")]
        # what was returned is what is stored
        stored = store.get_thread_messages(thread)
        assert [(m.id, m.idx, m.role, m.content) for m in stored] == [
            (m.id, m.idx, m.role, m.content) for m in [message, *batch]
        ]
        assert message.created_at == stored[0].created_at
        # relations are objects, through the store
        assert isinstance(message.thread, Thread) and message.thread.id == thread.id
        assert isinstance(thread.session, Session) and thread.session.id == session.id
        assert [t.id for t in session.threads] == [thread.id]
        assert store.get_thread(thread).message_count == 3
        # the instances go back in
        store.update_thread_timestamp(thread)
        store.delete_thread_message(batch[0])
        assert store.pop_thread_message(thread).id == batch[1].id
        store.delete_thread(thread)
        assert store.get_session_threads(session) == []
        assert store.delete_session(session)["sessions"] == 1


def test_thread_messages_pages_and_reprs_show_counts(tmp_path):
    with SessionStore(tmp_path / "o.sqlite") as store:
        session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
        thread = store.create_thread(session, "t")
        store.add_thread_messages(thread, [("user", str(n)) for n in range(10)])
        thread = store.get_thread(thread)
        assert [m.content for m in thread.messages] == [str(n) for n in range(10)]
        assert len(thread.messages) == 10 and thread.messages[-1].idx == 9
        assert [m.idx for m in thread.messages(after_idx=3, limit=2)] == [4, 5]
        assert [m.idx for m in thread.messages(last=2)] == [8, 9]
        statements: list[str] = []
        store.db.connection().set_trace_callback(statements.append)
        thread.messages(limit=1)  # a page reads that page alone
        assert len(statements) == 1 and "LIMIT" in statements[0]
        store.db.connection().set_trace_callback(None)
        assert "message_count=10" in repr(thread) and "name='t'" in repr(thread)
        listed = store.list_sessions()[0]
        assert listed.thread_count == 1 and "thread_count=1" in repr(listed)
        assert store.get_session(session).thread_count == 1 and "status='idle'" in repr(listed)
