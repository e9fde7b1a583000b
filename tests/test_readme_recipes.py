"""The README's REPL recipes run as written (issue 23): the python block of "Asking your own
questions" is run in an empty folder, with its own asserts."""

from __future__ import annotations

import re

from cli_support import REPO_ROOT

from sessionorm import Session


def recipes() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("### Asking your own questions") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_recipes_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(recipes(), "README.md recipes", "exec"), {"__name__": "recipes"})
    assert capsys.readouterr().out == "status must be a string, not int\n"
    assert (tmp_path / "recipes.sqlite").exists()
    assert Session._meta.database is None  # the recipe closed its store: the models are unbound
