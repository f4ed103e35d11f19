"""The migration as the guide does it: the extensions on the target, dump, restore.

Made rigorous: a preflight refuses a target that cannot take the dump before anything is
written; each extension is created in the source's schema before the objects that use it
(the guide's step 1, `CREATE EXTENSION vector`, done where the source has it); the restore
runs in stages so that a target without a superuser (a managed server) is asked separately
for what it may refuse (migrate/staged.py); pg_dump reads one exported snapshot (so the copy
matches the source exactly as of that moment) and the rows the source changed after it are
measured (the cutover gap); each section is timed (schema, data, index build) and bounded by
the phase timeout, including pgcutover's own sessions; the restore sessions get enough
maintenance_work_mem for HNSW; any error fails the migration. Under --allow-destructive a
target that already holds the tables is cleaned first (the guide's DROP TABLE ... CASCADE,
then --clean --if-exists).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgcutover import progress
from pgcutover.catalog import available_extension, user_schemas, user_tables
from pgcutover.checks.drift import measure as measure_drift
from pgcutover.config import Settings
from pgcutover.db import Endpoint
from pgcutover.errors import MigrationError, PgcutoverError
from pgcutover.identity import refuse_same_database
from pgcutover.inventory import Inventory
from pgcutover.migrate import staged, watch, window
from pgcutover.migrate.advice import BuildSettings, build_settings, inventory_graphs, spill_advice
from pgcutover.migrate.archive import exported_snapshot
from pgcutover.migrate.logical import cutover as logical
from pgcutover.migrate.logical import preconditions
from pgcutover.migrate.roles import (
    create_roles,
    database_setting_statement,
    missing_roles,
    referenced_roles,
)
from pgcutover.migrate.tools import bounded, client_version


@dataclass(frozen=True)
class Phase:
    """One timed step of the migration."""

    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class MigrationResult:
    """What the migration did, for the report and the checks."""

    strategy: str
    performed: bool
    ok: bool = True
    phases: list[Phase] = field(default_factory=list)
    error: str | None = None
    remedy: str | None = None
    failed_phase: str | None = None
    snapshot: str | None = None
    client_tools: str = ""
    roles_created: list[str] = field(default_factory=list)
    #: The role the restore ran as and what it may do (migrate/capabilities.py).
    restored_as: dict[str, Any] | None = None
    #: What happened to each of the source's extensions (migrate/extensions.py).
    extensions: list[dict[str, Any]] = field(default_factory=list)
    #: Objects the target refused for lack of privilege (migrate/staged.py).
    refusals: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    #: Per table, rows the source gained, changed or lost after the snapshot (None: not
    #: measured); see checks/drift.py.
    drift: dict[str, dict[str, Any]] | None = None
    #: The cutover window projected to production size (None: not projected); see
    #: migrate/window.py.
    window: dict[str, Any] | None = None
    #: --strategy=logical: lag, initial copy, switchover, rollback proof, clean-up
    #: (migrate/logical/cutover.py).
    logical: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The `migration` block of signoff.json."""
        data = asdict(self)
        data["phases"] = [asdict(phase) for phase in self.phases]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MigrationResult:
        """Inverse of to_json (state shared between xdist workers)."""
        values = dict(data)
        values["phases"] = [Phase(**phase) for phase in data.get("phases", [])]
        return cls(**values)


def not_performed(reason: str) -> MigrationResult:
    """The result when a run verifies an already-migrated target."""
    return MigrationResult(strategy="none", performed=False, notes=[reason])


class _Timer:
    """Records phases into a result, including the one that failed."""

    def __init__(self, result: MigrationResult) -> None:
        self.result = result

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except MigrationError as error:
            self.result.phases.append(
                Phase(name, round(time.monotonic() - started, 3), False, error.problem)
            )
            raise
        except (psycopg.Error, PgcutoverError) as error:
            problem = getattr(error, "problem", str(error))
            self.result.phases.append(
                Phase(name, round(time.monotonic() - started, 3), False, problem)
            )
            raise MigrationError(
                f"phase {name!r} failed: {problem}",
                getattr(error, "remedy", "see the error; rerun once it is fixed"),
                phase=name,
            ) from error
        self.result.phases.append(Phase(name, round(time.monotonic() - started, 3), True))


def _clash(
    src: psycopg.Connection, dst: psycopg.Connection, ignored: tuple[str, ...]
) -> list[tuple[str, str]]:
    return sorted(set(user_tables(src, ignored)) & set(user_tables(dst, ignored)))


def clashing_tables(
    source: Endpoint, target: Endpoint, ignored: tuple[str, ...], timeout: float = 600.0
) -> list[tuple[str, str]]:
    """The source's tables that already exist on the target."""
    with (
        bounded(source, "source", "preflight", timeout) as src,
        bounded(target, "target", "preflight", timeout) as dst,
    ):
        return _clash(src, dst, ignored)


def _check_dimensions(inventory: Inventory, dimensions: int, configured: bool) -> None:
    """Refuse when the app's own vector columns disagree with its VECTOR_DB_DIMENSIONS: the
    app would fail on the first insert or query (the guide's "Vector dimensions mismatch").
    Other vector columns keep their own dimension and are only compared source = target."""
    wrong = [v for v in inventory.app_vectors if v.dimensions not in (None, dimensions)]
    unmatched = configured and inventory.vectors and not inventory.app_vectors
    if not wrong and not unmatched:
        return
    listed = ", ".join(
        f"{v.qualified} is {v.type_name}({v.dimensions})" for v in (wrong or inventory.vectors)[:5]
    )
    raise MigrationError(
        f"the app is configured with VECTOR_DB_DIMENSIONS={dimensions} but {listed} on the "
        "source" + ("" if wrong else " (no vector column has that dimension)"),
        "set VECTOR_DB_DIMENSIONS to the dimension of the app's vector column (all-MiniLM-L6-v2 "
        "gives 384), name the app's columns in [inventory] app_columns, or re-embed the "
        "documents with a model of the configured dimension first",
    )


def preflight(
    source: Endpoint,
    target: Endpoint,
    ignored: tuple[str, ...],
    *,
    clean: bool = False,
    timeout: float = 600.0,
) -> list[str]:
    """Refuse a target that cannot take the dump, before anything is written.

    `clean` accepts a target that already holds the tables (they are dropped first).
    Returns the schemas to migrate.
    """
    with (
        bounded(source, "source", "preflight", timeout) as src,
        bounded(target, "target", "preflight", timeout) as dst,
    ):
        schemas = user_schemas(src, ignored)
        if available_extension(dst, "vector") is None:
            raise MigrationError(
                f"pgvector extension not available on {target.label} "
                "(SELECT * FROM pg_available_extensions WHERE name = 'vector' is empty)",
                "install pgvector on the target server; on managed PostgreSQL pick a version "
                "or plan that offers it, self-hosted: install it from a package or source",
            )
        clash = _clash(src, dst, ignored)
    if clash and not clean:
        names = ", ".join(f"{s}.{t}" for s, t in clash[:5])
        raise MigrationError(
            f"the target {target.label} already holds {len(clash)} of the source's tables "
            f"({names}{', ...' if len(clash) > 5 else ''}): the restore would fail with "
            "'relation already exists'; nothing was written",
            "either migrate into an empty database (create a fresh one), or rerun with "
            "--allow-destructive to drop them first (the guide's DROP TABLE ... CASCADE, then "
            "pg_restore --clean --if-exists; data loss on the target)",
        )
    return schemas


def _drop_tables(conn: psycopg.Connection, tables: list[tuple[str, str]]) -> None:
    """The guide's remedy, generalised: DROP TABLE IF EXISTS ... CASCADE in one transaction."""
    with conn.transaction():
        for schema, table in tables:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, table))
            )


def migrate(
    source: Endpoint,
    target: Endpoint,
    settings: Settings,
    inventory: Inventory,
    *,
    on_phase: Callable[[str], None] | None = None,
    snapshot: str | None = None,
    cutover: logical.Cutover | None = None,
    provider: Endpoint | None = None,
) -> MigrationResult:
    """Run the whole migration as `target`'s role; never raises for migration failures, it
    reports them.

    `inventory` is what the source holds (inventory.discover). `on_phase(name)` is called as
    each dump/restore phase starts (fault injection hooks in there). `snapshot` is a snapshot
    the caller exported and holds open (exported_snapshot) so it can check the target against
    the source as of that snapshot afterwards; without it the migration exports and releases
    its own. A logical migration copies the source as of its switchover instead (`snapshot`
    then only dates its backup); `cutover` adds the writes it stops, the scratch server for
    its rollback proof and its clean-up record. `provider` is a superuser endpoint that stands
    for a managed provider's console: it enables extensions `target`'s role may not create
    (the rehearsal's managed-like target; never a named one).
    """
    result = MigrationResult(strategy=settings.strategy, performed=True)
    timer = _Timer(result)
    timeout = settings.phase_timeout
    workdir = Path(tempfile.mkdtemp(prefix="pgcutover-dump-"))
    try:
        result.client_tools = client_version()
        with timer.phase("preflight"):
            shared = refuse_same_database(source, target).same_server
            _check_dimensions(
                inventory, settings.vector_dimensions, settings.vector_dimensions_configured
            )
            preflight(
                source,
                target,
                settings.ignored_schemas,
                clean=settings.allow_destructive,
                timeout=timeout,
            )
            clash = clashing_tables(source, target, settings.ignored_schemas, timeout)
            if settings.strategy == logical.STRATEGY:
                preconditions.check(source, target, settings)
            stages = staged.prepare(source, target, settings, provider, timeout)
            build = restore_build(target, settings, inventory)
        # every strategy's restore sessions take these from the settings (archive.restore_env)
        settings = replace(
            settings,
            maintenance_work_mem=build.maintenance_work_mem,
            max_parallel_maintenance_workers=build.workers,
        )
        result.notes.append(
            f"index builds ran with maintenance_work_mem={build.maintenance_work_mem} and "
            f"{build.workers} parallel worker(s): {build.reason}"
        )
        result.restored_as = stages.role.to_json()
        result.extensions = [step.to_json() for step in stages.extensions]
        result.notes.append(f"restored as {stages.role.describe()}")
        if clash:
            with timer.phase("clean"), bounded(target, "target", "clean", timeout) as dst:
                _drop_tables(dst, clash)
            result.notes.append(
                f"--allow-destructive: dropped {len(clash)} table(s) the target already held "
                "and restored with --clean --if-exists"
            )
        if settings.scratch:
            result.notes.append(
                "scratch rehearsal on a server pgcutover does not own: no role was created and "
                "the objects were restored without owners and grants (--no-owner "
                "--no-privileges), owned by the role pgcutover connects with"
            )
        elif shared:
            result.notes.append(
                "source and target share a server: roles and their settings are the server's, "
                "so the migration left them as they are"
            )
        else:
            with timer.phase("roles"):
                with bounded(source, "source", "roles", timeout) as src:
                    wanted = referenced_roles(src, settings.ignored_schemas)
                with bounded(target, "target", "roles", timeout) as dst:
                    missing = missing_roles(dst, wanted)
                    result.notes += create_roles(dst, missing)
                result.roles_created = [role.name for role in missing]
        with contextlib.ExitStack() as stack:
            if settings.strategy == logical.STRATEGY:
                with timer.phase("extensions"):
                    result.notes += staged.create_extensions_in_place(target, stages, timeout)
                snapshot = stack.enter_context(
                    logical.replicate(
                        source,
                        target,
                        settings,
                        inventory,
                        timer,
                        result,
                        workdir,
                        cutover=cutover or logical.Cutover(),
                        on_phase=on_phase,
                        snapshot=snapshot,
                        clean=bool(clash),
                    )
                )
            else:
                if snapshot is None:
                    snapshot = stack.enter_context(exported_snapshot(source))
                result.snapshot = snapshot
                refusals, notes = staged.run(
                    source,
                    target,
                    settings,
                    snapshot,
                    workdir,
                    _watched(timer, source, target, inventory),
                    on_phase,
                    stages,
                    clean=bool(clash),
                )
                result.refusals = [refusal.to_json() for refusal in refusals]
                result.notes += notes
            result.advice += spill_advice(target, build.maintenance_work_mem)
            with timer.phase("settings"), bounded(target, "target", "settings", timeout) as dst:
                result.notes += carry_database_settings(dst, inventory)
            with timer.phase("analyze"), bounded(target, "target", "analyze", timeout) as dst:
                dst.execute("ANALYZE")
            result.drift = _measure_drift(source, snapshot, settings, timer, result)
        result.window = _projected_window(settings, result, inventory)
    except MigrationError as error:
        result.ok = False
        result.error = error.problem
        result.remedy = error.remedy
        result.failed_phase = error.phase
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def restore_build(target: Endpoint, settings: Settings, inventory: Inventory) -> BuildSettings:
    """Memory and workers for the restore's index builds, from the source's HNSW graphs
    (the target's builds are the same graphs); see migrate/advice.py."""
    graphs = [item.bytes for item in inventory_graphs(inventory)]
    return build_settings(
        graphs,
        memory=settings.maintenance_work_mem,
        workers=settings.max_parallel_maintenance_workers,
        local=target.ephemeral,
        concurrent=min(settings.jobs, max(len(graphs), 1)),
    )


def _projected_window(
    settings: Settings, result: MigrationResult, inventory: Inventory
) -> dict[str, Any]:
    """The measured phases projected to production size (see migrate/window.py)."""
    size = window.size_of(inventory)
    production, basis = window.production_size(size, settings.project_rows)
    phases = [(phase.name, phase.seconds) for phase in result.phases if phase.ok]
    return window.project(phases, size, production, basis).to_json()


def _progress(
    name: str, source: Endpoint, target: Endpoint, rows: dict[str, int]
) -> AbstractContextManager[Any]:
    """Progress of one dump/restore phase, as the server doing the work reports it (`rows`:
    the source's estimated rows per table)."""
    if name == "dump":
        return progress.polled("dump", lambda: watch.copied_rows(source, "source", rows))
    if name == "data":
        return progress.polled("restore data", lambda: watch.copied_rows(target, "target", rows))
    if name == "index build":
        return progress.polled(
            "target index build", lambda: watch.index_builds(target, "target"), unit="blocks"
        )
    return contextlib.nullcontext()


def _watched(
    timer: _Timer, source: Endpoint, target: Endpoint, inventory: Inventory
) -> Callable[[str], AbstractContextManager[None]]:
    """The timer's phases, each also showing its progress (the stages of staged.run)."""
    rows = {table.qualified: table.estimated_rows for table in inventory.tables}

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        with timer.phase(name), _progress(name, source, target, rows):
            yield

    return phase


def carry_database_settings(conn: psycopg.Connection, inventory: Inventory) -> list[str]:
    """ALTER DATABASE <target> SET ... as the source database has them: pg_dump of one
    database leaves them out, and a search setting such as hnsw.ef_search changes results."""
    carried = [s for s in inventory.settings if s.scope == "database"]
    database = str(conn.info.dbname)
    for setting in carried:
        conn.execute(database_setting_statement(database, f"{setting.name}={setting.value}"))
    if not carried:
        return []
    names = ", ".join(f"{s.name}={s.value}" for s in carried)
    return [f"carried the source database's settings to {database}: {names}"]


def _measure_drift(
    source: Endpoint, snapshot: str, settings: Settings, timer: _Timer, result: MigrationResult
) -> dict[str, dict[str, Any]] | None:
    """Rows the source changed after the snapshot; a failure leaves a note, not a failed
    migration (the copy itself is complete), and the drift check reports it as unknown."""
    try:
        with timer.phase("drift"):
            drift = measure_drift(
                source, snapshot, settings.ignored_schemas, timeout=settings.phase_timeout
            )
    except MigrationError as error:
        result.notes.append(f"the drift since the snapshot could not be measured: {error.problem}")
        return None
    return {name: asdict(table) for name, table in drift.items()}
