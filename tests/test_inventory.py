"""The inventory: what a source holds, discovered once, and judged the same way on any
database: the rehearsal fixture is one inventory among others."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace

import numpy as np
import pytest

from helpers import by_id, drop_database, execute, make_settings, pair_of
from pgcutover.checks import registry
from pgcutover.db import connect
from pgcutover.inventory import Inventory
from pgcutover.migrate.runner import migrate, not_performed

_names = itertools.count()


def test_the_rehearsal_fixture_is_discovered_like_any_database(inventory):
    (chunks,) = inventory.app_vectors
    assert (chunks.qualified, chunks.dimensions, chunks.text_column) == (
        "public.vector_embeddings.embedding",
        384,
        "content",
    )
    filters = {f.column: f.reasons for f in inventory.filters}
    assert "row-level security policy" in filters["user_id"]
    assert "indexed foreign key" in filters["document_id"]
    assert [s.name for s in inventory.shapes][:2] == [
        "public.vector_embeddings.embedding",
        "public.vector_embeddings.embedding.by_user_id",
    ]
    assert "lookup.public.documents.user_id" in {lookup.name for lookup in inventory.lookups}
    assert {(s.role, s.name) for s in inventory.settings} >= {
        ("anon", "statement_timeout"),
        ("authenticated", "statement_timeout"),
    }
    assert Inventory.from_json(inventory.to_json()) == inventory


@pytest.fixture
def two_dimensions(source_server, target_server, tmp_path):
    """A source with the app's 384-d chunks (HNSW) and a 1536-d column of another model
    without an index, text in both tables; and an empty target database."""
    name = f"two_dims_{os.getpid()}_{next(_names)}"
    rng = np.random.default_rng(7)
    execute(source_server.endpoint, f"CREATE DATABASE {name}")
    source = source_server.endpoint.with_dbname(name)
    execute(
        source,
        "CREATE EXTENSION vector;"
        "CREATE TABLE chunks (id int PRIMARY KEY, owner int NOT NULL, content text,"
        " embedding vector(384));"
        "CREATE INDEX ON chunks (owner);"
        "CREATE TABLE articles (id int PRIMARY KEY, body text, embedding vector(1536));",
    )
    with connect(source, role="admin") as conn:
        with conn.cursor().copy("COPY chunks FROM STDIN") as copy:
            for i, vector in enumerate(rng.normal(size=(600, 384))):
                unit = vector / np.linalg.norm(vector)
                copy.write_row((i, i % 12, f"chunk {i} about topic {i % 7}", str(unit.tolist())))
        with conn.cursor().copy("COPY articles FROM STDIN") as copy:
            for i, vector in enumerate(rng.normal(size=(200, 1536))):
                copy.write_row((i, f"article {i}", str((vector / np.linalg.norm(vector)).tolist())))
        conn.execute("CREATE INDEX ON chunks USING hnsw (embedding vector_cosine_ops)")
        conn.execute("ANALYZE")
    execute(target_server.endpoint, f"CREATE DATABASE {name}")
    yield source, target_server.endpoint.with_dbname(name)
    drop_database(source_server, name)
    drop_database(target_server, name)


@pytest.mark.slow
def test_384_and_1536_dimension_columns_migrate_and_end_go(two_dimensions, tmp_path):
    source, target = two_dimensions
    (tmp_path / "targets.toml").write_text("[load]\nduration = 6\n")
    settings = make_settings(tmp_path)
    pair = pair_of(source, target, settings)
    articles = pair.inventory.vector("public.articles.embedding")
    assert articles is not None and (articles.app, articles.dimensions) == (False, 1536)
    result = migrate(source, target, settings, pair.inventory)
    assert result.ok, result.error
    context = registry.Context(pair, settings, result, None, lambda _, name: tmp_path / name)
    results = registry.run_all(context)
    blocking = [f"{r.id}: {r.message}" for r in results if r.status in ("fail", "unknown")]
    assert blocking == [], "\n".join(blocking)
    found = by_id(results)
    column = found["vector_dimensions.public.articles.embedding"]
    assert "vector(1536)" in column.message and column.details["app"] is False
    assert found["vector_dimensions.configuration"].status == "pass"
    assert found["search.drift.public.articles.embedding"].status == "skip"
    assert found["search.drift.public.chunks.embedding"].details["finding"] == "readiness"


def test_a_configured_dimension_no_column_has_is_refused_in_preflight(two_dimensions, tmp_path):
    source, target = two_dimensions
    settings = replace(make_settings(tmp_path), vector_dimensions=768)
    settings = replace(settings, vector_dimensions_configured=True)
    pair = pair_of(source, target, settings)
    result = migrate(source, target, settings, pair.inventory)
    assert not result.ok and result.failed_phase == "preflight"
    assert "VECTOR_DB_DIMENSIONS=768" in str(result.error)
    assert "no vector column has that dimension" in str(result.error)


def test_a_failed_migration_is_one_cause_and_the_target_checks_wait(pair, settings, tmp_path):
    from pgcutover.migrate.runner import MigrationResult

    failed = MigrationResult(
        strategy="custom",
        performed=True,
        ok=False,
        error="phase 'data' failed: pg_restore exited 1",
        remedy="fix it",
        failed_phase="data",
    )
    blocked = registry.blocked_by(failed, pair.target, pair.inventory)
    context = registry.Context(pair, settings, failed, blocked, lambda _, name: tmp_path / name)
    results = [r for name in registry.NAMES if name != "load" for r in registry.run(name, context)]
    blocking = {r.id for r in results if r.status in ("fail", "unknown")}
    assert blocking == {"migration.completed"}
    waiting = [r for r in results if r.message.startswith("not judged: the migration failed")]
    assert {r.id for r in waiting} >= {"row_counts", "content", "schema", "search.recall"}


def test_an_empty_target_is_one_cause(pair, settings, target_server, tmp_path):
    name = f"empty_{os.getpid()}_{next(_names)}"
    execute(target_server.endpoint, f"CREATE DATABASE {name}")
    try:
        empty = replace(pair, target=target_server.endpoint.with_dbname(name))
        verifying = not_performed("verifying")
        blocked = registry.blocked_by(verifying, empty.target, empty.inventory)
        assert blocked is not None and "holds none of the source's" in blocked
        context = registry.Context(empty, settings, verifying, blocked, lambda *_: tmp_path)
        results = registry.run("migration", context) + registry.run("row_counts", context)
        assert [(r.id, r.status) for r in results] == [
            ("migration.target", "fail"),
            ("row_counts", "skip"),
        ]
    finally:
        drop_database(target_server, name)
