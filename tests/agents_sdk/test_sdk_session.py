"""The SDK's own `tests/memory/test_session.py` (0.24.0) against `SessionormSession` (`sdk_harness`)."""

from sdk_harness import load

load("test_session.py", globals())
