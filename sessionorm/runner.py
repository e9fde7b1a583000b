"""peewee's migration runner, recording history in the orchestrator's `migrations` table."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import peewee
from playhouse.migrations import Migration, Runner
from playhouse.migrations import MigrationError as PeeweeMigrationError

from .database import first_line, is_busy
from .errors import MigrationError, SessionormError
from .foreign_tables import refuse_foreign_shape, refuse_foreign_tables
from .migration_options import BackfillResult, MigrationOptions, call_script
from .models import MODELS, MigrationChecksum, MigrationRecord, Session
from .safe_migrator import make_migrator
from .target import Target
from .values import now_timestamp, parse_timestamp

BeforeFirst = Callable[[list[str]], None] | None  # called with the lock held, before any write


def migrations_dir() -> Path:
    """The shipped migration scripts: `sessionorm.migrations` when installed."""
    installed = importlib.util.find_spec(f"{__package__}.migrations")  # setup.cfg maps it there
    if installed is not None and installed.origin:
        return Path(installed.origin).parent
    return Path(__file__).resolve().parent.parent / "migrations"  # a source checkout


def own_dirs(target: Target | None) -> list[str]:
    """The folder of a project's own migration scripts (`--migrations-dir`), if `target` names one."""
    return [str(target.migrations_dir)] if target is not None and target.migrations_dir else []


def runner_for(
    target: Target | None,
    db: peewee.Database,
    options: MigrationOptions | None = None,
    *,
    own_scripts: bool = True,
) -> MigrationRunner:
    """The runner a command uses on `db`, the open database of `target`: the shipped scripts,
    then the project's own folder that `target` carries (`--migrations-dir`).

    The one place commands build a runner, so that no command forgets the project's scripts.
    `own_scripts=False`: the shipped scripts alone (`makemigration` asks about those).
    """
    return MigrationRunner(db, extra_dirs=own_dirs(target) if own_scripts else (), options=options)


def record_name(migration: Migration) -> str:
    """The name stored in `migrations`: `0001_session_thread_relationship` → `session-thread-relationship`."""
    return migration.name.split("_", 1)[-1].replace("_", "-")


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextlib.contextmanager
def script_failures(what: str) -> Iterator[None]:
    """A migration script's own exception as `MigrationError("<what>: <error>")`.

    sessionorm's errors pass as they are, and so do busy errors: the caller's
    `translate_errors` makes those the usual busy message.
    """
    try:
        yield
    except SessionormError:
        raise
    except Exception as exc:
        if is_busy(exc):
            raise
        raise MigrationError(f"{what}: {type(exc).__name__}: {first_line(exc)}") from exc


def together(steps: list[tuple[str, Any]], n: int) -> list[tuple[str, Any]]:
    """The longest run of pending steps from `n` that a later one applies at once: a script
    whose `TOGETHER_FROM` names step `n` (`up_together(steps, …)`), or, for a pair, whose
    `FOLLOWS` does (`up_with(previous, …)`). Empty when none does."""
    name = steps[n][0]
    for end in range(len(steps) - 1, n, -1):
        module = steps[end][1]
        chain = steps[n : end + 1]
        if not all(getattr(m, "atomic", True) for _, m in chain):
            continue
        if getattr(module, "TOGETHER_FROM", None) == name or (
            end == n + 1 and getattr(module, "FOLLOWS", None) == name
        ):
            return chain
    return []


class MigrationRunner(Runner):
    """`playhouse.migrations.Runner` with the orchestrator's history table and a safe migrator.

    The TypeScript tool recorded `(version, name, applied_at)` rather than peewee's
    `(name, applied)`, so history is keyed by the script's number.

    A script defines `up(migrator, db[, options])` and `down(…)` (peewee's template, plus the
    `MigrationOptions`); what `up` returns is kept in `results`. It may also offer:
    `check_down(db, options)` (refuse a rollback early, before the backup), `backfill(db)`
    (a data step that may run again: `sessionorm backfill`), `SUPERSEDES` (scripts whose
    `backfill` this one's replaces), `ADOPTS` (tables it creates or
    adopts, refused beforehand when their shape is not the models'), `FOLLOWS` with
    `up_with(previous, migrator, db, options)` or `TOGETHER_FROM` with
    `up_together(steps, migrator, db, options)` (see `_together`) and `PREVIOUS_SHA256`
    (digests of earlier copies with the same effect, accepted by `verify`).
    """

    def __init__(
        self,
        database: peewee.Database,
        directory: str | os.PathLike | None = None,
        extra_dirs: Iterable[str | os.PathLike] = (),
        options: MigrationOptions | None = None,
    ):
        super().__init__(database, str(directory or migrations_dir()))
        self.extra_dirs = [str(d) for d in extra_dirs if str(d) != self.directory]
        self.options = options or MigrationOptions()
        self.migrator = make_migrator(database, self.options)
        self.results: dict[str, Any] = {}  # what each applied script's `up` returned

        class History(MigrationRecord):
            class Meta:
                table_name = "migrations"

        class Checksum(MigrationChecksum):
            class Meta:
                table_name = "migration_checksums"

        History._meta.set_database(database)
        Checksum._meta.set_database(database)
        # Any: peewee's annotations do not describe what `select().tuples()` yields
        self.History: Any = History
        self.Checksum: Any = Checksum

    def migrations(self) -> list[Migration]:
        """The shipped scripts plus those of `extra_dirs` (a project's own), by number."""
        found = Migration.load_directory(self.directory)
        for directory in self.extra_dirs:
            found += Migration.load_directory(directory)
        seen: dict[int, Migration] = {}
        for migration in found:
            if migration.idx in seen:
                raise MigrationError(
                    f"two migration scripts are numbered {migration.idx}: "
                    f"{seen[migration.idx].path} and {migration.path}"
                )
            seen[migration.idx] = migration
        return sorted(found)

    def checksums(self) -> dict[int, str]:
        """sha256 of each applied script as it was when applied (absent for older rows)."""
        if not self.Checksum.table_exists():
            return {}
        refuse_foreign_tables(self.database, [self.Checksum])
        return dict(self.Checksum.select().tuples())

    def applied(self) -> dict[str, dt.datetime | str]:
        """When each recorded migration ran: a datetime, or the text another tool stored."""
        if not self.History.table_exists():
            return {}
        refuse_foreign_tables(self.database, [self.History])
        by_version = {m.idx: m for m in self.migrations()}
        accum: dict[str, dt.datetime | str] = {}
        for version, name, applied_at in self.History.select().tuples():
            known = by_version.get(version)
            key = known.name if known else f"{version:04d}_{name}"
            accum[key] = parse_timestamp(applied_at) or ""
        return accum

    def accepted_sha256(self, migration: Migration) -> set[str]:
        """The script's sha256 now, and those of its earlier copies with the same effect."""
        return {file_sha256(migration.path), *getattr(migration.load(), "PREVIOUS_SHA256", ())}

    def pending(self) -> list[Migration]:
        """Scripts not yet recorded as applied, in order."""
        return [m for m in self.status() if not m.applied and m.path is not None]

    def adopter(self, table: str) -> Migration | None:
        """The first script whose `ADOPTS` names `table` (the one that makes it), if any.

        Commands ask this instead of knowing a migration by its number.
        """
        for migration in self.migrations():
            if table in getattr(migration.load(), "ADOPTS", ()):
                return migration
        return None

    def is_recorded(self, migration: Migration | None) -> bool:
        """Whether `migration` has its row in the history table (None: no such script)."""
        if migration is None or not self.History.table_exists():
            return False
        return bool(self.History.select().where(self.History.version == migration.idx).exists())

    def refuse_foreign_tables(self, modules: Iterable[Any]) -> None:
        """Refuse tables of another program that the scripts `modules` would adopt.

        Tables a script `ADOPTS` that exist in another shape than the models' are named
        with every difference first; then any table that is not the orchestrator's at all.
        """
        adopted = {table for module in modules for table in getattr(module, "ADOPTS", ())}
        models = [m for m in MODELS if m._meta.table_name in adopted]
        refuse_foreign_shape(self.database, models)
        refuse_foreign_tables(self.database, [self.History, self.Checksum, Session, *models])

    def check_down(self) -> None:
        """Let the latest applied script refuse its rollback (`check_down`), writing nothing."""
        applied = [m for m in self.status() if m.applied]
        if not applied or applied[-1].path is None:
            return  # nothing to roll back, or `down` names the missing file
        latest = applied[-1]
        check = getattr(latest.load(), "check_down", None)
        if check is not None:
            with script_failures(f"migration {latest.name}'s check before rolling back failed"):
                call_script(check, self.database, options=self.options)

    def backfill(self) -> BackfillResult:
        """Run the data step of every applied script that offers `backfill`, in the caller's
        transaction, after refusing tables of another shape."""
        modules = [m.load() for m in self.status() if m.applied and m.path is not None]
        superseded = {name for m in modules for name in getattr(m, "SUPERSEDES", ())}
        modules = [m for m in modules if hasattr(m, "backfill") and Path(m.__file__).stem not in superseded]
        self.refuse_foreign_tables(modules)
        results = []
        for module in modules:
            name = Path(module.__file__).stem
            with script_failures(f"the data step of {name} failed, nothing of it was kept"):
                results.append(module.backfill(self.database))
        return BackfillResult.total(results) or BackfillResult(0, 0)

    def up(self, target: str | None = None, fake: bool = False, before: BeforeFirst = None) -> list[str]:
        """Apply the pending migrations in one transaction; return their names.

        The write lock is taken first and only then is what is pending decided, so a second
        process waits, finds the work done and applies nothing. `before(names)` runs once,
        with the lock held and nothing written yet (e.g. to take a backup).
        """
        return self._steps(lambda done: self._plan_up(target), "up", fake, before)

    def down(self, target: str | None = None, before: BeforeFirst = None) -> list[str]:
        """Revert the latest migration (or every one back through `target`), lock first."""

        def plan(done: list[str]) -> list[tuple[str, Any]]:
            if (target is None and done) or target in done:
                return []
            return self._plan_down(target)

        return self._steps(plan, "down", False, before)

    def _steps(
        self,
        plan: Callable[[list[str]], list[tuple[str, Any]]],
        direction: str,
        fake: bool,
        before: BeforeFirst,
    ) -> list[str]:
        """Run the plan in one transaction, decided under its write lock: all or nothing.

        A script that asks for `atomic = False` runs on its own, outside any transaction
        (so outside the lock), after the transaction of the steps before it has committed.
        """
        done: list[str] = []
        while True:
            with self.migrator.migration_context(True):  # the write lock, then the decision
                steps = self._decide(plan, done, direction, before)
                if not steps:
                    return done
                alone = self._run_atomic(steps, done, direction, fake)
                if alone is None:
                    return done
            name, module = alone
            with self.migrator.migration_context(False):
                self._body(name, module, direction, fake)
            done.append(name)

    def _decide(
        self,
        plan: Callable[[list[str]], list[tuple[str, Any]]],
        done: list[str],
        direction: str,
        before: BeforeFirst,
    ) -> list[tuple[str, Any]]:
        """What is pending, asked under the lock; at the first decision, refuse another
        program's tables and run `before`."""
        try:
            steps = plan(done)
        except PeeweeMigrationError as exc:
            raise MigrationError(str(exc)) from None
        if steps and not done:
            if direction == "up":
                self.refuse_foreign_tables([module for _, module in steps])
            if before is not None:
                before([n for n, _ in steps])
        return steps

    def _run_atomic(
        self, steps: list[tuple[str, Any]], done: list[str], direction: str, fake: bool
    ) -> tuple[str, Any] | None:
        """Run `steps` in the open transaction up to the first that asks for `atomic = False`,
        which is returned (None: all ran); what ran is added to `done`."""
        for n, (name, module) in enumerate(steps):
            if not getattr(module, "atomic", True):
                return name, module
            if name in done:  # applied together with a step before it
                continue
            group = together(steps, n) if direction == "up" and not fake else []
            if group:
                self._together(group)
                done += [step for step, _ in group]
                continue
            self._body(name, module, direction, fake)
            done.append(name)
        return None

    # Planning copied from peewee 4.5.3's Runner.up/down, which plan inline and cannot be
    # called without also running: here each step is planned inside its own write lock.
    def _plan_up(self, target: str | None) -> list[tuple[str, Any]]:
        rows = [m for m in self.status() if m.path is not None]
        if target is not None and target not in {m.name for m in rows}:
            raise PeeweeMigrationError(f'unknown migration "{target}".')
        plan = []
        for migration in rows:
            if not migration.applied:
                module = migration.load()
                if getattr(module, "up", None) is None:
                    raise PeeweeMigrationError(f"{migration.name} does not define up().")
                plan.append((migration.name, module))
            if migration.name == target:
                break
        return plan

    def _plan_down(self, target: str | None) -> list[tuple[str, Any]]:
        rows = [m for m in self.status() if m.applied]
        if target is not None and target not in {m.name for m in rows}:
            raise PeeweeMigrationError(f'"{target}" is not an applied migration.')
        plan = []
        for migration in reversed(rows):
            if migration.path is None:
                raise PeeweeMigrationError(f'cannot revert "{migration.name}": migration file is missing.')
            module = migration.load()
            if getattr(module, "down", None) is None:
                raise PeeweeMigrationError(f"{migration.name} does not define down().")
            plan.append((migration.name, module))
            if target is None or migration.name == target:
                break
        return plan

    def _run(self, name: str, module: Any, direction: str, fake: bool = False) -> Any:
        """peewee's entry point for one migration: its own transaction."""
        with self.migrator.migration_context(getattr(module, "atomic", True)):
            self._body(name, module, direction, fake)

    def _together(self, group: list[tuple[str, Any]]) -> None:
        """Pending scripts applied as one combined step by the last of them (see `together`).

        A script may offer this when applying it with the ones before it can be done more
        cheaply at once: 0002 builds 0001's indexes once, under their final names; 0005 makes
        0001's threads with `T-` ids and 0004's record rows directly. Each script is recorded
        as applied, with its own checksum.
        """
        (first, module), (last, combined) = group[0], group[-1]
        with script_failures(f"migrations {first} to {last} (up) failed, nothing of them was kept"):
            if hasattr(combined, "up_together"):
                results = call_script(
                    combined.up_together, group, self.migrator, self.database, options=self.options
                )
            else:  # FOLLOWS + up_with(previous, …): a pair, the first script's result back
                results = {
                    first: call_script(
                        combined.up_with, module, self.migrator, self.database, options=self.options
                    )
                }
        self.results.update({name: r for name, r in (results or {}).items() if r is not None})
        for name, step in group:
            self._body(name, step, "up", fake=True)

    def _body(self, name: str, module: Any, direction: str, fake: bool = False) -> Any:
        """One migration's work and its history rows, inside the caller's transaction."""
        migration = Migration(int(name.split("_", 1)[0]), name, None, None)
        if direction == "up":
            self.History.create_table(safe=True)
            self.Checksum.create_table(safe=True)
        if not fake:
            with script_failures(f"migration {name} ({direction}) failed, nothing of it was kept"):
                result = call_script(
                    getattr(module, direction), self.migrator, self.database, options=self.options
                )
            if direction == "up" and result is not None:
                self.results[name] = result
        if direction == "up":
            self.History.create(
                version=migration.idx, name=record_name(migration), applied_at=now_timestamp()
            )
            digest = file_sha256(module.__file__)
            # an upsert, not REPLACE: PostgreSQL has no INSERT OR REPLACE
            (
                self.Checksum.insert(version=migration.idx, sha256=digest)
                .on_conflict(conflict_target=[self.Checksum.version], update={self.Checksum.sha256: digest})
                .execute()
            )
        else:
            self.History.delete().where(self.History.version == migration.idx).execute()
            if self.Checksum.table_exists():
                self.Checksum.delete().where(self.Checksum.version == migration.idx).execute()
