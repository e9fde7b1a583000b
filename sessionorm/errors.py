"""Typed errors: every failure a caller can act on has its own class."""


class SessionormError(Exception):
    """Base class of every error sessionorm raises on purpose."""


class NotFoundError(SessionormError, LookupError):
    """No session or thread has the given id."""


class ValidationError(SessionormError, ValueError):
    """An argument was refused before any SQL ran."""


class MigrationError(SessionormError):
    """A migration, rollback or verification could not be carried out."""


class BackupError(MigrationError):
    """A backup could not be written or failed its checks; `details` lists every problem."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class NeedsMigrationError(SessionormError):
    """The database holds data and has migrations pending."""


class DatabaseBusyError(SessionormError):
    """Another connection held the write lock for longer than the busy timeout."""


class DatabaseOpenError(SessionormError):
    """The path is missing, not a database, or cannot be opened as asked."""


class DatabaseDamagedError(DatabaseOpenError):
    """SQLite found the file itself damaged (SQLITE_CORRUPT): `verify` says what is wrong."""

    reason: str = ""  # the damage in words, for `verify`'s own report


class ImportRefusedError(SessionormError):
    """`import` refused its file (not an export, damaged, conflicting rows): nothing was written."""
