"""The zoo of real schemas (fixtures/zoo/, issue 10): load a member's pg_dump into a fresh
database on the test session's servers, and run every check family on a pair in-process the
way suites/ does (the registry)."""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from helpers import REPO, clone_database, make_settings, pair_of
from pgcutover.checks import registry
from pgcutover.checks.base import CheckResult, guarded
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connect
from pgcutover.migrate.runner import MigrationResult
from pgcutover.migrate.tools import run_pipeline
from pgcutover.providers.embedded import EmbeddedServer

ZOO = REPO / "fixtures" / "zoo"


@dataclass(frozen=True)
class Member:
    """One zoo database: its dump, the server version it belongs on, what the dump lacks."""

    name: str
    server: str
    chunks: int
    roles: str | None = None
    database_settings: dict[str, str] = field(default_factory=dict)

    @property
    def dump(self) -> Path:
        return ZOO / f"{self.name}.dump"


def members() -> dict[str, Member]:
    """fixtures/zoo/zoo.toml, by member name."""
    document = tomllib.loads((ZOO / "zoo.toml").read_text())
    return {name: Member(name=name, **spec) for name, spec in document["members"].items()}


def load(server: EmbeddedServer, member: Member, dbname: str) -> Endpoint:
    """Restore the member into a new database `dbname` with the server's own pg_restore:
    its roles first (pg_dump carries none), its database-level settings, the archive, then
    ANALYZE."""
    with connect(server.endpoint, role="admin") as admin:
        if member.roles:
            admin.execute((ZOO / member.roles).read_text())  # type: ignore[arg-type]
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    endpoint = apply_settings(server, member, dbname)
    restore = [
        str(server.bin_dir / "pg_restore"),
        "--exit-on-error",
        "--no-password",
        f"--dbname={dbname}",
        str(member.dump),
    ]
    run_pipeline([restore], [endpoint], phase="zoo restore", timeout=600)
    with connect(endpoint, role="admin") as conn:
        conn.execute("ANALYZE")
    return endpoint


def copy(server: EmbeddedServer, member: Member, template: str, dbname: str) -> Endpoint:
    """CREATE DATABASE ... TEMPLATE: an exact copy, with the database-level settings that
    a template does not carry."""
    clone_database(server, template, dbname)
    return apply_settings(server, member, dbname)


def apply_settings(server: EmbeddedServer, member: Member, dbname: str) -> Endpoint:
    """ALTER DATABASE ... SET for each of the member's database settings (values are SQL)."""
    with connect(server.endpoint, role="admin") as admin:
        for name, value in member.database_settings.items():
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(dbname),
                    sql.Identifier(name),
                    sql.SQL(value),  # type: ignore[arg-type]
                )
            )
    return server.endpoint.with_dbname(dbname)


def zoo_settings(tmp: Path, strategy: str) -> Settings:
    """Settings as a user of a zoo app would have them: fixtures/zoo/targets.toml."""
    return make_settings(tmp, targets_file=str(ZOO / "targets.toml"), strategy=strategy)


def verify(
    source: Endpoint,
    target: Endpoint,
    settings: Settings,
    performed: MigrationResult,
    artefacts: Path,
    only: Collection[str] | None = None,
) -> list[CheckResult]:
    """Every check family of the registry on the pair, with the source's inventory discovered
    now, as `pytest suites/` runs them (or the families named in `only`: enough for a NO-GO,
    never for a GO); a family that crashes is one `unknown` result."""

    def artefact(label: str, filename: str) -> Path:
        path = artefacts / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    pair = pair_of(source, target, settings)
    context = registry.Context(
        pair, settings, performed, registry.blocked_by(performed, target, pair.inventory), artefact
    )
    results: list[CheckResult] = []
    for name in registry.NAMES if only is None else only:
        area = registry.family(name).area
        results += guarded(name, area, lambda name=name: registry.run(name, context), pair)
    return results
