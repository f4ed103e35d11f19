"""A zero-downtime cutover rehearsal (--strategy=logical): the guide's backup first, the schema
from it, a publication and a slot on the source, a subscription on the target that copies
every table and then streams what the source keeps writing, the indexes built before or
after the copy (fixtures/logical.toml `indexes`), a while of streaming with the lag sampled,
then the switchover. The publication, slot and subscription are removed at the end whatever
happens; the way back is proved from the backup.

The runner calls `replicate` where the dump/restore strategies dump and restore; it yields
a snapshot of the source exported right after the switchover, held while the runner measures
the drift (which must be zero: the writes stopped).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgcutover.catalog import user_tables
from pgcutover.config import Settings
from pgcutover.db import Endpoint
from pgcutover.errors import ConfigError, MigrationError
from pgcutover.faults.history import History
from pgcutover.faults.writer import ConcurrentWriter
from pgcutover.inventory import Inventory
from pgcutover.migrate.archive import (
    dump_custom,
    exported_snapshot,
    ownerless,
    restore,
    split_post_data,
)
from pgcutover.migrate.logical import objects, progress, rollback
from pgcutover.migrate.logical.switchover import switch_over
from pgcutover.migrate.tools import bounded
from pgcutover.providers.embedded import flavor_for

if TYPE_CHECKING:
    from pgcutover.migrate.runner import MigrationResult, _Timer

STRATEGY = "logical"
INDEX_TIMINGS = ("before", "after")
#: Post-data entries restored apart: the index builds (before or after the copy), and
#: materialized views, refreshed once their tables hold data.
GROUPS = {"indexes": ("INDEX ",), "refresh": ("MATERIALIZED VIEW DATA ",)}


@dataclass(frozen=True)
class Options:
    """fixtures/logical.toml, overridable in targets.toml [logical]."""

    indexes: str
    stream_seconds: float
    sample_seconds: float
    writer_pause_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        section = settings.section("logical")
        try:
            options = cls(
                indexes=str(section["indexes"]),
                stream_seconds=float(section["stream_seconds"]),
                sample_seconds=float(section["sample_seconds"]),
                writer_pause_seconds=float(section["writer_pause_seconds"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                f"[logical] settings are incomplete or not numbers: {error}",
                "see fixtures/logical.toml for the keys and their meaning",
            ) from None
        if options.indexes not in INDEX_TIMINGS or options.sample_seconds <= 0:
            raise ConfigError(
                f"[logical] indexes = {options.indexes!r}, sample_seconds = "
                f"{options.sample_seconds}",
                f"indexes is one of {', '.join(INDEX_TIMINGS)}; sample_seconds is positive",
            )
        return options


@dataclass(frozen=True)
class Cutover:
    """What the caller adds to a logical migration: where the replication objects are
    recorded for clean-up (the run's work folder; default: the migration's own temporary
    folder), the application's writes to stop at the switchover, a scratch server for the
    rollback proof, and whether to move the sequences (False only to prove that the
    sequence check catches the skipped step)."""

    record_dir: Path | None = None
    writes: ConcurrentWriter | None = None
    scratch: rollback.Scratch | None = None
    move_sequences: bool = True


def rehearsal_writer(source: Endpoint, settings: Settings) -> ConcurrentWriter:
    """The concurrent writer as the logical rehearsal runs it (on a source pgcutover made)."""
    return ConcurrentWriter(source, pause_s=Options.from_settings(settings).writer_pause_seconds)


class _Run:
    """One logical migration's phases, its history (the timeline) and its evidence."""

    def __init__(
        self,
        settings: Settings,
        timer: _Timer,
        on_phase: Callable[[str], None] | None,
        evidence: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.timer = timer
        self.on_phase = on_phase
        self.history = History()
        self.evidence = evidence

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.on_phase:
            self.on_phase(name)
        event = self.history.open(name, "phase")
        try:
            with self.timer.phase(name):
                yield
        finally:
            self.history.close(event)


def _stop(writes: ConcurrentWriter | None, history: History, evidence: dict[str, Any]) -> None:
    """Stop the writer (idempotent) and keep its tally."""
    if writes is None:
        return
    writes.heal(history)
    evidence["writes"] = {"count": writes.tally.writes, "error": writes.error}


@contextmanager
def replicate(
    source: Endpoint,
    target: Endpoint,
    settings: Settings,
    inventory: Inventory,
    timer: _Timer,
    result: MigrationResult,
    workdir: Path,
    *,
    cutover: Cutover,
    on_phase: Callable[[str], None] | None = None,
    snapshot: str | None = None,
    clean: bool = False,
) -> Iterator[str]:
    """Replicate and switch over; yields a source snapshot exported after the switchover.

    `snapshot`, when given, is held by the caller and the backup is dumped at it; `clean`
    drops what the schema restore is about to create (--allow-destructive)."""
    options = Options.from_settings(settings)
    evidence: dict[str, Any] = {"indexes": options.indexes}
    result.logical = evidence
    run = _Run(settings, timer, on_phase, evidence)
    name = f"pgcutover_{secrets.token_hex(4)}"
    record = (cutover.record_dir or workdir) / f"{objects.RECORD_GLOB.replace('*', name)}"
    replication = objects.Replication(name, source, target, record)
    evidence["objects"] = replication.objects()
    with ExitStack() as stack:
        if cutover.writes is not None:
            cutover.writes.inject(run.history)
            stack.callback(_stop, cutover.writes, run.history, evidence)
        backup_snapshot = snapshot or stack.enter_context(exported_snapshot(source))
        with bounded(source, "source", "backup", settings.phase_timeout) as conn:
            flavor = flavor_for(conn.info.server_version)
        backup, schema = workdir / "backup.pgc", workdir / "schema.pgc"
        with run.phase("backup"):
            dump_custom(source, backup_snapshot, settings, backup, "backup", flavor=flavor)
        _build_schema(run, source, target, backup_snapshot, schema, clean)
        lists = split_post_data(schema, workdir, GROUPS)
        _restore_list(run, target, schema, lists["rest"], "constraints")
        if options.indexes == "before":
            _restore_list(run, target, schema, lists["indexes"], "index build")
        try:
            _stream(run, replication, options, schema, lists, cutover)
            switched = stack.enter_context(exported_snapshot(source))
        finally:
            outcome = objects.clean_up(replication)
            evidence["objects"] = replication.objects()
            evidence["clean_up"] = outcome.to_json()
            evidence["timeline"] = run.history.timeline()
            if outcome.failed:
                result.notes.append(
                    "LEFT ON THE SERVERS, remove by hand: " + "; ".join(outcome.failed)
                )
        yield switched
        if cutover.scratch is None:
            evidence["rollback"] = {
                "proved": False,
                "attempted": False,
                "reason": "no scratch server to restore the backup into was given",
            }
        else:
            evidence["rollback"] = rollback.prove(
                source, inventory, backup_snapshot, backup, settings, cutover.scratch, flavor
            )
        evidence["downtime"] = _downtime(result, evidence)


def _build_schema(
    run: _Run, source: Endpoint, target: Endpoint, snapshot: str, schema: Path, clean: bool
) -> None:
    """The schema first: dumped by the newest pg_dump (as every strategy does), its pre-data
    restored; with `clean`, dropping what it is about to create."""
    cleaning = ["--clean", "--if-exists"] if clean else []
    with run.phase("schema"):
        dump_custom(source, snapshot, run.settings, schema, "schema", ["--schema-only"])
        options = ["--section=pre-data", *cleaning, *ownerless(run.settings)]
        restore(target, schema, run.settings, "schema", options)


def _restore_list(
    run: _Run, target: Endpoint, schema: Path, listed: Path | None, phase: str
) -> None:
    """Restore the post-data entries of one list, in parallel (none: no phase)."""
    if listed is None:
        return
    with run.phase(phase):
        options = [f"--use-list={listed}", f"--jobs={run.settings.jobs}"]
        restore(target, schema, run.settings, phase, [*options, *ownerless(run.settings)])


def _stream(
    run: _Run,
    replication: objects.Replication,
    options: Options,
    schema: Path,
    lists: dict[str, Path | None],
    cutover: Cutover,
) -> None:
    """Publication, subscription, initial copy, indexes, catch-up, streaming, switchover."""
    settings, evidence = run.settings, run.evidence
    timeout = settings.phase_timeout
    with bounded(replication.source, "source", "publication", timeout) as conn:
        tables = user_tables(conn, settings.ignored_schemas)
    with run.phase("publication"):
        objects.create_publication(replication, tables, timeout)
    sampler = progress.LagSampler(
        replication.source, replication.name, options.sample_seconds, run.history.now
    )
    sampler.start()
    try:
        with run.phase("subscription"):
            objects.create_subscription(replication, timeout)
        evidence["objects"] = replication.objects()
        with run.phase("initial copy"):
            evidence["initial_copy"] = progress.wait_for_copy(
                replication.target, replication.subscription_oid or 0, timeout, run.history.now
            )
        if options.indexes == "after":
            _restore_list(run, replication.target, schema, lists["indexes"], "index build")
        _restore_list(run, replication.target, schema, lists["refresh"], "refresh")
        with run.phase("catch up"):
            _catch_up(replication, timeout)
        evidence["ready_seconds"] = _ready_seconds(run)
        with run.phase("streaming"):
            _keep_streaming(replication, options, cutover, timeout)
        with run.phase("switchover"):
            evidence["switchover"] = switch_over(
                replication,
                settings,
                lambda: _stop(cutover.writes, run.history, evidence),
                move=cutover.move_sequences,
            )
    finally:
        samples = sampler.stop()
        evidence["lag"] = {"samples": samples, **progress.summary(samples)}


def _catch_up(replication: objects.Replication, timeout: float) -> None:
    """Wait until the target has applied what the source had written when this started."""
    until = progress.written(replication.source, "catch up")
    progress.wait_applied(replication.source, replication.name, until, timeout, "catch up")


def _keep_streaming(
    replication: objects.Replication, options: Options, cutover: Cutover, timeout: float
) -> None:
    """Let the target follow the writes for a while, as it would until the operator's
    window; a writer that died meanwhile is a failed rehearsal, not a quiet pass."""
    time.sleep(options.stream_seconds)
    if cutover.writes is not None and cutover.writes.error:
        raise MigrationError(
            f"the rehearsal's writer stopped during streaming: {cutover.writes.error}",
            "read the error; the source must accept writes for the rehearsal",
            phase="streaming",
        )


#: The phases that build the target, whose sum the index timing is chosen by.
BUILD_PHASES = (
    "schema",
    "constraints",
    "index build",
    "publication",
    "subscription",
    "initial copy",
    "refresh",
    "catch up",
)


def _ready_seconds(run: _Run) -> float:
    """Seconds from the schema to a target that is complete and caught up."""
    return round(sum(p.seconds for p in run.timer.result.phases if p.name in BUILD_PHASES), 3)


def _downtime(result: MigrationResult, evidence: dict[str, Any]) -> dict[str, Any]:
    """The switchover's write pause beside the dump/restore window of the same database."""
    backup = next((p.seconds for p in result.phases if p.name == "backup"), None)
    restored = evidence["rollback"].get("restore_seconds")
    pause = (evidence.get("switchover") or {}).get("write_pause_seconds")
    window = round(backup + restored, 3) if backup is not None and restored is not None else None
    return {
        "write_pause_seconds": pause,
        "dump_seconds": backup,
        "restore_seconds": restored,
        "dump_restore_seconds": window,
    }
