"""Load tests with real locust runs against real servers: a faithful target meets its service
levels, a slow target fails its p95, a failing query fails the error rate while the users
keep running, a distributed run merges its workers' statistics, and nothing writes to a
source."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from helpers import by_id, execute, failed_ids, make_settings
from pgcutover.checks.base import Pair
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connection
from pgcutover.errors import ConfigError
from pgcutover.inventory import Inventory
from pgcutover.load import during_dump, slo, workload
from pgcutover.load.config import LoadConfig, Shape, load_config
from pgcutover.load.runner import LOCUSTFILE, LoadPlan, run_locust

CHUNKS = "public.vector_embeddings.embedding"
BY_USER = f"{CHUNKS}.by_user_id"
#: Short runs keep the suite quick; the numbers only need to separate healthy from broken.
QUICK = {"users": 2, "spawn_rate": 2, "duration": 4}


#: The rehearsal app's own shapes besides the discovered ones: a relational read and a write.
APP_SHAPES = """
[load.shapes.documents_by_user]
sql = "SELECT id, title FROM public.documents WHERE user_id = %(user_id)s LIMIT 20"
[load.shapes.query_log_insert]
write = true
sql = "INSERT INTO public.query_log (user_id, query, result_count) VALUES (%(user_id)s, 'x', 1)"
[load.parameters]
sql = "SELECT id AS user_id FROM public.users ORDER BY random() LIMIT 200"
"""


def settings_with(tmp_path: Path, toml: str = "") -> Settings:
    """Settings whose targets.toml carries the app's shapes and [load] overrides."""
    (tmp_path / "targets.toml").write_text(APP_SHAPES + toml)
    return make_settings(tmp_path)


def quick_config(tmp_path: Path, inventory: Inventory, **changes: object) -> LoadConfig:
    config = load_config(settings_with(tmp_path), inventory)
    return config.with_overrides(**{**QUICK, **changes})


def count_rows(endpoint: Endpoint, table: str) -> int:
    with connection(endpoint, role="source") as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


def test_faithful_target_meets_service_levels_and_writes_only_there(
    pair: Pair, tmp_path: Path
) -> None:
    # Lenient bars: this test is about the wiring, on a machine other jobs share.
    settings = settings_with(
        tmp_path,
        "[load]\nusers = 2\nspawn_rate = 2\nduration = 4\nwrites = true\n"
        "[load.slo.p95_ms]\ndefault = 2000.0\n[load.slo.p99_ms]\ndefault = 4000.0\n",
    )
    log_rows = count_rows(pair.source, "query_log"), count_rows(pair.target, "query_log")
    artefacts: dict[str, Path] = {}

    def artefact(label: str, filename: str) -> Path:
        artefacts[label] = tmp_path / filename
        return artefacts[label]

    results = slo.check(pair, settings, artefact)
    assert failed_ids(results) == set()
    checks = by_id(results)
    bars = checks[f"load.target.p95.{BY_USER}"].details["bars"]
    assert set(bars["groups"]) == {"source", "target"}
    assert all(value is not None for value in bars["groups"]["source"])
    series = checks["load.target.throughput"].details["series"]
    assert len(series["x"]) == len(series["lines"]["source"]) == len(series["lines"]["target"])
    assert "load.target.p95.query_log_insert" in checks
    assert count_rows(pair.source, "query_log") == log_rows[0]
    assert count_rows(pair.target, "query_log") > log_rows[1]
    assert all(path.stat().st_size > 0 for path in artefacts.values())
    assert set(artefacts) == {"locust report (source)", "locust report (target)"}


def test_requests_are_bound_once_and_sent_as_the_server_expects(seeded_source: Endpoint) -> None:
    """Named placeholders become $n (a repeated name keeps its number, %% stays a percent
    sign), values are dumped once; a failing request raises the server's own error and
    leaves the connection usable."""
    shape = Shape(
        "bound",
        "SELECT 1 FROM generate_series(1, %(n)s) WHERE %(a)s::int + %(a)s::int = 42"
        " AND %(b)s = 'x' AND '100%%' = '100' || '%%' AND %(k)s = 7",
        constants={"k": 7},
    )
    with connection(seeded_source, role="source") as conn:
        (request,) = workload.bind(conn, shape, [{"a": 21, "b": "x", "n": 3}])
        assert request.query == (
            b"SELECT 1 FROM generate_series(1, $1) WHERE $2::int + $2::int = 42"
            b" AND $3 = 'x' AND '100%' = '100' || '%' AND $4 = 7"
        )
        socket = conn.pgconn.socket

        def wait(writing: bool) -> None:
            select.select([] if writing else [socket], [socket] if writing else [], [])

        assert workload.execute(conn.pgconn, request, wait, "utf-8") == 3
        (failing,) = workload.bind(conn, Shape("failing", "SELECT 1 / %(z)s"), [{"z": 0}])
        with pytest.raises(psycopg.errors.DivisionByZero):
            workload.execute(conn.pgconn, failing, wait, "utf-8")
        assert workload.execute(conn.pgconn, request, wait, "utf-8") == 3


def test_statement_delay_fails_p95(target_copy: Endpoint, inventory: Inventory, tmp_path: Path):
    execute(target_copy, "ALTER TABLE public.documents RENAME TO documents_data")
    execute(
        target_copy,
        "CREATE FUNCTION public.delay() RETURNS boolean LANGUAGE sql VOLATILE "
        "AS 'SELECT pg_sleep(0.15); SELECT true'",
    )
    # An uncorrelated subquery runs once per statement: every query on the view waits 150 ms.
    execute(
        target_copy,
        "CREATE VIEW public.documents AS SELECT * FROM public.documents_data "
        "WHERE (SELECT public.delay())",
    )
    config = quick_config(tmp_path, inventory)
    config = config.with_overrides(
        slo=replace(config.slo, p95_ms={"default": 250.0, "documents_by_user": 100.0})
    )
    stats = run_locust(LoadPlan(target_copy, config, source=False), tmp_path, "slow")
    results = slo.judge(stats, config, writes=False)
    checks = by_id(results)
    assert checks["load.target.p95.documents_by_user"].status == "fail"
    assert checks["load.target.p95.documents_by_user"].actual >= 150
    assert checks["load.target.error_rate"].status == "pass"


def test_failing_query_is_a_failure_and_fails_error_rate(
    target_copy: Endpoint, inventory: Inventory, tmp_path: Path
) -> None:
    execute(target_copy, "ALTER TABLE public.documents RENAME COLUMN title TO heading")
    config = quick_config(tmp_path, inventory)
    stats = run_locust(LoadPlan(target_copy, config, source=False), tmp_path, "broken")
    results = slo.judge(stats, config, writes=False)
    assert "load.target.error_rate" in failed_ids(results)
    broken = stats.entries["documents_by_user"]
    assert broken.requests > 0 and broken.failures == broken.requests
    assert any('column "title" does not exist' in e["error"] for e in stats.errors)
    healthy = stats.entries[CHUNKS]
    assert healthy.requests > broken.requests / 2 and healthy.failures == 0


def test_distributed_run_merges_both_workers(
    seeded_source: Endpoint, inventory: Inventory, tmp_path: Path
) -> None:
    config = quick_config(tmp_path, inventory, users=4, spawn_rate=4)
    plan = LoadPlan(seeded_source, config, source=True, workers=2)
    stats = run_locust(plan, tmp_path, "distributed")
    assert len(stats.workers) == 2
    assert all(worker["requests"] > 0 for worker in stats.workers.values())
    assert sum(worker["requests"] for worker in stats.workers.values()) == stats.total.requests
    assert stats.error_rate == 0


def test_writes_never_reach_a_source(
    seeded_source: Endpoint, inventory: Inventory, target_copy: Endpoint, tmp_path: Path
) -> None:
    config = quick_config(tmp_path, inventory, writes=True)
    with pytest.raises(ConfigError, match="source"):
        LoadPlan(seeded_source, config, source=True, writes=True)
    named_target = Pair(seeded_source, replace(target_copy, ephemeral=False), inventory)
    settings = settings_with(tmp_path)
    with pytest.raises(ConfigError, match="--test-writes"):
        slo.target_writes(config, named_target, settings)
    assert slo.target_writes(config, named_target, replace(settings, test_writes=True))


def locust_cli(args: list[str], endpoint: Endpoint, cwd: Path) -> subprocess.CompletedProcess:
    env = {**endpoint.libpq_env(), "LOAD_TEST_PASSWORD": endpoint.password or ""}
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_standalone_cli_from_targets_toml(seeded_source: Endpoint, tmp_path: Path) -> None:
    (tmp_path / "targets.toml").write_text(
        "[targets.rehearsal]\n"
        f'dsn = "postgresql://{seeded_source.user}@{seeded_source.host}:{seeded_source.port}/'
        f'{seeded_source.dbname}"\npassword_env = "LOAD_TEST_PASSWORD"\n'
    )
    args = ["-u", "2", "-r", "2", "-t", "3s", "--csv", "run", "--pg-target", "rehearsal"]
    done = locust_cli([*args, "--pg-source"], seeded_source, tmp_path)
    summary = json.loads((tmp_path / "run_pgcutover.json").read_text())
    assert summary["total"]["requests"] > 0 and summary["total"]["failures"] == 0, done.stderr
    assert seeded_source.password not in done.stdout + done.stderr

    refused = locust_cli([*args, "--pg-source", "--pg-writes"], seeded_source, tmp_path)
    assert refused.returncode == 2
    assert "never writes to a migration source" in refused.stderr


@pytest.mark.slow
def test_latency_during_dump_is_measured_and_judged(
    seeded_source: Endpoint, settings: Settings, inventory: Inventory, tmp_path: Path
) -> None:
    config = quick_config(tmp_path, inventory)
    config = config.with_overrides(
        during_dump=replace(config.during_dump, baseline_seconds=3, min_dump_seconds=3)
    )
    measurement = during_dump.measure(seeded_source, config, settings, tmp_path, None)
    assert measurement.dumps and measurement.baseline and measurement.during
    result = during_dump.judge(measurement, config)
    assert result.status == "pass", result.message
    assert len(result.details["timeline"]) == len(measurement.dumps)
    assert result.details["series"]["lines"]["source"]
    strict = config.with_overrides(during_dump=replace(config.during_dump, max_slowdown=0.01))
    assert during_dump.judge(measurement, strict).status == "fail"
