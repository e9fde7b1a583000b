"""Run the OpenAI Agents SDK's own session tests against `SessionormSession`.

`upstream/` holds `tests/memory/test_session.py` and `test_session_limit.py` of openai-agents
0.24.0 (the version the `agents` and `test` extras pin), byte for byte as its sdist ships them
(`pip download openai-agents==0.24.0 --no-binary :all: --no-deps`), with the SDK's MIT
license. `load` compiles one of them with `SQLiteSession` replaced by `SessionormSession`
everywhere (the error text "… is closed" included), its imports of the SDK's test helpers
pointed at this folder, and the tests in `SET_ASIDE` left out. Line numbers stay those of
the upstream file, so a failure points at the SDK's own line.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from openai.types.responses import ResponseOutputItem, ResponseOutputMessage, ResponseOutputText

UPSTREAM = Path(__file__).parent / "upstream"
SDK_VERSION = "0.24.0"
UPSTREAM_SHA256 = {
    "test_session.py": "a475fa349c7cd57a5c0c91da7309e0554ee74dbcb6935ff3f111d5bede5a21da",
    "test_session_limit.py": "1156bb16f20ebcb65137f39b40ca4635eb1d1bd37b81ab485fc19010fc722342",
}

# Tests of SQLiteSession's private internals, which SessionormSession does not have; what
# each one guards is tested on SessionormSession's own terms in tests/test_agent_session.py.
_CONNECTIONS = "SQLiteSession's per-thread connection registry (`_connections`)"
_CORRUPT_ROWS = "writes raw rows through `_locked_connection` into `messages_table`"
_TABLES = "probes or drops SQLiteSession's own tables (`agent_sessions`, `agent_messages`)"
_FACTORY = "injects a sqlite3.Connection subclass through `_get_connection`/`_connections_lock`"
SET_ASIDE = {
    "test_sqlite_session_close_closes_worker_thread_connections": _CONNECTIONS,
    "test_sqlite_session_reaps_connections_from_exited_worker_threads": _CONNECTIONS,
    "test_sqlite_session_closes_retired_connections_before_the_next_allocation": _CONNECTIONS,
    "test_sqlite_session_keeps_connections_of_live_worker_threads": _CONNECTIONS,
    "test_sqlite_session_pop_item_skips_corrupt_most_recent": _CORRUPT_ROWS,
    "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows": _CORRUPT_ROWS,
    "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows": _CORRUPT_ROWS,
    "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows": _CORRUPT_ROWS,
    "test_sqlite_session_file_lock_is_shared_across_instances": "SQLiteSession's class-level `_file_locks`",
    "test_sqlite_session_failed_add_items_releases_write_lock": _TABLES,
    "test_sqlite_session_failed_clear_session_rolls_back": _TABLES,
    "test_sqlite_session_failed_pop_item_releases_write_lock": _TABLES,
    "test_sqlite_session_rollback_failure_evicts_connection": _FACTORY,
    "test_sqlite_session_close_retries_quarantined_connection": _FACTORY,
    "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome": _FACTORY,
}
# The SDK's test helpers, as this folder provides them.
HELPERS = {"tests.test_responses": "sdk_harness", "tests.memory.test_session": "test_sdk_session"}


def get_text_message(content: str) -> ResponseOutputItem:
    """The SDK's `tests.test_responses.get_text_message`, copied: a model's text reply."""
    return ResponseOutputMessage(
        id="1",
        type="message",
        role="assistant",
        content=[ResponseOutputText(text=content, type="output_text", annotations=[], logprobs=[])],
        status="completed",
    )


class ToSessionorm(ast.NodeTransformer):
    """`SQLiteSession` → `SessionormSession`, imported from `sessionorm.agents`."""

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id == "SQLiteSession":
            node.id = "SessionormSession"
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        if isinstance(node.value, str) and "SQLiteSession is closed" in node.value:
            node.value = node.value.replace("SQLiteSession", "SessionormSession")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | list[ast.AST]:
        if node.module in HELPERS:
            node.module = HELPERS[node.module]
            return node
        names = [alias for alias in node.names if alias.name != "SQLiteSession"]
        if len(names) == len(node.names):
            return node
        ours = ast.ImportFrom("sessionorm.agents", [ast.alias("SessionormSession")], 0)
        ast.copy_location(ours, node)
        if not names:
            return ours
        node.names = names
        return [node, ours]


def load(name: str, namespace: dict[str, Any]) -> None:
    """Run upstream test module `name`, rewritten, into `namespace` (a test module's globals)."""
    path = UPSTREAM / name
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    tree.body = [
        node
        for node in tree.body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in SET_ASIDE)
    ]
    tree = ast.fix_missing_locations(ToSessionorm().visit(tree))
    exec(compile(tree, str(path), "exec"), namespace)
