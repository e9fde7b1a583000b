"""One backend per engine (see `base.Backend`): `backend_for(target)` before a database is
open, `backend_of(db)` once it is, `opened(target)` for a block."""

from __future__ import annotations

from .base import Backend
from .choice import backend_for, backend_of
from .opening import opened
from .postgresql import PostgresBackend
from .sqlite import SqliteBackend

__all__ = ["Backend", "PostgresBackend", "SqliteBackend", "backend_for", "backend_of", "opened"]
