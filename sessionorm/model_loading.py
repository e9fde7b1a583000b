"""Which models a command or a store uses: sessionorm's own, or yours (`--models`,
`$SESSIONORM_MODELS`, `SessionStore(models=...)`), and among them the store's three."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import cast

import peewee
from playhouse.migrations import MigrationError as PeeweeMigrationError
from playhouse.migrations import _resolve_models  # playhouse's own loader for `pwmigrate diff`

from .errors import MigrationError, ValidationError
from .models import MODELS, Session, Thread, ThreadMessage


def load_models(spec: str | None) -> list:
    """`module:ATTR` or `module` (its models) on the current folder's path; default:
    `$SESSIONORM_MODELS`, else ours (a variable set but empty is refused)."""
    if spec is None:
        spec = os.environ.get("SESSIONORM_MODELS")
        if spec is not None and not spec.strip():
            raise ValidationError("$SESSIONORM_MODELS is set but empty: set it to MODULE[:ATTR], or unset it")
    if not spec:
        return list(MODELS)
    try:
        models, _ = _resolve_models(spec)
    except (PeeweeMigrationError, ImportError) as exc:
        raise MigrationError(f"cannot load models {spec!r}: {exc}") from None
    return models


def store_models(
    models: Iterable[type[peewee.Model]] | str | None,
) -> tuple[type[Session], type[Thread], type[ThreadMessage]]:
    """The session, thread and message models a store reads and writes: among `models` (a
    list, or `MODULE[:ATTR]`; None: `$SESSIONORM_MODELS`, else ours), the one for each table,
    which must be sessionorm's model or a subclass of it (the README's `PriorityThread`)."""
    chosen = load_models(models) if models is None or isinstance(models, str) else list(models)
    found = []
    for base in (Session, Thread, ThreadMessage):
        table = base._meta.table_name
        matches = [m for m in chosen if isinstance(m, type) and issubclass(m, peewee.Model)]
        matches = [m for m in matches if m._meta.table_name == table]
        if len(matches) > 1:
            names = ", ".join(m.__name__ for m in matches)
            raise ValidationError(f"models name {table} more than once: {names}")
        model = matches[0] if matches else base
        if not issubclass(model, base):
            raise ValidationError(
                f"{model.__name__} (table {base._meta.table_name}) must subclass sessionorm's {base.__name__}"
            )
        found.append(model)
    return cast(type[Session], found[0]), cast(type[Thread], found[1]), cast(type[ThreadMessage], found[2])
