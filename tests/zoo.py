"""The zoo of real schemas (fixtures/zoo/, issue 10): load a member's pg_dump into a fresh
database on the test session's servers, and run every check family on a pair in-process the
way suites/ does."""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from helpers import REPO, clone_database, make_settings
from pgcutover import expectations
from pgcutover.checks import (
    connectivity,
    content,
    drift,
    migration,
    row_counts,
    schema,
    vector_indexes,
    vectors,
)
from pgcutover.checks.base import CheckResult, Pair, guarded
from pgcutover.checks.search import drift as embedding_drift
from pgcutover.checks.search import filtered, latency, plans, recall, smoke
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connect
from pgcutover.load import slo
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
    a template does not carry. Sessions still open on the template are ended first: the
    expectations family leaves its SQLAlchemy pool's idle connections behind."""
    with connect(server.endpoint, role="admin") as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (template,),
        )
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
    pair: Pair,
    settings: Settings,
    performed: MigrationResult,
    artefacts: Path,
    only: Collection[str] | None = None,
) -> list[CheckResult]:
    """Every check family on the pair (or the families named in `only`: enough for a NO-GO,
    never for a GO), as `pytest suites/` runs them; a family that crashes is one `unknown`
    result. (The lead's registry of check families will replace this list.)"""

    def artefact(label: str, filename: str) -> Path:
        path = artefacts / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    families = {
        "connectivity": lambda: connectivity.check(pair, settings),
        "migration": lambda: migration.check(performed),
        "drift": lambda: drift.from_migration(performed),
        "row_counts": lambda: row_counts.check(pair, settings),
        "content": lambda: content.check(pair, settings),
        "schema": lambda: schema.check(pair, settings),
        "vector_dimensions": lambda: vectors.check(pair, settings),
        "vector_index": lambda: vector_indexes.check(pair, settings),
        "search.plans": lambda: plans.check(pair, settings),
        "search.recall": lambda: recall.check(pair, settings),
        "search.filtered": lambda: filtered.check(pair, settings),
        "search.latency": lambda: latency.check(pair, settings),
        "search.drift": lambda: embedding_drift.check(pair, settings),
        "search.smoke": lambda: smoke.check(pair, settings),
        "expectations": lambda: expectations.check(pair, settings),
        "load": lambda: slo.check(pair, settings, artefact),
    }
    results: list[CheckResult] = []
    for family, run in families.items():
        if only is None or family in only:
            results += guarded(family, family, run, pair)
    return results
