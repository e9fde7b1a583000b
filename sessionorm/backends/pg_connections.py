"""PostgreSQL connections that work directly and behind pgbouncer in transaction pooling.

A pooler hands each transaction to whichever server connection is free, so nothing may live
in the session: no startup `options` (pgbouncer refuses them), no session-level `SET`, no
server-side prepared statements. Timeouts are set with `SET LOCAL`, which ends with the
transaction: at every `BEGIN`, and in front of every statement run outside a transaction.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import peewee
from playhouse.db_url import connect as connect_url

from ..database import DEFAULT_BUSY_TIMEOUT, bad_url, redact, scrub
from ..errors import DatabaseOpenError

if TYPE_CHECKING:  # the mixin's methods call the database class's own
    MixinBase = peewee.PostgresqlDatabase
else:
    MixinBase = object

CONNECT_TIMEOUT = 10  # seconds; `?connect_timeout=N` in the URL overrides it
IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open on the connection


@functools.cache
def set_local_cursor_class() -> type:
    """A psycopg `ClientCursor` that runs each statement after the `SET LOCAL`s, in one query.

    A query string of several statements is one implicit transaction on the server, so the
    settings hold for exactly that statement and cost no extra round trip. Client-side
    binding is what allows parameters in a multi-statement query.
    """
    import psycopg

    class SetLocalCursor(psycopg.ClientCursor):
        prefix = ""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            super().execute(self.prefix + query, params, **kwargs)
            self.nextset()  # the statement's own result, after the SETs'
            return self

    return SetLocalCursor


class TransactionTimeouts(MixinBase):
    """Mixin for peewee's PostgreSQL databases: timeouts by `SET LOCAL`, per transaction."""

    lock_timeout_ms = 5000
    as_written = False  # see `statements_as_written`
    _isolation_level: Any  # peewee's PostgresqlDatabase sets both
    _adapter: Any

    @contextlib.contextmanager
    def statements_as_written(self) -> Iterator[None]:
        """Send the block's statements alone, without the `SET LOCAL` in front.

        A query string of several statements is a transaction block, which some statements
        refuse (`CREATE INDEX CONCURRENTLY`, `VACUUM`): a migration that asks for no
        transaction (`atomic = False`) runs this way, and waits as long as the server's
        own `lock_timeout` says.
        """
        self.as_written = True
        try:
            yield
        finally:
            self.as_written = False

    def set_local_sql(self) -> str:
        """What every transaction runs first (`lock_timeout`: how long to wait for a lock)."""
        return f"SET LOCAL lock_timeout = {int(self.lock_timeout_ms)}"

    def begin(self, isolation_level: Any = None) -> None:
        level = self._isolation_level if isolation_level is None else isolation_level
        stmt = "BEGIN"
        if level:
            stmt += f" TRANSACTION ISOLATION LEVEL {self._adapter.isolation_level_str(level)}"
        with peewee.__exception_wrapper__:  # type: ignore[attr-defined]
            # peewee's begin() sends BEGIN alone; the SET LOCALs ride in the same round trip.
            super().cursor().execute(f"{stmt}; {self.set_local_sql()}")

    def cursor(self, named_cursor: Any = None) -> Any:
        cursor = super().cursor(named_cursor)
        # The server's view, not peewee's stack: peewee pops it before sending COMMIT/ROLLBACK.
        if named_cursor or self.as_written or cursor.connection.info.transaction_status != IDLE:
            return cursor
        wrapped = set_local_cursor_class()(cursor.connection)
        wrapped.prefix = self.set_local_sql() + "; "
        return wrapped


def statements_alone(db: peewee.Database) -> contextlib.AbstractContextManager:
    """`db.statements_as_written()` where `db` prefixes `SET LOCAL`s (a plain database sends
    statements alone already): for those PostgreSQL refuses in a transaction block."""
    return db.statements_as_written() if isinstance(db, TransactionTimeouts) else contextlib.nullcontext()


@functools.cache
def with_timeouts(cls: Any) -> Any:
    """`cls` (a peewee PostgreSQL database class) with `TransactionTimeouts` mixed in."""
    return type(f"{cls.__name__}WithTimeouts", (TransactionTimeouts, cls), {})


def open_postgres(db: peewee.PostgresqlDatabase, busy_timeout: float) -> peewee.PostgresqlDatabase:
    """`db` (from `playhouse.db_url`, not connected) made safe behind a transaction pooler.

    `busy_timeout` becomes each transaction's `lock_timeout`; the URL may override the
    connect timeout (`connect_timeout`, seconds) and `prepare_threshold` (default: never
    prepare, as a pooler may run the next statement on a server that lacks the statement).
    """
    params = dict(db.connect_params)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params.setdefault("prepare_threshold", None)
    # Same class and arguments as playhouse.db_url chose, with the mixin in front.
    timed = with_timeouts(type(db))(db.database, **params)  # type: ignore[arg-type]
    timed.lock_timeout_ms = max(1, round(busy_timeout * 1000))  # 0 would mean "wait for ever"
    return timed


# Whole-table checks (verify, the migration's plan) join every row of one table with every
# row of another. Without statistics (a table loaded and never analyzed) the planner takes
# `idx = 0 AND role = 'system'` for a handful of rows and walks those indexes once per
# session: quadratic. With nested loops off it hashes each side once, whatever it believes.
# Hash joins only: without statistics the planner otherwise sorts for merge joins or loops.
LINEAR_PLANS = {"enable_nestloop": "off", "enable_mergejoin": "off", "jit": "off", "work_mem": "64MB"}


def set_local(db: peewee.Database, settings: dict[str, str]) -> dict[str, str]:
    """`SET LOCAL` each setting (inside the caller's transaction); return the previous values."""
    names = list(settings)
    old = db.execute_sql("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names).fetchone()
    db.execute_sql(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names)),
        [v for name in names for v in (name, settings[name])],
    )
    return dict(zip(names, old, strict=True))


@contextlib.contextmanager
def linear_plans(db: peewee.Database) -> Iterator[None]:
    """Hash joins, no JIT, for the block's statements (PostgreSQL; elsewhere it does nothing).

    A transaction of its own, or a savepoint of the caller's; the settings are put back after.
    """
    if not isinstance(db, peewee.PostgresqlDatabase):
        yield
        return
    with db.atomic():
        saved = set_local(db, LINEAR_PLANS)
        yield
        set_local(db, saved)


def open_url(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, create: bool = True) -> peewee.Database:
    """A connected server database from a `playhouse.db_url` URL (SQLite files: `open_sqlite`).

    A server database is never created here: it must exist. On PostgreSQL, `busy_timeout`
    becomes each transaction's `lock_timeout` (`TransactionTimeouts`), and connecting
    gives up after `connect_timeout` seconds (10 unless the URL says otherwise).
    """
    try:  # percent-escapes in the user and password are decoded, as libpq does
        db = connect_url(url, unquote_password=True, unquote_user=True)
    except (RuntimeError, ValueError, ImportError) as exc:
        raise DatabaseOpenError(bad_url(url, exc)) from None
    if isinstance(db, peewee.PostgresqlDatabase):
        db = open_postgres(db, busy_timeout)
    try:
        db.connect()
    except peewee.ImproperlyConfigured:
        raise DatabaseOpenError(
            "PostgreSQL needs the psycopg driver: pip install 'sessionorm[postgres]'"
        ) from None
    except (peewee.PeeweeException, ImportError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseOpenError(scrub(f"cannot connect to {redact(url)}: {detail}", url)) from None
    return db
