"""sessionorm: sessions, their threads and ordered messages in SQLite or PostgreSQL,
and a safe upgrade of legacy orchestrator databases to that model.

The store::

    from sessionorm import SessionStore
    with SessionStore("sessions.sqlite") as store:     # or SessionStore(url="postgresql://…")
        session = store.create_session(name="Fix login", amp_prompt="…", repo_root="/src/app")
        thread = store.create_thread(session, "Feature Discussion")
        store.add_thread_message(thread, "user", "Hello!")
        [m.content for m in store.get_thread(thread).messages]

The commands, the same functions the `sessionorm` CLI calls (each takes a path, a URL or
None for the default database, and returns a report instead of printing)::

    from sessionorm import migrate, status, verify, rollback, backup, diff, makemigration, prune
    migrate("sessions.sqlite", backup=True)   # MigrateReport: applied, migrated, backup, …
    verify("sessions.sqlite").ok              # VerifyReport: ok, problems, notes
    copy("sessions.sqlite", "postgresql://…")  # CopyReport: rows and checksums per table
    export_sessions("sessions.sqlite", "all.jsonl")  # ExportReport; import_sessions("all.jsonl", db)

Errors all derive from `SessionormError`: `NotFoundError` (unknown id), `ValidationError`
(bad argument, raised before any SQL), `NeedsMigrationError`, `MigrationError` (and its
`BackupError`), `DatabaseBusyError`, `DatabaseOpenError`, `ImportRefusedError`.
"""

from .commands import (
    backfill,
    backup,
    copy,
    diff,
    export_sessions,
    import_sessions,
    makemigration,
    migrate,
    prune,
    restore,
    restore_threads,
    rollback,
    status,
    verify,
)
from .errors import (
    BackupError,
    DatabaseBusyError,
    DatabaseOpenError,
    ImportRefusedError,
    MigrationError,
    NeedsMigrationError,
    NotFoundError,
    SessionormError,
    ValidationError,
)
from .migration_options import BackfillResult, MigrationOptions
from .models import MigrationRecord, Session, Thread, ThreadMessage
from .store import SessionStore

MigrationResult = BackfillResult  # its name in 0.1.0, kept for scripts written against it

__all__ = [
    "BackfillResult",
    "BackupError",
    "DatabaseBusyError",
    "DatabaseOpenError",
    "ImportRefusedError",
    "MigrationError",
    "MigrationOptions",
    "MigrationRecord",
    "NeedsMigrationError",
    "NotFoundError",
    "Session",
    "SessionStore",
    "SessionormError",
    "Thread",
    "ThreadMessage",
    "ValidationError",
    "backfill",
    "backup",
    "copy",
    "diff",
    "export_sessions",
    "import_sessions",
    "makemigration",
    "migrate",
    "prune",
    "restore",
    "restore_threads",
    "rollback",
    "status",
    "verify",
]
