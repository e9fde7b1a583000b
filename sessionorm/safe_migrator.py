"""Schema migrators made safe: peewee's own class for the database, with its backend's safety
mixed in front (see docs/architecture.md, Safety rules)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from .backends import backend_of
from .migration_options import MigrationOptions


def make_migrator(db: peewee.Database, options: MigrationOptions | None = None) -> SchemaMigrator:
    """The migrator peewee picks for `db` (`SchemaMigrator.from_database`), made safe.

    The safety is mixed in front of peewee's own class, so a subclass keeps its settings
    (CockroachDB: no transactional DDL, explicit foreign keys, `DROP INDEX … CASCADE`).
    """
    base = type(SchemaMigrator.from_database(db))
    safety = backend_of(db).safety_mixin
    if (safety, base) not in SAFE_CLASSES:  # one class per pair: e.g. SafeCockroachDBMigrator
        SAFE_CLASSES[safety, base] = type(f"Safe{base.__name__}", (safety, base), {})
    return SAFE_CLASSES[safety, base](db, options)


SAFE_CLASSES: dict[tuple[type, type], type] = {}
