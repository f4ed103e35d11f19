"""The migration: every strategy copies the database and times its phases; an error is a
failed migration, never one that "succeeded with errors ignored"; a spilled HNSW build
comes with advice."""

from __future__ import annotations

import itertools
import os

import pytest

from helpers import execute, failed_ids, make_settings
from pgcutover.checks import row_counts, vector_indexes
from pgcutover.checks.base import Pair
from pgcutover.migrate.runner import migrate

_names = itertools.count()


@pytest.fixture
def empty_target(target_server):
    """A fresh empty database on the PG18 server."""
    name = f"empty_{os.getpid()}_{next(_names)}"
    execute(target_server.endpoint, f"CREATE DATABASE {name}")
    yield target_server.endpoint.with_dbname(name)
    execute(target_server.endpoint, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.parametrize("strategy", ["plain", "custom", "directory"])
def test_each_strategy_migrates_everything_and_times_its_phases(
    strategy, seeded_source, empty_target, inventory, tmp_path
):
    settings = make_settings(tmp_path, strategy=strategy)
    result = migrate(seeded_source, empty_target, settings, inventory)
    assert result.ok, result.error
    names = [phase.name for phase in result.phases]
    assert {"preflight", "schema", "data", "index build", "analyze"} <= set(names)
    assert ("dump" in names) == (strategy != "plain")
    assert result.snapshot
    projected = {phase["name"] for phase in result.window["phases"]}  # type: ignore[index]
    assert {"data", "index build", "analyze"} <= projected and "drift" not in projected
    pair = Pair(seeded_source, empty_target, inventory)
    assert (
        failed_ids(row_counts.check(pair, settings) + vector_indexes.check(pair, settings)) == set()
    )


def test_an_error_during_restore_fails_the_migration(
    seeded_source, empty_target, inventory, tmp_path
):
    execute(
        empty_target,
        "CREATE FUNCTION public.set_updated_at() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    )
    result = migrate(
        seeded_source, empty_target, make_settings(tmp_path, strategy="custom"), inventory
    )
    assert not result.ok
    assert result.failed_phase == "schema"
    assert "already exists" in result.error
    assert "empty database" in result.remedy


def test_a_spilled_hnsw_build_comes_with_advice(seeded_source, empty_target, inventory, tmp_path):
    settings = make_settings(
        tmp_path, strategy="plain", maintenance_work_mem="1MB", max_parallel_maintenance_workers=0
    )
    result = migrate(seeded_source, empty_target, settings, inventory)
    assert result.ok, result.error
    assert any("maintenance_work_mem=1MB" in line for line in result.advice), result.advice


def test_restore_sessions_get_the_configured_memory(
    seeded_source, empty_target, inventory, tmp_path
):
    settings = make_settings(tmp_path, strategy="plain", maintenance_work_mem="1GB")
    result = migrate(seeded_source, empty_target, settings, inventory)
    assert result.ok, result.error
    assert result.advice == []
