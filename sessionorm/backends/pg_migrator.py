"""PostgreSQL's safety for peewee's `PostgresqlMigrator`: one transaction per migration, under
the migration lock, ending with ANALYZE of what it wrote."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import peewee
from playhouse.migrate import SchemaMigrator

from ..errors import MigrationError
from ..identifiers import q
from ..migration_options import MigrationOptions
from ..models import OWN_TABLES
from .pg_connections import statements_alone

if TYPE_CHECKING:

    class MixinBase(SchemaMigrator):  # the mixins' methods call the migrator class's own
        pass
else:
    MixinBase = object

# pg_advisory_xact_lock's key for sessionorm's migrations (any constant: one per database).
MIGRATION_LOCK = 0x5E55_1011


def lock_database(db: peewee.Database) -> None:
    """PostgreSQL: the migration lock, inside the caller's transaction, until it ends.

    An advisory lock serialises migrators (even on a database without tables yet), and
    SHARE ROW EXCLUSIVE on sessionorm's tables stops their writers while still letting
    readers, pg_dump among them, in. Other programs' tables in the same database are left
    alone (locking them could need privileges sessionorm lacks). Waiting is bounded by the
    transaction's lock_timeout.
    """
    db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    tables = [q(t) for t in db.get_tables() if t in OWN_TABLES]
    if tables:
        db.execute_sql(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")


def analyze_written(db: peewee.Database) -> list[str]:
    """PostgreSQL: ANALYZE the tables this transaction wrote to; return them.

    Fresh tables have no statistics until autovacuum gets round to them, and until then the
    planner guesses; a guess made a query on 1,000,000 migrated sessions quadratic.
    """
    tables = [
        r[0]
        for r in db.execute_sql(
            "SELECT quote_ident(relname) FROM pg_catalog.pg_stat_xact_user_tables"
            " WHERE schemaname = current_schema() AND n_tup_ins + n_tup_upd + n_tup_del > 0"
            " ORDER BY relname"
        )
    ]
    if tables:
        db.execute_sql(f"ANALYZE {', '.join(tables)}")
    return tables


class PostgresSafety(MixinBase):
    """Mixin for peewee's `PostgresqlMigrator` (or a subclass, e.g. CockroachDB's): one
    transaction per migration, taken with the migration lock, ending with ANALYZE of what it
    wrote. Without transactional DDL (CockroachDB) or with `atomic=False`, peewee's own
    behaviour: no transaction, so no lock either."""

    def __init__(
        self, database: peewee.Database, options: MigrationOptions | None = None, **kwargs: Any
    ) -> None:
        super().__init__(database, **kwargs)
        self.options = options or MigrationOptions()

    @contextlib.contextmanager
    def migration_context(self, atomic: bool = True) -> Iterator[None]:
        db = self.database
        rehearsal = self.options.rehearsal  # the dry run holds the transaction and the lock
        if db.in_transaction() and not rehearsal:
            raise MigrationError("refusing to migrate inside an open transaction")
        if not (atomic and self.transactional_ddl):
            with contextlib.nullcontext() if db.in_transaction() else statements_alone(db):
                yield
            return
        with db.atomic():  # PostgreSQL's write transaction (`Backend.write`)
            if not rehearsal:
                lock_database(db)
            yield
            analyze_written(db)
