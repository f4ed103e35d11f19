"""The logical cutover (--strategy=logical) against real servers: with the writer running it
ends with exact parity, zero drift, the rollback proved and nothing left on the source; a
skipped sequence step is caught by the sequence check; what cannot replicate is named before
anything is written; a slot left by a failure or a killed run is reported, then removed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from helpers import (
    REPO,
    by_id,
    clone_database,
    drop_database,
    execute,
    failed_ids,
    inventory_of,
    make_settings,
    pair_of,
)
from pgcutover.checks import content, cutover, migration, row_counts, schema
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connect
from pgcutover.errors import ConfigError
from pgcutover.faults.network import through
from pgcutover.faults.proxy import FaultProxy, Stall
from pgcutover.migrate.logical.cutover import Cutover, rehearsal_writer
from pgcutover.migrate.logical.objects import RECORD_GLOB, Replication, clean_up_folder
from pgcutover.migrate.runner import MigrationResult, migrate
from pgcutover.providers.embedded import start_embedded
from pgcutover.report.html import render
from pgcutover.report.model import RunReport

pytestmark = pytest.mark.slow

_names = itertools.count()


def logical_settings(folder: Path, **overrides: object) -> Settings:
    """--strategy=logical with a short streaming window (targets.toml [logical])."""
    (folder / "targets.toml").write_text("[logical]\nstream_seconds = 1.0\nsample_seconds = 0.1\n")
    return make_settings(folder, strategy="logical", **overrides)


@pytest.fixture
def source(source_server, seeded_source) -> Iterator[Endpoint]:
    """A private copy of the seeded source: the writer and the publication may change it."""
    name = f"logical_source_{os.getpid()}_{next(_names)}"
    yield clone_database(source_server, seeded_source.dbname, name)
    drop_database(source_server, name)


@pytest.fixture
def target(target_server) -> Iterator[Endpoint]:
    name = f"logical_target_{os.getpid()}_{next(_names)}"
    execute(target_server.endpoint, f"CREATE DATABASE {name}")
    yield target_server.endpoint.with_dbname(name)
    drop_database(target_server, name)


@pytest.fixture
def records(tmp_path) -> Iterator[Path]:
    """The folder the replication objects are recorded in; whatever a failing test left is
    removed before its databases are dropped."""
    folder = tmp_path / "records"
    folder.mkdir()
    yield folder
    clean_up_folder(folder)


def source_objects(source: Endpoint) -> list[tuple[str, ...]]:
    """Slots and publications in the source database."""
    with connect(source, role="admin") as conn:
        slots = conn.execute(
            "SELECT 'slot', slot_name FROM pg_replication_slots WHERE database = current_database()"
        ).fetchall()
        publications = conn.execute("SELECT 'publication', pubname FROM pg_publication").fetchall()
    return slots + publications


def test_with_the_writer_running_the_cutover_is_exact_and_leaves_nothing(
    source, target, records, tmp_path
):
    settings = logical_settings(tmp_path)

    @contextmanager
    def scratch() -> Iterator[Endpoint]:
        server = start_embedded("pg16", tmp_path / "scratch", "rollback scratch")
        try:
            execute(server.endpoint, "CREATE DATABASE restored")
            yield server.endpoint.with_dbname("restored")
        finally:
            server.stop()

    writer = rehearsal_writer(source, settings)
    plan = Cutover(record_dir=records, writes=writer, scratch=scratch)
    result = migrate(source, target, settings, inventory_of(source, settings), cutover=plan)
    assert result.ok, result.error
    evidence = result.logical
    assert evidence["writes"]["count"] > 50 and evidence["writes"]["error"] is None
    assert evidence["switchover"]["sequences_moved"]["public.query_log_id_seq"]["to"] > 1
    pair = pair_of(source, target, settings)
    parity = content.check(pair, settings) + row_counts.check(pair, settings)
    assert failed_ids(parity + schema.check(pair, settings)) == set()
    (gap,) = migration.drift(result)
    assert gap.status == "pass" and "zero drift" in gap.message, gap.message
    results = by_id(cutover.check(pair, settings, result))
    assert {r.status for r in results.values()} == {"pass"}, [r.message for r in results.values()]
    assert results["cutover.rollback"].message.startswith("rollback: proved by restoring")
    assert "dump/restore window" in results["cutover.downtime"].message
    samples = evidence["lag"]["samples"]
    assert len(samples) > 5 and any(sample["bytes"] for sample in samples)
    assert source_objects(source) == [] and list(records.glob(RECORD_GLOB)) == []
    with connect(target, role="admin") as conn:
        assert conn.execute("SELECT count(*) FROM pg_subscription").fetchone()[0] == 0
    report = RunReport(
        "run",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:01:00+00:00",
        {},
        {},
        result.to_json(),
        list(results.values()),
    )
    page = render(report, "digest")
    assert "id='cutover-summary'" in page and "rollback: proved by" in page
    assert page.count("data-kind='line'") == 2 and "Initial copy per table" in page


def test_a_skipped_sequence_step_is_caught_by_the_sequence_check(source, target, records, tmp_path):
    settings = logical_settings(tmp_path)
    plan = Cutover(record_dir=records, move_sequences=False)
    result = migrate(source, target, settings, inventory_of(source, settings), cutover=plan)
    assert result.ok, result.error
    pair = pair_of(source, target, settings)
    found = by_id(schema.check(pair, settings))
    sequence = found["schema.sequence.public.query_log_id_seq"]
    assert sequence.status == "fail" and "duplicate key" in sequence.message
    assert "setval" in sequence.remedy
    switchover = by_id(cutover.check(pair, settings, result))["cutover.switchover"]
    assert switchover.status == "fail" and "NOT moved" in switchover.message


def test_what_cannot_replicate_is_named_before_anything_is_written(
    source, target, records, tmp_path
):
    execute(source, "CREATE TABLE public.notes (body text)")
    execute(source, "CREATE UNLOGGED TABLE public.scratchpad (id int PRIMARY KEY)")
    settings = logical_settings(tmp_path)
    plan = Cutover(records)
    result = migrate(source, target, settings, inventory_of(source, settings), cutover=plan)
    assert result.failed_phase == "preflight", result.error
    assert "public.notes" in result.error and "replica identity" in result.error
    assert "unlogged" in result.error and "public.scratchpad" in result.error
    assert "REPLICA IDENTITY FULL" in result.remedy
    assert source_objects(source) == []
    with connect(target, role="admin") as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
            == 0
        )


def test_a_named_source_needs_the_writes_allowed_by_name(seeded_source, target, tmp_path):
    named = replace(seeded_source, ephemeral=False)
    settings = logical_settings(tmp_path)
    result = migrate(named, target, settings, inventory_of(named, settings))
    assert result.failed_phase == "preflight"
    assert "--allow-source-writes=publication,slot" in result.remedy
    (tmp_path / "targets.toml").write_text(
        f"[targets.dev]\nhost = '{named.host}'\nport = {named.port}\ndatabase = 'x'\nuser = 'u'\n"
    )
    values = {"source": "dev", "strategy": "logical"}
    with pytest.raises(ConfigError, match="--allow-source-writes=publication,slot"):
        make_settings(tmp_path, **values)
    with pytest.raises(ConfigError, match="never writes"):
        make_settings(tmp_path, allow_source_writes=("publication", "table"))
    allowed = make_settings(tmp_path, allow_source_writes=("publication", "slot"), **values)
    assert allowed.allow_source_writes == ("publication", "slot")


def test_wal_level_and_slots_are_explained_before_starting(tmp_path, target):
    server = start_embedded("pg16", tmp_path / "bare", "bare source")
    try:
        execute(server.endpoint, "CREATE TABLE t (id int PRIMARY KEY)")
        execute(server.endpoint, "ALTER SYSTEM SET wal_level = replica")
        execute(server.endpoint, "ALTER SYSTEM SET max_replication_slots = 1")
        server.stop()
        server.start()
        settings = logical_settings(tmp_path)
        result = migrate(server.endpoint, target, settings, inventory_of(server.endpoint, settings))
    finally:
        server.stop()
    assert result.failed_phase == "preflight"
    assert "wal_level = replica" in result.error
    assert "1 free replication slots, the copy needs 2" in result.error
    assert "wal_level = logical" in result.remedy and "max_replication_slots" in result.remedy


CHILD = """
import json, sys
from pathlib import Path
from pgcutover.db import Endpoint
from helpers import inventory_of, make_settings
from pgcutover.migrate.logical.cutover import Cutover
from pgcutover.migrate.runner import migrate
given = json.loads(Path(sys.argv[1]).read_text())
folder = Path(given["folder"])
(folder / "targets.toml").write_text("[logical]\\nstream_seconds = 600\\n")
settings = make_settings(folder, strategy="logical")
source = Endpoint.from_json(given["source"])
migrate(source, Endpoint.from_json(given["target"]), settings, inventory_of(source, settings),
        cutover=Cutover(record_dir=Path(given["records"])))
"""


def test_a_slot_left_by_a_killed_run_is_reported_then_removed(source, target, records, tmp_path):
    given = tmp_path / "given.json"
    given.write_text(
        json.dumps(
            {
                "source": asdict(source),
                "target": asdict(target),
                "folder": str(tmp_path),
                "records": str(records),
            }
        )
    )
    given.chmod(0o600)
    scratch = tmp_path / "tmp"  # what the SIGKILLed child cannot remove stays in tmp_path,
    scratch.mkdir()  # as a real run's temporary files stay in its run folder
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO / 'tests'}",
        "TMPDIR": str(scratch),
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(given)], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = list(records.glob(RECORD_GLOB))
            if found and Replication.load(found[0]).subscription_oid:
                break
            assert child.poll() is None, "the migration ended before it could be killed"
            time.sleep(0.2)
        time.sleep(1.0)  # let the copy finish and streaming begin
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    replication = Replication.load(next(records.glob(RECORD_GLOB)))
    assert ("slot", replication.name) in source_objects(source)
    killed = MigrationResult(
        strategy="logical", performed=True, ok=False, logical={"objects": replication.objects()}
    )
    settings = logical_settings(tmp_path)
    pair = pair_of(source, target, settings)
    left = by_id(cutover.check(pair, settings, killed))["cutover.source_left_clean"]
    assert left.status == "fail" and f"slot {replication.name}" in left.message
    assert "pg_drop_replication_slot" in left.remedy
    (outcome,) = clean_up_folder(records)
    assert outcome.failed == []
    assert f"slot {replication.name}" in outcome.removed
    assert f"subscription {replication.name}" in outcome.removed
    assert source_objects(source) == [] and list(records.glob(RECORD_GLOB)) == []
    after = by_id(cutover.check(pair, settings, killed))["cutover.source_left_clean"]
    assert after.status == "pass"


def test_a_slot_left_by_a_failure_is_reported_then_removed(source, target, records, tmp_path):
    settings = logical_settings(tmp_path, phase_timeout=4.0)
    with FaultProxy(upstream=(source.host, source.port)) as proxy:
        stalled = through(proxy, source)

        def stall(phase: str) -> None:
            if phase == "initial copy":
                proxy.add(Stall(), "both")

        inventory = inventory_of(source, settings)
        result = migrate(
            stalled, target, settings, inventory, on_phase=stall, cutover=Cutover(records)
        )
        # the stall lands in the copy, or, when the copy was quicker, in the catch-up after it
        assert result.failed_phase in ("initial copy", "catch up") and "stalled" in result.error
        failed = result.logical["clean_up"]["failed"]
        assert any("slot and publication" in item for item in failed), failed
        assert any("LEFT ON THE SERVERS" in note for note in result.notes)
        proxy.clear()
        (outcome,) = clean_up_folder(records)
    assert outcome.failed == [] and f"slot {result.logical['objects']['slot']}" in outcome.removed
    assert source_objects(source) == []
