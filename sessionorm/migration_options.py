"""What the runner tells a migration script, and what a script may offer the runner."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MigrationOptions:
    """Passed to a script's `up`, `down`, `up_with` and `check_down` when they take it.

    `force`: a rollback may destroy rows the migration did not create.
    `rehearsal`: a dry run; the caller holds the transaction (and PostgreSQL's migration
    lock) and rolls it back afterwards, so each migration runs in a savepoint of it.
    """

    force: bool = False
    rehearsal: bool = False


@dataclass(frozen=True)
class BackfillResult:
    """What a data step did: threads created now, and sessions that already had theirs."""

    migrated: int
    skipped: int

    @classmethod
    def total(cls, results: list[dict[str, int]]) -> BackfillResult | None:
        """The sum of scripts' data-step results (`{"migrated": n, "skipped": m}`); None if none ran."""
        steps = [r for r in results if isinstance(r, dict) and "migrated" in r]
        if not steps:
            return None
        return cls(sum(r["migrated"] for r in steps), sum(r.get("skipped", 0) for r in steps))


def call_script(function: Callable[..., Any], *args: Any, options: MigrationOptions) -> Any:
    """Call a script's function, adding `options` when it takes one more positional argument.

    peewee's template writes `up(migrator, database)`; sessionorm's scripts take
    `up(migrator, database, options)`. Both kinds run.
    """
    parameters = [
        p
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    takes_more = len(parameters) > len(args) or any(
        p.kind is p.VAR_POSITIONAL for p in inspect.signature(function).parameters.values()
    )
    return function(*args, options) if takes_more else function(*args)
