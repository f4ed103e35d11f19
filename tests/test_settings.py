"""Settings parity: database- and role-level settings that change the app's results or plans
fail with the SQL that fixes them; the migration carries the database's own settings."""

from __future__ import annotations

import itertools
import os

import pytest

from helpers import by_id, drop_database, execute, failed_ids, pair_of
from pgcutover.checks import settings_parity
from pgcutover.db import connection
from pgcutover.migrate.runner import migrate

_names = itertools.count()


def test_faithful_copy_passes(pair, settings):
    results = settings_parity.check(pair, settings)
    assert failed_ids(results) == set()
    assert by_id(results)["settings.role.authenticated.statement_timeout"].actual == "8s"


@pytest.mark.parametrize(("setting", "value"), [("hnsw.ef_search", "10"), ("ivfflat.probes", "1")])
def test_a_lowered_search_setting_for_the_database_fails_naming_it(pair, settings, setting, value):
    execute(pair.target, f'ALTER DATABASE "{pair.target.dbname}" SET {setting} = {value}')
    results = settings_parity.check(pair, settings)
    check_id = f"settings.database.{pair.target.dbname}.{setting}"
    assert failed_ids(results) == {check_id}
    failed = by_id(results)[check_id]
    assert setting in failed.message and failed.actual == value
    assert failed.remedy.startswith(f'ALTER DATABASE "{pair.target.dbname}" RESET ')


def test_a_role_timeout_lost_in_this_database_fails_with_the_fix(pair, settings):
    execute(
        pair.target,
        f'ALTER ROLE authenticated IN DATABASE "{pair.target.dbname}" SET statement_timeout = 1000',
    )
    results = settings_parity.check(pair, settings)
    check_id = "settings.role_in_database.authenticated.statement_timeout"
    assert failed_ids(results) == {check_id}
    assert 'ALTER ROLE "authenticated" IN DATABASE' in by_id(results)[check_id].remedy


def test_a_harmless_difference_is_a_finding(pair, settings):
    execute(
        pair.target, f'ALTER DATABASE "{pair.target.dbname}" SET log_min_duration_statement = 250'
    )
    results = settings_parity.check(pair, settings)
    assert failed_ids(results) == set()
    found = by_id(results)[f"settings.database.{pair.target.dbname}.log_min_duration_statement"]
    assert found.details["finding"] == "differs"


def test_the_migration_carries_the_database_settings(source_server, target_server, settings):
    name = f"settings_{os.getpid()}_{next(_names)}"
    execute(source_server.endpoint, f"CREATE DATABASE {name}")
    source = source_server.endpoint.with_dbname(name)
    execute(source, "CREATE EXTENSION vector")
    execute(source, "CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
    execute(source_server.endpoint, f"ALTER DATABASE {name} SET hnsw.ef_search = 123")
    execute(target_server.endpoint, f"CREATE DATABASE {name}")
    target = target_server.endpoint.with_dbname(name)
    try:
        pair = pair_of(source, target, settings)
        result = migrate(source, target, settings, pair.inventory)
        assert result.ok, result.error
        with connection(target, role="target") as conn:
            assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "123"
        assert failed_ids(settings_parity.check(pair, settings)) == set()
    finally:
        drop_database(source_server, name)
        drop_database(target_server, name)
