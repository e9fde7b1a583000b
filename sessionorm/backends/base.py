"""What sessionorm needs of a database engine: one `Backend` per open database.

A backend is chosen once (`backend_for(target)` before opening, `backend_of(db)` after) and
owns everything that differs between SQLite and PostgreSQL: opening, the read-only snapshot,
**the** write transaction (the one helper for the store and the migrator), the append lock,
the catalog, integrity checks, backups, where a dry run rehearses, the migrator's safety
mixin, progress of long statements, and its SQL variants. Nothing outside `backends/` asks
which engine it runs on; it asks the backend.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import peewee

from ..sql_log import log_statement
from .catalog import Catalog, Table
from .search import MessageSearch

if TYPE_CHECKING:
    from ..target import Target

Progress = Callable[[str], None] | None  # receives one-line progress messages


@dataclass
class Restored:
    """What `Backend.restore` did: where the replaced database was kept (a file, or a server
    database's name; None when there was none) and the restored tables' row counts."""

    kept: str | None
    tables: dict[str, int]


class Backend:
    """One open database, and the engine-wide answers of its class."""

    nul_in_text: ClassVar[bool] = True  # whether text columns can hold "\x00"
    cli_option: ClassVar[str] = "--db-url"  # how the CLI names a database of this kind
    # Whether the planner turns NOT EXISTS over a join into a hash anti-join (linear); else
    # nested EXISTS, which walks indexes, is the linear form.
    hash_anti_joins: ClassVar[bool] = False
    # whether `copy_out` sends rows as binary COPY bytes that a copy can hash (`row_digests`)
    copy_digests: ClassVar[bool] = False
    # appended to a text column in ORDER BY: byte order, as SQLite's BINARY collation sorts
    byte_order: ClassVar[str] = ""
    backup_checked: ClassVar[str] = ""  # how `backup` checks its copy, in words
    catalog_class: ClassVar[type[Catalog]] = Catalog
    safety_mixin: ClassVar[type] = object  # mixed in front of peewee's migrator (`safe_migrator`)
    # What a copy from the other engine declares for each kind of value, and writes for booleans.
    copy_types: ClassVar[dict[str, str]] = {}
    copy_booleans: ClassVar[dict[bool, str]] = {False: "0", True: "1"}

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.param: str = db.param
        self.catalog = self.catalog_class(db)

    # -- a database not yet open (the class's answers) -------------------------------------

    @classmethod
    def open(
        cls, target: Target, *, readonly: bool = False, create: bool = False, keep_journal_mode: bool = False
    ) -> peewee.Database:
        """The connected database `target` names (see `opening.opened`)."""
        raise NotImplementedError

    @classmethod
    def exists(cls, target: Target) -> bool:
        """Whether the database exists yet (a server database always does)."""
        return True

    @classmethod
    def check_writable(cls, target: Target) -> None:
        """Refuse, before anything opens it, a database sessionorm must not write."""

    @classmethod
    def needs_read_only_check(cls, target: Target) -> bool:
        """Whether a read-write open could change the database before the store decides to
        refuse it (then the store checks it read-only first)."""
        return False

    @classmethod
    def damage(cls, target: Target) -> list[str]:
        """What the engine's own check says of a database too damaged to open (one line each)."""
        return []

    @classmethod
    def backup(
        cls,
        target: Target,
        dest: str | os.PathLike | None = None,
        progress: Progress = None,
        locked: peewee.Database | None = None,
    ) -> Path:
        """A checked copy of `target`; `locked`: an open connection whose transaction holds
        the migration's write lock (the backup then shows the state the migration starts from)."""
        raise NotImplementedError

    @classmethod
    def restore(cls, target: Target, backup: Path, progress: Progress = None) -> Restored:
        """Replace the database with a checked `backup` (one `backup` made) atomically, keeping
        the replaced one; refused while another process writes (SQLite) or is connected
        (PostgreSQL)."""
        raise NotImplementedError

    @classmethod
    def rehearsal(cls, target: Target, created: bool) -> contextlib.AbstractContextManager:
        """Where a dry run's migrations run: a database like `target` whose changes are thrown
        away afterwards (`created`: the target does not exist yet)."""
        raise NotImplementedError

    # -- SQL -------------------------------------------------------------------------------

    def sql(self, template: str) -> str:
        """`template` with each `{p}` made this database's parameter marker."""
        return template.format(p=self.param)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement; return its cursor."""
        return self.db.execute_sql(sql, tuple(params))

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        log_statement(f"{sql} -- {len(rows)} rows")  # peewee does not log executemany
        self.db.cursor().executemany(sql, rows)

    def streaming(self, sql: str, params: Iterable[Any] = ()) -> contextlib.AbstractContextManager:
        """A cursor over the rows of `sql` that fetches them as they are read, its `description`
        naming the columns: memory stays flat whatever the result's size. Inside a transaction
        (`snapshot`); several may be open at once."""
        raise NotImplementedError

    # -- transactions and locks ------------------------------------------------------------

    def snapshot(self, busy_timeout: float) -> contextlib.AbstractContextManager:
        """One read-only transaction: every read in the block sees the same committed state."""
        raise NotImplementedError

    def write(self) -> contextlib.AbstractContextManager:
        """One write transaction (a savepoint inside one the caller holds): all or nothing."""
        return self.db.atomic()

    def stable_write(self) -> contextlib.AbstractContextManager:
        """A write transaction in which every read sees one state: no other writer's commit
        shows up in the middle of it (`verify --exercise` counts rows before and after)."""
        return self.write()

    def lock_thread(self, thread_id: str) -> bool:
        """Serialise appenders of one thread until the transaction ends; False: no such thread.

        Inside `write()` SQLite already holds the database's write lock: nothing more to do.
        """
        return True

    def lock_writers(self) -> None:
        """Inside `write()`: keep every other writer of sessionorm's tables out until the
        transaction ends (SQLite's `BEGIN IMMEDIATE` already did)."""

    @property
    def search(self) -> MessageSearch:
        """Full-text search over messages (the index migration 7 makes)."""
        raise NotImplementedError

    def lock_key(self, key: str) -> None:
        """Serialise writers of one named thing (e.g. an agent session made on first write)
        until the transaction ends. Inside `write()` SQLite already holds the write lock."""

    # -- work on the whole database --------------------------------------------------------

    def after_failure(self) -> None:
        """Once the database is closed after an error: remove what the failed command made and
        could not use (SQLite: an empty -wal, a broken -shm)."""

    def integrity_problems(self) -> list[str]:
        """What the engine's own checks find wrong (pages, indexes, foreign keys)."""
        return []

    def storage_bytes(self) -> int:
        """The bytes the database takes where it is stored (a file and its -wal; a server's
        `pg_database_size`)."""
        raise NotImplementedError

    def reclaim_space(self, tables: list[str]) -> None:
        """Outside any transaction: give back the room deleted rows left (`prune --vacuum`)."""
        raise NotImplementedError

    def linear_plans(self) -> contextlib.AbstractContextManager:
        """Plans that stay linear in the block's whole-table checks, statistics or not."""
        return contextlib.nullcontext()

    def bulk_pragmas(self) -> contextlib.AbstractContextManager:
        """Settings for a one-off bulk step, put back afterwards."""
        return contextlib.nullcontext()

    def reporting(
        self, report: Callable[[float], None] | None, every: float = 1.0
    ) -> contextlib.AbstractContextManager:
        """Call `report(elapsed_seconds)` about every `every` seconds while the database works
        (where the engine can say; elsewhere never)."""
        return contextlib.nullcontext()

    # -- bulk copy (`sessionorm copy`) -----------------------------------------------------

    @classmethod
    def refuse_copy_target(cls, source: Target, target: Target) -> None:
        """Refuse, before the source is read, a copy into `target` that cannot be made."""

    @classmethod
    def copy_into(
        cls, src: Any, target: Target, tables: dict[str, Any], report: Any, progress: Progress
    ) -> None:
        """Load the tables of `src` (a copy's `Side`) into `target`, checked, all or nothing."""
        raise NotImplementedError

    def row_hash_sql(self, table: Table) -> str | None:
        """SQL of each row's checksum, computed by the server (None: rows are hashed in Python)."""
        return None

    def unfit_value_tests(self, table: Table, target_types: dict[str, str]) -> list[tuple[str, str]]:
        """(column, SQL condition) for the values of this source that a copy would change
        silently (`target_types`: the target's binary types; empty for a SQLite target)."""
        return []

    def copy_out(
        self, select: str, table: Table, extra_types: list[str], digest: Any = None
    ) -> Iterator[list[tuple]]:
        """The rows of `select` (`table`'s columns, then values of `extra_types`), in batches;
        each row's bytes added to `digest` (a `RowDigest`) where `copy_digests`."""
        raise NotImplementedError

    # -- values ----------------------------------------------------------------------------

    def session_value(self, data_type: str, value: Any) -> Any:
        """`value` as a column of `data_type` takes it (SQLite's affinity takes anything)."""
        return value
