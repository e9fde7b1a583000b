"""`pip install .` (not editable) into a new virtual environment works from any folder.

Building and installing takes a few seconds and needs the package index for the build
backend and the dependencies, so the whole module is marked slow and shares one install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# What a clean clone does not have: build leftovers would otherwise end up in the wheel.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".venv",
    "*.db",
    "*.sqlite",
)


def clean_env() -> dict[str, str]:
    """The environment without anything that would let the source checkout leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A new virtual environment with the package installed from a copy of the source tree."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_IN_A_CLONE)
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    installed = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=root,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    shutil.rmtree(source)  # the installed package must not need its source tree
    return env_dir


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A folder that is neither the repository nor the environment."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def run_python(venv: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=cwd,
        timeout=120,
    )


def test_the_installed_package_imports_from_another_folder(venv, elsewhere):
    result = run_python(venv, "import sessionorm; print(sessionorm.__file__)", elsewhere)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve().is_relative_to(venv.resolve())


def test_the_migration_scripts_are_shipped_inside_the_package(venv, elsewhere):
    result = run_python(
        venv,
        """
        import pathlib, sessionorm.migrations as m
        print(sorted(p.name for p in pathlib.Path(m.__file__).parent.glob("*.py")))
    """,
        elsewhere,
    )
    assert result.returncode == 0, result.stderr
    assert "0001_session_thread_relationship.py" in result.stdout
    assert "0002_orchestrator_index_names.py" in result.stdout


def test_the_installed_package_creates_a_database_through_its_migrations(venv, elsewhere):
    result = run_python(
        venv,
        """
        import json, sqlite3, sessionorm
        with sessionorm.SessionStore("new.db") as store:
            session = store.create_session(name="s", amp_prompt="p", repo_root="/r")
            store.add_thread_message(store.create_thread(session.id, "t").id, "user", "hi").id
        rows = sqlite3.connect("new.db").execute(
            "SELECT version, name FROM migrations ORDER BY version").fetchall()
        print(json.dumps(rows))
    """,
        elsewhere,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        [1, "session-thread-relationship"],
        [2, "orchestrator-index-names"],
        [3, "orchestrator-app-schema"],
        [4, "migrated-thread-record"],
        [5, "app-thread-ids"],
        [6, "agent-memory"],
        [7, "message-search"],
    ]


def test_the_console_script_is_installed_and_runs(venv, elsewhere):
    script = venv / "bin" / "sessionorm"
    assert script.is_file() and os.access(script, os.X_OK)
    result = subprocess.run(
        [str(script), "--help"],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=elsewhere,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "migrate" in result.stdout


def test_the_dependencies_and_test_extra_are_declared(venv, elsewhere):
    result = run_python(
        venv,
        """
        import json
        from importlib.metadata import requires
        print(json.dumps(requires("sessionorm")))
    """,
        elsewhere,
    )
    assert result.returncode == 0, result.stderr
    requirements = {r.replace(" ", "") for r in json.loads(result.stdout)}
    assert {"peewee<5,>=4.5", "click>=8.2"} <= requirements
    extras = {r.split(";")[0] for r in requirements if 'extra=="test"' in r}
    assert {e.rstrip("<>=.0123456789,") for e in extras} >= {"pytest", "hypothesis"}
