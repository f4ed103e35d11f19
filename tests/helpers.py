"""Plain helpers for pgcutover's own tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

from psycopg import sql

from pgcutover.checks.base import CheckResult, Pair
from pgcutover.config import OPTIONS, Settings, build_settings
from pgcutover.db import Endpoint, connect, connection
from pgcutover.inventory import Inventory, discover
from pgcutover.providers.embedded import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
#: Rows seeded for the project's tests: real embeddings, small enough for a quick CI run.
TEST_ROWS = int(os.environ.get("PGCUTOVER_TEST_ROWS", "1500"))


def make_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings as a default run would resolve them, with option values overridden."""
    values = {option.name: option.default for option in OPTIONS}
    values.update({"rows": TEST_ROWS, **overrides})
    return build_settings(values, migrate=None, allow_destructive=False, rootdir=tmp)


def clone_database(server: EmbeddedServer, template: str, name: str) -> Endpoint:
    """CREATE DATABASE name TEMPLATE template: a full copy in well under a second."""
    with connect(server.endpoint, role="admin") as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return server.endpoint.with_dbname(name)


def drop_database(server: EmbeddedServer, name: str) -> None:
    """Drop a test database, disconnecting anyone still in it."""
    with connect(server.endpoint, role="admin") as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def execute(endpoint: Endpoint, statement: str, params: tuple[object, ...] = ()) -> None:
    """Run one statement as the superuser (to break a target copy on purpose)."""
    with connect(endpoint, role="admin") as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    """Index results by check id for assertions."""
    return {result.id: result for result in results}


def failed_ids(results: list[CheckResult]) -> set[str]:
    """Ids of results that block a GO."""
    return {result.id for result in results if result.status in ("fail", "unknown")}


def inventory_of(endpoint: Endpoint, settings: Settings) -> Inventory:
    """What a database holds, as a run would discover it on its source."""
    with connection(endpoint, role="source") as conn:
        return discover(conn, settings)


def pair_of(source: Endpoint, target: Endpoint, settings: Settings) -> Pair:
    """A pair with the source's inventory discovered now (after the test shaped it)."""
    return Pair(source, target, inventory_of(source, settings))
