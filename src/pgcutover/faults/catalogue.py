"""Every chaos scenario: the faults real cutovers meet, where they strike, what to expect.

`expect` says what the first attempt should do when the fault lands ("fails": the migration
must fail and the run be NO-GO; "survives": the migration must complete and parity hold);
a scenario whose fault did not land therefore shows up as a violation, not a quiet pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pgcutover.config import Settings
from pgcutover.db import Endpoint, connect
from pgcutover.faults.history import History
from pgcutover.faults.nemesis import Fault, Together
from pgcutover.faults.network import NetworkFault
from pgcutover.faults.proxy import Bandwidth, Latency, ResetPeer, Slicer, Stall, Toxic
from pgcutover.faults.scenario import Attempt, Scenario, Stage
from pgcutover.faults.server import (
    APPLYING,
    COPYING,
    Busy,
    DatabaseSetting,
    KillServer,
    LockTable,
    PauseServer,
    SmallDisk,
    TerminateBackend,
)
from pgcutover.faults.writer import ConcurrentWriter
from pgcutover.inventory import Inventory
from pgcutover.migrate.runner import migrate

#: Phases a fault can strike at (on_phase names; the dump is its own phase unless plain).
DATA, DUMP, SCHEMA, INDEXES = "data", "dump", "schema", "index build"
#: ... and the logical strategy's (migrate/logical/cutover.py).
SUBSCRIPTION, STREAMING, SWITCHOVER = "subscription", "streaming", "switchover"
Verify = Callable[[Fault, Attempt], list[str]]
#: A folder no server has: extension_control_path pointed at it hides every extension.
NO_EXTENSIONS_HERE = "/nonexistent/pgcutover-no-extensions"


def _toxic(name: str, settings: Mapping[str, Any]) -> Toxic:
    """The toxic called `name`, sized from fixtures/chaos.toml [network]."""
    if name == "latency":
        return Latency(settings["latency_ms"], settings["jitter_ms"])
    if name == "bandwidth":
        return Bandwidth(settings["bandwidth_bytes_per_second"])
    if name == "reset":
        return ResetPeer(settings["reset_after_bytes"])
    if name == "stall":
        return Stall()
    return Slicer(**settings["slicer"])


def _network(toxic: str, side: str) -> Callable[[Stage], Fault]:
    """A factory for a toxic on the path to the source (the dump) or the target (the restore)."""

    def make(stage: Stage) -> Fault:
        settings = stage.lab.config["network"]
        proxy = stage.source_proxy if side == "source" else stage.target_proxy
        bulk = "downstream" if side == "source" else "upstream"
        direction = bulk if toxic in ("bandwidth", "reset") else "both"
        instance = _toxic(toxic, settings)
        return NetworkFault(proxy, instance, direction, f"{side} path: {instance!r} ({direction})")

    return make


def _stalled_in(phase: str) -> Verify:
    def verify(fault: Fault, attempt: Attempt) -> list[str]:
        error = attempt.migration.error or ""
        if attempt.migration.failed_phase != phase or "stalled" not in error:
            return [f"expected phase {phase!r} reported as stalled, got: {error[:200]}"]
        return []

    return verify


@dataclass
class PreviousMigration:
    """The target already holds the schema: an earlier migration ran into it, and someone
    has since deleted and added rows there (so only a real clean restore gives parity)."""

    source: Endpoint
    target: Endpoint
    settings: Settings
    inventory: Inventory

    def inject(self, history: History) -> None:
        result = migrate(self.source, self.target, self.settings, self.inventory)
        if not result.ok:
            raise RuntimeError(f"could not prepare the stale target: {result.error}")
        with connect(self.target, role="admin") as conn:
            conn.execute(
                "DELETE FROM public.vector_embeddings WHERE id IN "
                "(SELECT id FROM public.vector_embeddings ORDER BY id LIMIT 5)"
            )
            conn.execute("UPDATE public.documents SET title = 'stale'")
        history.mark("target already holds the schema and stale rows", "operator")

    def heal(self, history: History) -> None:
        return None  # the stale tables are the operator's state; the rerun cleans them


@dataclass
class Misconfiguration:
    """The operator's mistake lives in the settings of the first attempt; nothing to inject."""

    what: str

    def inject(self, history: History) -> None:
        history.mark(self.what, "operator")

    def heal(self, history: History) -> None:
        return None


def _refused_with(*phrases: str) -> Verify:
    def verify(fault: Fault, attempt: Attempt) -> list[str]:
        problems = []
        if attempt.migration.failed_phase != "preflight":
            problems.append(
                f"expected a preflight refusal, failed in {attempt.migration.failed_phase}"
            )
        text = f"{attempt.migration.error} {attempt.migration.remedy}"
        problems += [f"the refusal does not mention {p!r}" for p in phrases if p not in text]
        return problems

    return verify


def _writer_drift(fault: Fault, attempt: Attempt) -> list[str]:
    """The drift the migration measured is exactly what the writer did after the snapshot."""
    assert isinstance(fault, ConcurrentWriter)
    if fault.error:
        return [f"the writer failed: {fault.error}"]
    if fault.tally.writes == 0:
        return ["the writer wrote nothing during the dump"]
    measured = attempt.migration.drift or {}
    expected = fault.tally.expected()
    problems = []
    for table, numbers in measured.items():
        want = expected.get(table, {"added": 0, "changed": 0, "deleted": 0})
        got = {key: numbers[key] for key in ("added", "changed", "deleted")}
        if got != want:
            problems.append(f"drift of {table}: measured {got}, the writer did {want}")
    return problems


def _index_build_outlasts(fault: Fault, attempt: Attempt) -> list[str]:
    """The setting only proves something if the index build took longer than it allows."""
    assert isinstance(fault, DatabaseSetting)
    seconds = {p.name: p.seconds for p in attempt.migration.phases}.get(INDEXES, 0.0)
    limit_ms = float(fault.value.removesuffix("ms"))
    if seconds * 1000 <= limit_ms:
        return [f"the index build took {seconds * 1000:.0f} ms, not over {fault.value}"]
    return []


def _network_scenarios() -> list[Scenario]:
    cases = [
        ("latency", "survives", "latency and jitter"),
        ("bandwidth", "survives", "a bandwidth cap"),
        ("reset", "fails", "a connection reset after N bytes"),
        ("stall", "fails", "a stall that never answers"),
        ("slicer", "survives", "data sliced into tiny segments"),
    ]
    scenarios = []
    for side, phase in (("target", DATA), ("source", DUMP)):
        for toxic, expect, words in cases:
            scenarios.append(
                Scenario(
                    name=f"network_{side}_{toxic}",
                    kind="network",
                    summary=f"{words} on the {side} path during the {phase} phase",
                    make=_network(toxic, side),
                    trigger=phase,
                    expect=expect,  # type: ignore[arg-type]
                    verify=_stalled_in(phase) if toxic == "stall" else None,
                )
            )
    return scenarios


def _mid_restore(stage: Stage, fault: Fault) -> Fault:
    """`fault` plus a bandwidth cap on the target path, so the data phase lasts long enough
    for the fault to land in the middle of it, not after it."""
    cap = Bandwidth(int(stage.lab.config["network"]["bandwidth_bytes_per_second"]))
    slow = NetworkFault(stage.target_proxy, cap, "upstream", f"target path: {cap!r} (slows)")
    return Together(slow, fault)


def _server_scenarios() -> list[Scenario]:
    def target_db(stage: Stage) -> str:
        return stage.target.dbname

    return [
        Scenario(
            name="server_terminate_backend",
            kind="server",
            summary="the restore's backend terminated mid-way (pg_terminate_backend)",
            make=lambda s: _mid_restore(
                s, TerminateBackend(s.lab.target_server.endpoint, target_db(s))
            ),
            trigger=DATA,
            expect="fails",
        ),
        Scenario(
            name="server_kill_restart",
            kind="server",
            summary="the target postmaster SIGKILLed mid-restore, then restarted",
            make=lambda s: _mid_restore(
                s,
                KillServer(
                    s.lab.target_server,
                    target_db(s),
                    float(s.lab.config["server"]["down_seconds"]),
                ),
            ),
            trigger=DATA,
            expect="fails",
        ),
        Scenario(
            name="server_pause_resume",
            kind="server",
            summary="the target server paused (SIGSTOP, or docker pause), then resumed",
            make=lambda s: PauseServer(
                s.lab.target_server,
                float(s.lab.config["server"]["pause_seconds"]),
            ),
            trigger=DATA,
            expect="survives",
        ),
        Scenario(
            name="server_lock_held",
            kind="server",
            summary="a session holds ACCESS EXCLUSIVE on a table the restore loads",
            make=lambda s: LockTable(s.target, "public.vector_embeddings"),
            trigger=DATA,
            expect="fails",
            verify=_stalled_in(DATA),
        ),
        Scenario(
            name="server_statement_timeout",
            kind="server",
            summary="the target database's statement_timeout is shorter than the index build",
            make=lambda s: DatabaseSetting(
                s.lab.target_server.endpoint,
                target_db(s),
                "statement_timeout",
                str(s.lab.config["server"]["statement_timeout"]),
            ),
            expect="survives",
            verify=_index_build_outlasts,
        ),
        Scenario(
            name="server_disk_full",
            kind="server",
            summary="the target's disk fills up mid-restore (small tmpfs tablespace)",
            make=lambda s: SmallDisk(
                s.lab.target_server,
                target_db(s),
                int(s.lab.config["server"]["disk_headroom_bytes"]),
            ),
            expect="fails",
        ),
    ]


def _source_scenarios() -> list[Scenario]:
    return [
        Scenario(
            name=f"source_writes_{strategy}",
            kind="source",
            summary=f"a writer inserts, updates and deletes source rows during the dump "
            f"({strategy}); parity as of the snapshot, drift = the writer's tally",
            make=lambda s: ConcurrentWriter(s.source),
            trigger=DUMP if strategy == "custom" else SCHEMA,
            heal_at=INDEXES,
            expect="survives",
            strategy=strategy,
            writes_source=True,
            verify=_writer_drift,
        )
        for strategy in ("custom", "plain")
    ]


def _operator_scenarios() -> list[Scenario]:
    clash = [
        Scenario(
            name=f"operator_schema_exists_{strategy}",
            kind="operator",
            summary=f"the target already holds the schema ({strategy}); the rerun uses "
            "--allow-destructive (--clean --if-exists)",
            make=lambda s: PreviousMigration(s.source, s.target, s.lab.settings, s.lab.inventory),
            expect="fails",
            recovery="clean",
            strategy=strategy,
            verify=_refused_with("empty database", "--allow-destructive", "nothing was written"),
        )
        for strategy in ("plain", "custom", "directory")
    ]
    return [
        *clash,
        Scenario(
            name="operator_missing_vector",
            kind="operator",
            summary="the target lacks the vector extension (extension_control_path emptied)",
            make=lambda s: DatabaseSetting(
                s.lab.target_server.endpoint,
                s.target.dbname,
                "extension_control_path",
                NO_EXTENSIONS_HERE,
            ),
            expect="fails",
            verify=_refused_with("pgvector", "pg_available_extensions"),
        ),
        Scenario(
            name="operator_vector_dimensions",
            kind="operator",
            summary="the target app is configured with VECTOR_DB_DIMENSIONS=768",
            make=lambda s: Misconfiguration("target configured with VECTOR_DB_DIMENSIONS=768"),
            first_attempt={"vector_dimensions": 768},
            expect="fails",
            verify=_refused_with("VECTOR_DB_DIMENSIONS=768", "384"),
        ),
    ]


def _reconnected(fault: Fault, attempt: Attempt) -> list[str]:
    """The reset landed: the target lost its replication connection while it streamed."""
    evidence = attempt.migration.logical or {}
    start = next((e["start"] for e in evidence.get("timeline", []) if e["name"] == STREAMING), None)
    samples = (evidence.get("lag") or {}).get("samples", [])
    if start is None:
        return ["the migration never reached the streaming phase"]
    if all(sample["streaming"] for sample in samples if sample["t"] >= start):
        return ["the replication connection never dropped while streaming: the reset missed"]
    return []


def _left_then_removed(phase: str) -> Verify:
    """Stalled in `phase`; the slot its clean-up could not reach was reported by the checks,
    then removed once the network healed."""
    stalled = _stalled_in(phase)

    def verify(fault: Fault, attempt: Attempt) -> list[str]:
        problems = stalled(fault, attempt)
        left = [r for r in attempt.results if r.id == "cutover.source_left_clean"]
        if not left or left[0].status != "fail":
            problems.append("the slot the failed attempt left on the source was not reported")
        if not any(item.startswith("slot ") for item in attempt.removed_after):
            problems.append("the slot the failed attempt left was not removed after the heal")
        return problems

    return verify


def _slow_copy(stage: Stage, fault: Fault) -> Fault:
    """`fault` plus a bandwidth cap on the replication path, so the initial copy lasts long
    enough for the fault to land in it."""
    cap = Bandwidth(int(stage.lab.config["network"]["bandwidth_bytes_per_second"]))
    slow = NetworkFault(stage.source_proxy, cap, "downstream", f"source path: {cap!r} (slows)")
    return Together(slow, fault)


def _replication_scenarios() -> list[Scenario]:
    """Faults while the target replicates: the path to the source reset or stalled, the
    target killed while it copies and while it streams. The source keeps writing."""

    def kill(stage: Stage, busy: Busy) -> KillServer:
        down = float(stage.lab.config["server"]["down_seconds"])
        return KillServer(stage.lab.target_server, stage.target.dbname, down, busy=busy)

    logical = {"strategy": "logical", "writes_source": True}
    return [
        Scenario(
            name="replication_reset",
            kind="replication",
            summary="the replication connection reset after N bytes, every time, while the "
            "target streams; healed at the switchover",
            make=_network("reset", "source"),
            trigger=STREAMING,
            heal_at=SWITCHOVER,
            expect="survives",
            verify=_reconnected,
            **logical,  # type: ignore[arg-type]
        ),
        Scenario(
            name="replication_stall",
            kind="replication",
            summary="the path to the source stalled while the target streams, through the "
            "switchover",
            make=_network("stall", "source"),
            trigger=STREAMING,
            expect="fails",
            verify=_left_then_removed(SWITCHOVER),
            **logical,  # type: ignore[arg-type]
        ),
        Scenario(
            name="replication_target_restart_copy",
            kind="replication",
            summary="the target postmaster SIGKILLed while a table is copied, then restarted",
            make=lambda s: _slow_copy(s, kill(s, COPYING)),
            trigger=SUBSCRIPTION,
            expect="survives",
            **logical,  # type: ignore[arg-type]
        ),
        Scenario(
            name="replication_target_restart_streaming",
            kind="replication",
            summary="the target postmaster SIGKILLed while it streams, then restarted",
            make=lambda s: kill(s, APPLYING),
            trigger=STREAMING,
            expect="survives",
            **logical,  # type: ignore[arg-type]
        ),
    ]


SCENARIOS: tuple[Scenario, ...] = (
    *_network_scenarios(),
    *_server_scenarios(),
    *_source_scenarios(),
    *_operator_scenarios(),
    *_replication_scenarios(),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
