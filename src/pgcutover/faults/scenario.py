"""Run one chaos scenario: migrate under a fault, heal it, let the checks judge, retry.

The property every scenario is held to: the first attempt ends either NO-GO naming what
broke, or GO with parity checked against the source as of the migration's snapshot (never
assumed); after the fault heals, a bounded retry converges to GO with no leftovers of the
failed attempt; and the source's content is the same before and after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from psycopg import sql

from pgcutover.catalog import user_tables
from pgcutover.checks import content, drift, registry
from pgcutover.checks.base import FAIL, PASS, CheckResult, Pair, failures, guarded
from pgcutover.checks.registry import Context, blocked_by
from pgcutover.config import Settings
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import seed
from pgcutover.db import Endpoint, connect
from pgcutover.errors import PgcutoverError
from pgcutover.faults.history import History
from pgcutover.faults.nemesis import Fault
from pgcutover.faults.network import through
from pgcutover.faults.proxy import FaultProxy
from pgcutover.inventory import Inventory, discover
from pgcutover.migrate.logical.cutover import STRATEGY, Cutover, rehearsal_writer
from pgcutover.migrate.logical.objects import clean_up_folder
from pgcutover.migrate.runner import MigrationResult, exported_snapshot, migrate
from pgcutover.migrate.tools import SESSION_OPTIONS
from pgcutover.providers import STARTERS, start_server
from pgcutover.providers.base import ControllableServer

AREA = "chaos"
SOURCE_DB = "chaos_source"
#: Ids of the content check's results (checks/content): the parity a GO needs.
PARITY_PREFIX = "content."
#: Inject before the migration starts (otherwise: as the named phase starts).
START = "start"
Expectation = Literal["survives", "fails", "either"]


@dataclass(frozen=True)
class Lab:
    """The suite's own servers: a seeded source (never written) and a target server."""

    source_server: ControllableServer
    target_server: ControllableServer
    source_db: str
    settings: Settings
    config: Mapping[str, Any]
    inventory: Inventory
    #: Where logical migrations record their replication objects for clean-up.
    records: Path

    @property
    def source(self) -> Endpoint:
        return self.source_server.endpoint.with_dbname(self.source_db)

    def fresh_database(self, server: ControllableServer, name: str, template: str = "") -> Endpoint:
        """Drop and create a database the suite owns (the recovery between attempts)."""
        self.drop_database(server, name)
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
        with connect(server.endpoint, role="admin") as admin:
            admin.execute(create)
        return server.endpoint.with_dbname(name)

    def drop_database(self, server: ControllableServer, name: str) -> None:
        """Drop a database on a server the suite started (never anyone else's)."""
        if not server.endpoint.ephemeral:
            raise ValueError(f"refusing to drop {name} on {server.label}: not created by us")
        with connect(server.endpoint, role="admin") as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def open_lab(base_dir: Path, settings: Settings) -> Iterator[Lab]:
    """Start the chaos suite's own PG16 source and PG18 target, seed a small source
    (fixtures/chaos.toml `rows`), and stop both servers at the end. The run's provider starts
    them (embedded or docker); runs on named environments only get embedded ones, as faults
    never touch a server pgcutover did not start."""
    config = settings.section("chaos")
    base_dir.mkdir(parents=True, exist_ok=True)
    if settings.provider not in STARTERS:
        settings = replace(settings, provider="embedded")
    source = start_server(settings, "source", base_dir / "source", "chaos source")
    try:
        target = start_server(settings, "target", base_dir / "target", "chaos target")
        try:
            embedder = Embedder(settings.embedding_model, settings.cache_dir)
            try:
                seed(source.endpoint, SOURCE_DB, int(config["rows"]), embedder)
            finally:
                embedder.close()
            database = source.endpoint.with_dbname(SOURCE_DB)
            with connect(database, role="source") as conn:
                inventory = discover(conn, settings)
            records = base_dir / "replication"
            records.mkdir(exist_ok=True)
            yield Lab(source, target, SOURCE_DB, settings, config, inventory, records)
        finally:
            target.stop()
    finally:
        source.stop()


@dataclass(frozen=True)
class Stage:
    """What a scenario's fault factory may act on during the first attempt."""

    lab: Lab
    source: Endpoint
    target: Endpoint
    source_proxy: FaultProxy
    target_proxy: FaultProxy


@dataclass(frozen=True)
class Scenario:
    """One fault, where it strikes, what the first attempt should do, and how to recover."""

    name: str
    kind: str
    summary: str
    make: Callable[[Stage], Fault]
    trigger: str = START
    #: Heal as this phase starts instead of when the migration ends (a writer that stops
    #: before the migration measures the drift).
    heal_at: str | None = None
    expect: Expectation = "either"
    #: Settings for the first attempt only (an operator's mistake the rerun corrects).
    first_attempt: Mapping[str, Any] = field(default_factory=dict)
    #: How the rerun starts: a recreated target database, or --allow-destructive's clean.
    recovery: Literal["recreate", "clean"] = "recreate"
    strategy: str | None = None
    #: True for scenarios that write to the source: they get a private copy of it.
    writes_source: bool = False
    verify: Callable[[Fault, Attempt], list[str]] | None = None


@dataclass
class Attempt:
    """One migration attempt and the checks' verdict on it."""

    number: int
    migration: MigrationResult
    results: list[CheckResult]
    target_changed: bool | None = None
    #: Replication objects a logical attempt left behind, removed after the heal.
    removed_after: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "NO-GO" if not self.results or failures(self.results) else "GO"

    @property
    def parity(self) -> list[CheckResult]:
        """The content check's results: parity as of the snapshot."""
        return [r for r in self.results if r.id.startswith(PARITY_PREFIX)]

    @property
    def parity_checked(self) -> bool:
        """True when the content check ran and every one of its results passed."""
        return bool(self.parity) and all(r.status == PASS for r in self.parity)

    def summary(self) -> dict[str, Any]:
        blocking = failures(self.results)
        return {
            "attempt": self.number,
            "migration_ok": self.migration.ok,
            "failed_phase": self.migration.failed_phase,
            "error": self.migration.error[:600] if self.migration.error else None,
            "remedy": self.migration.remedy,
            "verdict": self.verdict,
            "parity_checked": self.parity_checked,
            "blocking": [f"[{r.status}] {r.id}: {r.message[:160]}" for r in blocking[:8]],
            "target_changed_by_refusal": self.target_changed,
            "removed_after_the_attempt": self.removed_after,
            "phases": {p.name: p.seconds for p in self.migration.phases},
        }


@dataclass
class Outcome:
    """A finished scenario: its attempts, timeline, and the property's verdict."""

    scenario: Scenario
    attempts: list[Attempt]
    timeline: list[dict[str, Any]]
    source_drift: dict[str, dict[str, Any]] | None
    problems: list[str]

    @property
    def first(self) -> Attempt:
        return self.attempts[0]

    @property
    def holds(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        """'failed in phase data (...) -> NO-GO; rerun 2: GO', naming what blocked a survivor."""
        parts = []
        for attempt in self.attempts:
            if attempt.migration.ok:
                what = "migration survived"
            else:
                what = f"migration failed in phase {attempt.migration.failed_phase}"
            label = "under the fault" if attempt.number == 1 else f"rerun {attempt.number}"
            blocking = ", ".join(r.id for r in failures(attempt.results)[:4])
            because = f" ({blocking})" if attempt.migration.ok and blocking else ""
            parts.append(f"{label}: {what} -> {attempt.verdict}{because}")
        return "; ".join(parts)

    def to_check(self) -> CheckResult:
        """The scenario as one row of the sign-off report (area chaos)."""
        message = f"{self.scenario.summary}: {self.describe()}"
        if self.problems:
            message += " | PROPERTY VIOLATED: " + "; ".join(self.problems)
        return CheckResult(
            id=f"chaos.{self.scenario.name}",
            area=AREA,
            status=PASS if self.holds else FAIL,
            message=message,
            expected="NO-GO naming what broke, or GO with parity checked; a rerun converges to GO",
            actual=self.describe(),
            remedy="" if self.holds else "a fault passed silently or did not recover: see details",
            details={
                "timeline": self.timeline,
                "outcome": self.describe(),
                "attempts": [attempt.summary() for attempt in self.attempts],
                "source_unharmed": self.source_drift is not None
                and not drift.summary(self.source_drift),
                "kind": self.scenario.kind,
            },
        )


def judge(pair: Pair, settings: Settings, result: MigrationResult) -> list[CheckResult]:
    """The existing checks, on the healed target: parity is checked against the source as
    of the migration's snapshot (which the caller still holds). A failed migration is the one
    cause: the checks of the target then wait (registry cascade)."""
    blocked = blocked_by(result, pair.target, pair.inventory)
    context = Context(pair, settings, result, blocked, artefact=_no_artefacts)
    parity = (
        guarded(
            "content",
            "parity",
            lambda: content.compare(pair, settings, source_snapshot=result.snapshot),
            pair,
        )
        if blocked is None
        else registry.run("content", context)
    )
    return [
        *registry.run("migration", context),
        *parity,
        *registry.run("vector_dimensions", context),
        *registry.run("vector_index", context),
        *registry.run("drift", context),
        *registry.run("cutover", context),
    ]


def _no_artefacts(label: str, filename: str) -> Path:
    raise PgcutoverError(
        f"the chaos judge writes no artefacts (asked for {label}: {filename})",
        "report this as a bug",
    )


def _state(endpoint: Endpoint, settings: Settings) -> dict[str, Any]:
    """Tables with their row counts, and the server's roles: what a refusal must not touch.
    Read with statement_timeout off, as a fault may have set a tiny one."""
    with connect(endpoint, role="admin", options=SESSION_OPTIONS) as conn:
        roles = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles ORDER BY 1")]
        counts = {}
        for schema, table in user_tables(conn, settings.ignored_schemas):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            counts[f"{schema}.{table}"] = conn.execute(query).fetchone()[0]  # type: ignore[index]
    return {"tables": counts, "roles": roles}


@contextlib.contextmanager
def _proxies(lab: Lab) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    source = lab.source_server.endpoint
    target = lab.target_server.endpoint
    with (
        FaultProxy(upstream=(source.host, source.port)) as source_proxy,
        FaultProxy(upstream=(target.host, target.port)) as target_proxy,
    ):
        yield source_proxy, target_proxy


def _settings(lab: Lab, scenario: Scenario, number: int) -> Settings:
    overrides: dict[str, Any] = {"phase_timeout": float(lab.config["phase_timeout"])}
    if scenario.strategy:
        overrides["strategy"] = scenario.strategy
    if number == 1:
        overrides.update(scenario.first_attempt)
    elif scenario.recovery == "clean":
        overrides["allow_destructive"] = True
    return replace(lab.settings, **overrides)


def _attempt(
    lab: Lab,
    scenario: Scenario,
    number: int,
    source: Endpoint,
    target: Endpoint,
    history: History,
) -> tuple[Attempt, Fault | None]:
    """One migration through the proxies; on the first attempt the fault strikes."""
    settings = _settings(lab, scenario, number)
    span = history.open(f"attempt {number}", "attempt")
    fault: Fault | None = None
    phase_event: list[int] = []

    def on_phase(name: str) -> None:
        for handle in phase_event:
            history.close(handle)
        phase_event[:] = [history.open(name, "phase")]
        if fault is not None and scenario.heal_at == name:
            fault.heal(history)
        if fault is not None and scenario.trigger == name:
            fault.inject(history)

    with _proxies(lab) as (source_proxy, target_proxy):
        stage = Stage(lab, source, target, source_proxy, target_proxy)
        try:
            if number == 1:
                fault = scenario.make(stage)
                if scenario.trigger == START:
                    fault.inject(history)
            before = _state(target, settings)
            with exported_snapshot(source) as snapshot:
                try:
                    result = migrate(
                        through(source_proxy, source),
                        through(target_proxy, target),
                        settings,
                        lab.inventory,
                        on_phase=on_phase,
                        snapshot=snapshot,
                        cutover=_cutover(lab, settings, source),
                    )
                finally:
                    for handle in phase_event:
                        history.close(handle)
                    if fault is not None:
                        fault.heal(history)
                results = judge(Pair(source, target, lab.inventory), settings, result)
            removed = _clean_up(lab, history)
        finally:
            if fault is not None:
                fault.heal(history)
            history.close(span)
    attempt = Attempt(number, result, results, removed_after=removed)
    if result.failed_phase == "preflight":
        attempt.target_changed = _state(target, settings) != before
    history.mark(f"attempt {number}: {attempt.verdict}", "verdict")
    return attempt, fault


def _cutover(lab: Lab, settings: Settings, source: Endpoint) -> Cutover | None:
    """A logical attempt: the writer keeps writing to the source until the switchover, and
    the replication objects are recorded in the lab (no rollback proof in chaos)."""
    if settings.strategy != STRATEGY:
        return None
    return Cutover(record_dir=lab.records, writes=rehearsal_writer(source, settings))


def _clean_up(lab: Lab, history: History) -> list[str]:
    """Remove what a logical attempt left (its own clean-up could not reach a server)."""
    removed = [item for outcome in clean_up_folder(lab.records) for item in outcome.removed]
    if removed:
        history.mark(
            f"left by the attempt, removed after the heal: {', '.join(removed)}", "recovery"
        )
    return removed


def _problems(scenario: Scenario, attempts: list[Attempt], fault: Fault | None) -> list[str]:
    """Where the run broke the property (empty: it held)."""
    problems = []
    first, last = attempts[0], attempts[-1]
    for attempt in attempts:
        if attempt.verdict == "GO" and not (attempt.migration.ok and attempt.parity_checked):
            problems.append(f"attempt {attempt.number} is GO without parity checked and passed")
        if not attempt.migration.ok and attempt.verdict == "GO":
            problems.append(f"attempt {attempt.number}: the migration failed but the run is GO")
        if attempt.verdict == "NO-GO" and not failures(attempt.results):
            problems.append(f"attempt {attempt.number} is NO-GO without naming what broke")
        if attempt.target_changed:
            problems.append(
                f"attempt {attempt.number} refused in preflight but wrote to the target"
            )
    survived = first.migration.ok
    if scenario.expect == "survives" and not survived:
        problems.append(f"expected the migration to survive, it failed: {first.migration.error}")
    if scenario.expect == "fails" and survived:
        problems.append("expected the fault to break the migration, it survived (did it land?)")
    if last.verdict != "GO":
        problems.append(f"no GO after {len(attempts)} attempts")
    if scenario.verify is not None and fault is not None:
        problems += scenario.verify(fault, first)
    return problems


def run(lab: Lab, scenario: Scenario) -> Outcome:
    """Run `scenario` to its end: the faulted attempt, healing, reruns, and the property."""
    target_db = f"chaos_{scenario.name}"
    source = lab.source
    if scenario.writes_source:
        source = lab.fresh_database(lab.source_server, f"chaos_src_{scenario.name}", lab.source_db)
    attempts: list[Attempt] = []
    first_fault: Fault | None = None
    try:
        with exported_snapshot(lab.source) as before:
            target = lab.fresh_database(lab.target_server, target_db)
            history = History()
            for number in range(1, int(lab.config["attempts"]) + 1):
                if number > 1 and scenario.recovery == "recreate":
                    target = lab.fresh_database(lab.target_server, target_db)
                    history.mark("target database dropped and recreated", "recovery")
                attempt, fault = _attempt(lab, scenario, number, source, target, history)
                first_fault = first_fault or fault
                attempts.append(attempt)
                if attempt.verdict == "GO":
                    break
            unharmed = drift.measure(lab.source, before, lab.settings.ignored_schemas)
        source_drift = {name: asdict(table) for name, table in unharmed.items()}
    finally:
        clean_up_folder(lab.records)
        lab.drop_database(lab.target_server, target_db)
        if scenario.writes_source:
            lab.drop_database(lab.source_server, f"chaos_src_{scenario.name}")
    problems = _problems(scenario, attempts, first_fault)
    if drift.summary(source_drift):
        problems.append(f"the source changed: {drift.summary(source_drift)}")
    return Outcome(scenario, attempts, history.timeline(), source_drift, problems)
