"""Which database: one resolution (`Target.default`, `Target.of`) for the CLI and the Python API.

An empty value, which is what a script gets from an unset shell variable, is a usage error
(exit 2) in the CLI and a `ValidationError` in Python: it never falls back to another
database. The Python API honours `$SESSIONORM_DB_URL` as the CLI does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cli_support import PRIORITY_MODELS_MODULE
from test_cli_contract import sessionorm

from sessionorm import SessionStore, ValidationError, rollback, status, verify
from sessionorm.target import Target


def digest(path: Path) -> dict[str, str]:
    """sha256 of the file and of each sidecar it has."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal"))
        if p.exists()
    }


@pytest.fixture
def default_file(tmp_path: Path) -> Path:
    """A migrated file that the environment names as the default database."""
    path = tmp_path / "the-default.sqlite"
    SessionStore(path).close()
    return path


@pytest.mark.parametrize("option", ["--db-path", "--db-url"])
@pytest.mark.parametrize("command", [["rollback"], ["migrate"], ["status"], ["backup"], ["verify"]])
def test_an_empty_database_option_is_a_usage_error_and_the_default_is_untouched(
    tmp_path, default_file, option, command
):
    before = digest(default_file)
    for env in ({"AMPSM_DB_PATH": str(default_file)}, {"SESSIONORM_DB_URL": f"sqlite:///{default_file}"}):
        done = sessionorm(*command, option, "", env={**env, "HOME": str(tmp_path / "home")})
        assert done.returncode == 2, done.stderr
        assert f"{option} is empty (an unset variable?)" in done.stderr
        assert digest(default_file) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["the-default.sqlite"]


@pytest.mark.parametrize("variable", ["AMPSM_DB_PATH", "SESSIONORM_DB_URL"])
def test_a_database_variable_set_but_empty_is_a_usage_error(tmp_path, variable):
    home = tmp_path / "home"
    done = sessionorm("migrate", env={variable: "", "HOME": str(home)})
    assert done.returncode == 2
    assert f"${variable} is set but empty" in done.stderr
    assert not home.exists()  # the orchestrator's default file was not created


def test_the_python_api_refuses_an_empty_database(tmp_path, default_file, monkeypatch):
    monkeypatch.setenv("AMPSM_DB_PATH", str(default_file))
    monkeypatch.delenv("SESSIONORM_DB_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    before = digest(default_file)
    for call in (lambda: SessionStore(""), lambda: verify(""), lambda: status("  "), lambda: rollback("")):
        with pytest.raises(ValidationError, match="empty string"):
            call()
    with pytest.raises(ValidationError, match="URL is empty"):
        SessionStore(url="")
    assert digest(default_file) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["the-default.sqlite"]


def test_the_python_api_honours_sessionorm_db_url(tmp_path, monkeypatch):
    by_url = tmp_path / "by-url.sqlite"
    monkeypatch.setenv("SESSIONORM_DB_URL", f"sqlite:///{by_url}")
    monkeypatch.setenv("AMPSM_DB_PATH", str(tmp_path / "by-path.sqlite"))
    with SessionStore() as store:
        store.create_session(name="s", amp_prompt="p", repo_root="/r")
    assert by_url.exists() and not (tmp_path / "by-path.sqlite").exists()
    assert verify().ok
    assert Target.default() == Target.from_path(by_url)


def test_a_variable_set_but_empty_is_refused_by_the_python_api_too(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SESSIONORM_DB_URL", "")
    with pytest.raises(ValidationError, match=r"\$SESSIONORM_DB_URL is set but empty"):
        SessionStore()
    assert list(tmp_path.iterdir()) == []


def test_sessionorm_models_is_the_default_models_for_verify_and_diff(tmp_path, monkeypatch):
    """The own-models walkthrough: once `$SESSIONORM_MODELS` names them, `verify` and `diff`
    compare your models without `--models` every time."""
    db = tmp_path / "dev.sqlite"
    SessionStore(db).close()
    (tmp_path / "mine.py").write_text(PRIORITY_MODELS_MODULE)
    done = sessionorm("diff", "--db-path", db, env={"SESSIONORM_MODELS": "mine:MODELS"}, cwd=tmp_path)
    assert done.returncode == 1 and "add column threads.priority" in done.stdout, done.stderr
    assert sessionorm("diff", "--db-path", db, cwd=tmp_path).returncode == 0  # ours: in sync
    done = sessionorm("verify", "--db-path", db, env={"SESSIONORM_MODELS": ""}, cwd=tmp_path)
    assert done.returncode == 2 and "$SESSIONORM_MODELS is set but empty" in done.stderr
