"""The harness runs what it says: the pinned SDK's files, rewritten to SessionormSession."""

from __future__ import annotations

import hashlib
from importlib.metadata import version

import sdk_harness
import test_sdk_session
import test_sdk_session_limit

from sessionorm.agents import SessionormSession


def test_the_upstream_files_are_the_pinned_sdk_versions_own() -> None:
    assert version("openai-agents") == sdk_harness.SDK_VERSION
    for name, digest in sdk_harness.UPSTREAM_SHA256.items():
        assert hashlib.sha256((sdk_harness.UPSTREAM / name).read_bytes()).hexdigest() == digest


def test_the_tests_use_sessionorm_session_and_only_the_internals_tests_are_left_out() -> None:
    for module in (test_sdk_session, test_sdk_session_limit):
        assert module.SessionormSession is SessionormSession
        assert "SQLiteSession" not in vars(module)
    kept = {name for name in vars(test_sdk_session) if name.startswith("test_")}
    upstream = (sdk_harness.UPSTREAM / "test_session.py").read_text()
    for name in sdk_harness.SET_ASIDE:
        assert f"def {name}(" in upstream and name not in kept
    assert len(kept) == upstream.count("\ndef test_") + upstream.count("\nasync def test_") - len(
        sdk_harness.SET_ASIDE
    )
    assert len(kept) >= 25
