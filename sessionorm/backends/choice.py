"""Which backend: chosen once, from the target before opening or the database after."""

from __future__ import annotations

from typing import TYPE_CHECKING

import peewee

from .base import Backend
from .postgresql import PostgresBackend
from .sqlite import SqliteBackend

if TYPE_CHECKING:
    from ..target import Target


def backend_for(target: Target) -> type[Backend]:
    """The backend class of the database `target` names (a server URL or a SQLite file)."""
    return PostgresBackend if target.url is not None else SqliteBackend


def backend_of(db: peewee.Database) -> Backend:
    """The backend of an open peewee database (SQLite or PostgreSQL)."""
    if isinstance(db, peewee.SqliteDatabase):
        return SqliteBackend(db)
    if isinstance(db, peewee.PostgresqlDatabase):
        return PostgresBackend(db)
    raise TypeError(f"sessionorm supports SQLite and PostgreSQL, not {type(db).__name__}")
