"""No password in a URL is ever printed, however the URL fails to parse: unescaped `#`, `?`, `/`,
`@` or `%` in it, through every command, `--verbose`, `$SESSIONORM_DB_URL` and `SessionStore`."""

from __future__ import annotations

import os
import urllib.parse

import pytest
from cli_support import invoke
from test_cli_contract import sessionorm

from sessionorm import SessionormError, SessionStore
from sessionorm.database import redact

PASSWORDS = ["se#cret99", "p?ss-w0rd", "p/ss-w0rd", "p@ss-w0rd", "p%ss-w0rd", "a#b?c/d@e%f"]
COMMANDS = [["status"], ["verify"], ["diff"], ["migrate", "--dry-run"], ["backup"], ["backfill"]]


def server() -> str:
    """The test server if there is one (commands then get as far as they can), else a port
    where nothing listens (they fail connecting)."""
    return os.environ.get("SESSIONORM_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:9/postgres"


def with_password(password: str) -> str:
    parts = urllib.parse.urlsplit(server())
    user = parts.username or "postgres"
    return f"{parts.scheme}://{user}:{password}@{parts.hostname}:{parts.port or 5432}{parts.path}"


def leaked(text: str, password: str) -> bool:
    return password in text or urllib.parse.unquote(password) in text


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_command_prints_the_password(password, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # backups land here
    url = with_password(password)
    for command in COMMANDS:
        for verbose in ([], ["--verbose"]):
            done = invoke(*command, *verbose, "--db-url", url)
            text = done.output + (done.stderr or "")
            assert not leaked(text, password), (command, verbose, text)
            if done.exit_code == 2:
                assert len((done.stderr or "").splitlines()) == 1 or verbose, (command, text)


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_environment_variable_and_the_store_never_show_it(password, tmp_path):
    url = with_password(password)
    done = sessionorm("status", env={"SESSIONORM_DB_URL": url}, cwd=tmp_path)
    assert not leaked(done.stdout + done.stderr, password), done.stderr
    try:
        with SessionStore(url=url) as store:
            assert not leaked(repr(store), password)
    except SessionormError as exc:
        assert not leaked(str(exc), password), str(exc)


def test_a_url_that_does_not_parse_is_one_bad_url_line():
    for url in ("postgresql://u:p@[::1@host/db", "postgresql://pwuser:se#cret99@127.0.0.1/postgres"):
        done = invoke("status", "--db-url", url)
        assert done.exit_code == 2
        assert done.stderr.startswith(f"error: bad database URL '{redact(url)}'"), done.stderr
        assert "cret99" not in done.stderr and "p@[" not in done.stderr
