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


def agent_example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Agent memory") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_agent_memory_example_runs_offline_and_the_cli_shows_its_conversation(
    tmp_path, monkeypatch, capsys
):
    from cli_support import invoke

    monkeypatch.chdir(tmp_path)
    exec(compile(agent_example(), "README.md agent memory", "exec"), {"__name__": "agent_example"})
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["You asked about ticket 42.", "6", "customer-7 6 {'customer': 7, 'plan': 'pro'}"]
    assert out[3:] == [
        "0 user What is the status of ticket 42?",
        '1 assistant lookup_ticket({"ticket":42})',
        "2 system ticket 42: open, assigned to Ann",
        "3 assistant Ticket 42 is open; Ann has it.",
        "4 user Which ticket did I ask about?",
        "5 assistant You asked about ticket 42.",
    ]
    listed = invoke("agents", "--db-path", "agents.sqlite")
    assert listed.exit_code == 0 and re.fullmatch(
        r"customer-7\t6 items\tlast \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
        r"\tsession [0-9a-f-]{36}\tthread T-[0-9a-f-]{36}\n",
        listed.stdout,
    )
    shown = invoke("agents", "customer-7", "--last", "2", "--db-path", "agents.sqlite").stdout.splitlines()
    assert shown[0].startswith("agent session customer-7: 6 items, thread T-")
    assert [re.sub(r" \d{4}-\S+ \S+Z:", ":", line) for line in shown[1:]] == [
        "[4] user: Which ticket did I ask about?",
        "[5] assistant: You asked about ticket 42.",
    ]
    unknown = invoke("agents", "nobody", "--db-path", "agents.sqlite")
    assert unknown.exit_code == 2 and unknown.stderr == "error: no agent session with id 'nobody'\n"
