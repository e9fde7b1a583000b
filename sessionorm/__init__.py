"""sessionorm: sessions, their threads and ordered messages in SQLite or PostgreSQL,
and a safe upgrade of legacy orchestrator databases to that model."""
from .errors import (
    DatabaseBusyError,
    DatabaseOpenError,
    MigrationError,
    NeedsMigrationError,
    NotFoundError,
    SessionormError,
    ValidationError,
)
from .models import MigrationRecord, Session, Thread, ThreadMessage
from .store import SessionStore
from .thread_migration import MigrationResult

__all__ = [
    "DatabaseBusyError", "DatabaseOpenError", "MigrationError", "MigrationRecord",
    "MigrationResult", "NeedsMigrationError", "NotFoundError", "Session", "SessionStore",
    "SessionormError", "Thread", "ThreadMessage", "ValidationError",
]
