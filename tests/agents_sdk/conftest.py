"""What the SDK's own tests/conftest.py gives its session tests, and sessionorm's isolation.

- `SessionormSession(id)` without a database opens sessionorm's default one
  (`$AMPSM_DB_PATH`): here a fresh file per test, never the user's.
- Tracing is off (the SDK's conftest installs a test processor; nothing here reads spans),
  and a real model client fails the test, as in the SDK's conftest: everything runs offline
  on `agents.testing.ScriptedModel`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agents import set_tracing_disabled
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel

collect_ignore = ["upstream"]  # the SDK's files, run rewritten by test_sdk_session*.py


@pytest.fixture(autouse=True)
def default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "default-sessions.sqlite"
    monkeypatch.setenv("AMPSM_DB_PATH", str(path))
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    set_tracing_disabled(True)

    def real_model(*args: object, **kwargs: object) -> None:
        pytest.fail("Real models should not be used in tests!")

    for model in (OpenAIResponsesModel, OpenAIChatCompletionsModel):
        monkeypatch.setattr(model, "get_response", real_model)
        monkeypatch.setattr(model, "stream_response", real_model)
