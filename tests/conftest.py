"""Shared fixtures for pgcutover's own tests: two real servers started once per session,
a seeded source database, a migrated target kept as a template, and cheap per-test copies
of it (CREATE DATABASE ... TEMPLATE) that a test may break at will."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from psycopg import sql

from helpers import TEST_ROWS, clone_database, drop_database, make_settings
from pgcutover.checks.base import Pair
from pgcutover.config import Settings
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import seed
from pgcutover.db import Endpoint, connect, connection
from pgcutover.inventory import Inventory, discover
from pgcutover.migrate.runner import MigrationResult, migrate
from pgcutover.providers.embedded import EmbeddedServer, start_embedded

pytest_plugins = ["pytester"]

SOURCE_DB = "seeded_source"
MIGRATED_TEMPLATE = "migrated_template"
_copies = itertools.count()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Default settings for the tests (embedded rehearsal, TEST_ROWS rows)."""
    return make_settings(tmp_path_factory.mktemp("settings"))


@pytest.fixture(scope="session")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """A PostgreSQL 16 source server and a PostgreSQL 18 target server, started once."""
    base = tmp_path_factory.mktemp("servers")
    base.chmod(0o711)
    source = start_embedded("pg16", base / "source", "test source (PG16)")
    try:
        target = start_embedded("pg18", base / "target", "test target (PG18)")
    except BaseException:
        source.stop()
        raise
    yield source, target
    source.stop()
    target.stop()


@pytest.fixture(scope="session")
def source_server(servers: tuple[EmbeddedServer, EmbeddedServer]) -> EmbeddedServer:
    return servers[0]


@pytest.fixture(scope="session")
def target_server(servers: tuple[EmbeddedServer, EmbeddedServer]) -> EmbeddedServer:
    return servers[1]


@pytest.fixture(scope="session")
def seeded_source(source_server: EmbeddedServer, settings: Settings) -> Endpoint:
    """The rehearsal database on the PG16 server (tests read it; only the seed writes)."""
    embedder = Embedder(settings.embedding_model, settings.cache_dir)
    try:
        seed(source_server.endpoint, SOURCE_DB, TEST_ROWS, embedder)
    finally:
        embedder.close()
    return source_server.endpoint.with_dbname(SOURCE_DB)


@pytest.fixture(scope="session")
def inventory(seeded_source: Endpoint, settings: Settings) -> Inventory:
    """What the seeded source holds, discovered once."""
    with connection(seeded_source, role="source") as conn:
        return discover(conn, settings)


@pytest.fixture(scope="session")
def migrated(
    target_server: EmbeddedServer, seeded_source: Endpoint, settings: Settings, inventory: Inventory
) -> tuple[Endpoint, MigrationResult]:
    """The source migrated once into a template database on the PG18 server."""
    with connect(target_server.endpoint, role="admin") as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(MIGRATED_TEMPLATE)))
    template = target_server.endpoint.with_dbname(MIGRATED_TEMPLATE)
    result = migrate(seeded_source, template, settings, inventory)
    assert result.ok, f"the fixture migration failed: {result.error}"
    return template, result


@pytest.fixture
def target_copy(
    target_server: EmbeddedServer, migrated: tuple[Endpoint, MigrationResult]
) -> Iterator[Endpoint]:
    """A private copy of the migrated target: break it, then run a check against it."""
    name = f"target_copy_{os.getpid()}_{next(_copies)}"
    endpoint = clone_database(target_server, MIGRATED_TEMPLATE, name)
    yield endpoint
    drop_database(target_server, name)


@pytest.fixture
def pair(seeded_source: Endpoint, target_copy: Endpoint, inventory: Inventory) -> Pair:
    """Source and a private target copy, as checks take them."""
    return Pair(seeded_source, target_copy, inventory)
