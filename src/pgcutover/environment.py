"""The run's two databases: started (embedded or docker) or connected (external), seeded, migrated.

Provisioned once per run and shared by every xdist worker: the first worker does the work
under a file lock and writes the state file; the others read it. The process that owns the
run (the xdist controller, or the only process) stops the servers at the end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from filelock import FileLock
from psycopg import sql

from pgcutover import scratch
from pgcutover.catalog import server_version
from pgcutover.checks.registry import blocked_by
from pgcutover.config import Settings
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import seed
from pgcutover.db import DataRole, Endpoint, connect, connection
from pgcutover.errors import PgcutoverError
from pgcutover.identity import refuse_same_database
from pgcutover.inventory import Inventory, discover
from pgcutover.managed import PROVIDER, create_owner_database
from pgcutover.migrate.logical.cutover import STRATEGY, Cutover, rehearsal_writer
from pgcutover.migrate.runner import MigrationResult, migrate, not_performed
from pgcutover.private import write_json
from pgcutover.providers import NAMED_SUPERUSER, SIDE_FLAVORS, start_server, stop_from_state
from pgcutover.providers.base import Server
from pgcutover.providers.embedded import flavor_for

REHEARSAL_DB = "rag_app"
STATE_FILE = "environment.json"
SERVERS_FILE = "servers.json"


@dataclass
class RunEnvironment:
    """Endpoints of the two application databases, what the source holds, and what happened
    to them; `blocked` says why the target cannot be judged (None when it can)."""

    source: Endpoint
    target: Endpoint
    inventory: Inventory
    migration: MigrationResult
    facts: dict[str, Any] = field(default_factory=dict)
    seed: dict[str, Any] | None = None
    blocked: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": asdict(self.source),
            "target": asdict(self.target),
            "inventory": self.inventory.to_json(),
            "migration": self.migration.to_json(),
            "facts": self.facts,
            "seed": self.seed,
            "blocked": self.blocked,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunEnvironment:
        return cls(
            source=Endpoint.from_json(data["source"]),
            target=Endpoint.from_json(data["target"]),
            inventory=Inventory.from_json(data["inventory"]),
            migration=MigrationResult.from_json(data["migration"]),
            facts=data["facts"],
            seed=data["seed"],
            blocked=data["blocked"],
        )


def _remember(workdir: Path, state: dict[str, Any]) -> None:
    """Record something to stop at once (a started server, a scratch database), so an
    interrupted run can still stop it."""
    path = workdir / SERVERS_FILE
    servers = json.loads(path.read_text()) if path.exists() else []
    servers.append(state)
    write_json(path, servers)


def _remember_server(workdir: Path, server: Server) -> None:
    _remember(workdir, {**server.state(), "password": server.endpoint.password})


def stop_servers(workdir: Path) -> list[str]:
    """Stop every server and drop every scratch database this run recorded (called by the
    owning process, also after a signal, and for a dead run's folder); one that cannot be
    stopped does not keep the others running. Returns what could not be stopped."""
    path = workdir / SERVERS_FILE
    if not path.exists():
        return []
    problems = []
    for state in reversed(json.loads(path.read_text())):
        try:
            stop_from_state(state)
        except Exception as error:  # every recorded server gets its turn
            problems.append(f"{state.get('kind')}: {type(error).__name__}: {error}")
    return problems


def describe(endpoint: Endpoint, role: DataRole) -> dict[str, Any]:
    """Facts for the report header: label, version, extensions, database size."""
    facts: dict[str, Any] = {"label": endpoint.label, "dsn": endpoint.safe_dsn()}
    try:
        with connection(endpoint, role=role) as conn:
            facts["server_version"] = server_version(conn)
            facts["extensions"] = dict(
                conn.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1").fetchall()
            )
            facts["database_size_bytes"] = int(
                conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
            )
    except PgcutoverError as error:
        facts["error"] = error.problem
    return facts


def _embedded_source(settings: Settings, workdir: Path) -> tuple[Endpoint, dict[str, Any]]:
    """The rehearsal source, seeded; without Supabase's API roles for a scratch rehearsal
    (the target's server is not ours: roles are server-wide, so none may be created there)."""
    server = start_server(settings, "source", workdir / "source", "rehearsal source")
    _remember_server(workdir, server)
    embedder = Embedder(settings.embedding_model, settings.cache_dir)
    try:
        summary = seed(
            server.endpoint,
            REHEARSAL_DB,
            settings.rows,
            embedder,
            platform_roles=not settings.scratch,
            memory=settings.maintenance_work_mem,
            workers=settings.max_parallel_maintenance_workers,
        )
    finally:
        embedder.close()
    return server.endpoint.with_dbname(REHEARSAL_DB), asdict(summary)


@dataclass(frozen=True)
class Sides:
    """The run's databases: the source, the target as the checks read it, the role the
    migration restores as, and who stands for a managed provider (throwaway targets only)."""

    source: Endpoint
    target: Endpoint
    restore_as: Endpoint
    provider: Endpoint | None
    seed: dict[str, Any] | None


def managed_like(settings: Settings) -> bool:
    """Whether the throwaway target behaves like a managed server (managed.py): by default;
    not with --self-hosted, nor for --strategy=logical (its schema step is not staged for a
    non-superuser owner yet), nor with a provider that cannot name its bootstrap superuser
    (docker: the images' initdb names it postgres)."""
    return (
        not settings.self_hosted
        and settings.strategy != STRATEGY
        and settings.provider in NAMED_SUPERUSER
    )


def _embedded_target(settings: Settings, workdir: Path) -> tuple[Endpoint, Endpoint | None]:
    """(the role the migration restores as, the provider's superuser endpoint or None).

    Managed-like by default: the checks read through the provider's superuser, which sees
    every row whatever row-level security says; otherwise the restore runs as the superuser
    itself."""
    managed = managed_like(settings)
    server = start_server(
        settings,
        "target",
        workdir / "target",
        "rehearsal target, " + ("managed-like" if managed else "self-hosted"),
        PROVIDER if managed else "postgres",
    )
    _remember_server(workdir, server)
    admin = server.endpoint.with_dbname(REHEARSAL_DB)
    if managed:
        return create_owner_database(server.endpoint, REHEARSAL_DB), admin
    with connect(server.endpoint, role="admin") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(REHEARSAL_DB)))
    return admin, None


def _scratch_target(settings: Settings, workdir: Path) -> Endpoint:
    """A scratch database on the named target's server, recorded so it is dropped on any
    exit."""
    server = settings.target.endpoint  # type: ignore[union-attr]
    target = scratch.create(server)
    _remember(workdir, scratch.state(server, target))
    return target


def mode(settings: Settings) -> str:
    """What this run does, in words, for the report."""
    if settings.scratch:
        return (
            f"scratch rehearsal on {settings.target.name}'s server: the built-in rehearsal "  # type: ignore[union-attr]
            "database migrated into a scratch database pgcutover created there and drops "
            "afterwards (no source is configured for this target)"
        )
    kind = "managed-like" if managed_like(settings) else "self-hosted"
    if settings.source is None:
        return (
            f"rehearsal: a seeded PostgreSQL 16 source migrated into a {kind} PostgreSQL 18 target"
        )
    target = settings.target.name if settings.target else f"a throwaway {kind} PostgreSQL 18"
    verb = "migrated into" if settings.migrate else "verified against its source"
    if settings.migrate:
        return f"{settings.source.name} {verb} {target}"
    return f"{target} {verb} {settings.source.name}"


@contextmanager
def _rollback_server(settings: Settings, workdir: Path, source: Endpoint) -> Iterator[Endpoint]:
    """A fresh server of the source's major version (for the rollback proof), recorded like
    the others and stopped and removed after use."""
    with connection(source, role="source") as conn:
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    flavor = flavor_for(version)
    folder = workdir / "scratch"
    side = next(side for side, name in SIDE_FLAVORS.items() if name == flavor)
    server = start_server(settings, side, folder, f"rollback scratch ({flavor})")
    _remember_server(workdir, server)
    try:
        with connect(server.endpoint, role="admin") as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(REHEARSAL_DB)))
        yield server.endpoint.with_dbname(REHEARSAL_DB)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _cutover(settings: Settings, source: Endpoint, workdir: Path) -> Cutover | None:
    """What a logical migration takes from the run: the rehearsal's writer (only on a source
    pgcutover created), the run's folder for its clean-up records, a scratch server."""
    if settings.strategy != STRATEGY:
        return None
    writes = rehearsal_writer(source, settings) if source.ephemeral else None
    rollback_server = partial(_rollback_server, settings, workdir, source)
    return Cutover(record_dir=workdir, writes=writes, scratch=rollback_server)


def open_sides(settings: Settings, workdir: Path) -> Sides:
    """Start or connect both sides and seed a rehearsal source; nothing is migrated. A plan
    reads a named target as it is (no scratch database is created for it)."""
    seeded = None
    if settings.source is None:
        source, seeded = _embedded_source(settings, workdir)
    else:
        source = settings.source.endpoint
    if settings.scratch and not settings.plan:
        target = _scratch_target(settings, workdir)
        return Sides(source, target, target, None, seeded)
    if settings.target is not None:
        target = settings.target.endpoint
        return Sides(source, target, target, None, seeded)
    restore_as, provider = _embedded_target(settings, workdir)
    return Sides(source, provider or restore_as, restore_as, provider, seeded)


def provision(settings: Settings, workdir: Path) -> RunEnvironment:
    """Open both sides, read the source's inventory, and migrate when asked (after making
    sure the target is not the source)."""
    sides = open_sides(settings, workdir)
    source, target = sides.source, sides.target
    relation = refuse_same_database(source, target)
    with connection(source, role="source") as conn:
        inventory = discover(conn, settings)
    if settings.migrate:
        cutover = _cutover(settings, source, workdir)
        migration = migrate(
            source,
            sides.restore_as,
            settings,
            inventory,
            cutover=cutover,
            provider=sides.provider,
        )
    else:
        migration = not_performed("verifying an already-migrated target (--no-migrate)")
    facts: dict[str, Any] = {
        "source": describe(source, "source"),
        "target": describe(target, "target"),
        "shared_server": relation.same_server,
        "relation": relation.evidence,
        "mode": mode(settings),
    }
    return RunEnvironment(
        source=source,
        target=target,
        inventory=inventory,
        migration=migration,
        facts=facts,
        seed=sides.seed,
        blocked=blocked_by(migration, target, inventory),
    )


def shared_environment(
    settings: Settings,
    workdir: Path,
    build: Callable[[Settings, Path], RunEnvironment] = provision,
) -> RunEnvironment:
    """The run's environment: built by the first caller under a file lock, read by the rest.

    A failure is stored too, so every worker reports the same error instead of retrying.
    """
    state = workdir / STATE_FILE
    with FileLock(str(workdir / "environment.lock")):
        if not state.exists():
            try:
                write_json(state, {"ok": build(settings, workdir).to_json()})
            except Exception as error:  # stored so every worker reports it, not retries it
                write_json(
                    state,
                    {
                        "error": getattr(error, "problem", f"{type(error).__name__}: {error}"),
                        "remedy": getattr(error, "remedy", "see the error above; rerun once fixed"),
                    },
                )
    data = json.loads(state.read_text())
    if "error" in data:
        raise PgcutoverError(data["error"], data["remedy"])
    return RunEnvironment.from_json(data["ok"])


def load_environment(workdir: Path) -> RunEnvironment | None:
    """The environment the workers built, if any (for the report)."""
    state = workdir / STATE_FILE
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    return RunEnvironment.from_json(data["ok"]) if "ok" in data else None


def provisioning_error(workdir: Path) -> tuple[str, str] | None:
    """(problem, remedy) when provisioning failed, for the report."""
    state = workdir / STATE_FILE
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    return (data["error"], data["remedy"]) if "error" in data else None
