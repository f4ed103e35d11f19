"""The pytest plugin: options, the run session, fixtures, and the sign-off at the end."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import xml_key

from pgcutover import plan, progress, runfolder, scratch
from pgcutover.checks import registry
from pgcutover.checks.base import UNKNOWN as STATUS_UNKNOWN
from pgcutover.checks.base import CheckResult, Pair, describe, failures
from pgcutover.config import OPTIONS, Environment, Settings, build_settings, resolve_environment
from pgcutover.db import DataRole, Endpoint, connection
from pgcutover.environment import (
    RunEnvironment,
    load_environment,
    open_sides,
    provisioning_error,
    shared_environment,
    stop_servers,
)
from pgcutover.environment import (
    describe as describe_endpoint,
)
from pgcutover.errors import ConfigError, PgcutoverError
from pgcutover.identity import refuse_same_database
from pgcutover.migrate.logical.objects import clean_up_folder
from pgcutover.providers import SIDE_FLAVORS
from pgcutover.providers.embedded import SHIPS
from pgcutover.report import pytesthtml
from pgcutover.report.model import RunReport
from pgcutover.report.terminal import TerminalProgress, report_line, summary_lines, verdict_line
from pgcutover.report.writer import latest_verdict, mirror_latest, slug, write_report

SESSION_PLUGIN = "pgcutover-session"
JUNIT = "junit.xml"
RESULTS_DIR = "results"
SELECTION_FILE = "selection.json"
#: The family a chaos-only run (`-m chaos`) must report instead of the sign-off's families.
CHAOS = "chaos"
#: Exit code of a run refused before any test (unreachable, the source under another name).
EXIT_REFUSED = 3
_PREVIOUS_DISPLAY = pytest.StashKey[progress.Display | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every setting as a CLI option and an ini key, from the one table in config.py."""
    group = parser.getgroup("pgcutover", "pgcutover migration rehearsal")
    for option in OPTIONS:
        value: dict[str, Any] = {"action": "store_true"} if option.is_switch else {}
        choices = f"one of: {', '.join(option.choices)}; " if option.choices else ""
        group.addoption(
            option.flag,
            dest=f"pgcutover_{option.name}",
            default=None,
            help=f"{option.help} [{choices}ini: {option.ini}; default: {option.default!r}]",
            **value,
        )
        parser.addini(option.ini, help=option.help, default=None)
    group.addoption(
        "--migrate",
        dest="pgcutover_migrate",
        action="store_true",
        default=None,
        help="perform the migration (default for targets pgcutover creates; a named "
        "target also needs --allow-destructive)",
    )
    group.addoption(
        "--no-migrate",
        dest="pgcutover_migrate",
        action="store_false",
        help="verify an already-migrated target (default for named targets)",
    )
    group.addoption(
        "--allow-destructive",
        dest="pgcutover_allow_destructive",
        action="store_true",
        default=False,
        help="allow writing into a target pgcutover did not create",
    )


def _option_values(config: pytest.Config) -> dict[str, Any]:
    """CLI value, else ini value, else the default; both validated by Option.parse (a bad
    value is a ConfigError naming where it came from)."""
    values = {}
    for option in OPTIONS:
        cli = config.getoption(f"pgcutover_{option.name}")
        ini = config.getini(option.ini)
        if option.is_switch and cli:
            values[option.name] = True
        elif cli is not None:
            values[option.name] = option.parse(cli, f"{option.flag}={cli}")
        elif ini not in (None, "", []):
            where = config.inipath.name if config.inipath else "the ini file"
            values[option.name] = option.parse(ini, f"{option.ini} = {ini!r} in {where}")
        else:
            values[option.name] = option.default
    return values


@dataclass
class RunSession:
    """Per-process state of one run; the owner process also writes the report."""

    config: pytest.Config
    settings: Settings
    run_id: str
    workdir: Path
    owner: bool
    started_at: str
    _environment: RunEnvironment | None = None
    _error: PgcutoverError | None = None
    report_paths: dict[str, Path] | None = None
    report: RunReport | None = None
    refused: PgcutoverError | None = None

    @property
    def worker_id(self) -> str:
        return os.environ.get("PYTEST_XDIST_WORKER", "main")

    @property
    def run_dir(self) -> Path:
        return self.settings.reports_dir / self.run_id

    def environment(self) -> RunEnvironment:
        """The shared environment, provisioned on first use by whichever process gets there."""
        if self._error is not None:
            raise self._error
        if self._environment is None:
            runfolder.keep_temporary_files_in(self.workdir)
            try:
                self._environment = shared_environment(self.settings, self.workdir)
            except PgcutoverError as error:
                self._error = error
                raise
        return self._environment

    def record(self, results: list[CheckResult], family: str | None = None) -> list[CheckResult]:
        """Append results (and, when given, that `family` reported) to this worker's file;
        the owner merges all files at the end."""
        folder = self.workdir / RESULTS_DIR
        folder.mkdir(exist_ok=True)
        with (folder / f"{self.worker_id}.jsonl").open("a") as handle:
            for result in results:
                handle.write(json.dumps(result.to_json(), default=str) + "\n")
            if family is not None:
                handle.write(json.dumps({"family": family}) + "\n")
        return results

    def artefact(self, label: str, filename: str) -> Path:
        """A path inside reports/<run_id>/ for a file to link from the sign-off (locust's
        report, data docs, screenshots); the link is listed under `label`."""
        path = self.run_dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "artefacts.jsonl").open("a") as handle:
            handle.write(json.dumps({"label": label, "path": filename}) + "\n")
        return path

    def artefacts(self) -> dict[str, str]:
        """Every worker's artefacts, label -> path relative to the run folder."""
        path = self.workdir / "artefacts.jsonl"
        if not path.exists():
            return {}
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        return {entry["label"]: entry["path"] for entry in entries}

    def _lines(self) -> list[dict[str, Any]]:
        folder = self.workdir / RESULTS_DIR
        paths = sorted(folder.glob("*.jsonl")) if folder.exists() else []
        return [json.loads(line) for path in paths for line in path.read_text().splitlines()]

    def recorded(self) -> list[CheckResult]:
        """Every worker's results; a check recorded twice keeps its last result."""
        merged: dict[str, CheckResult] = {}
        for entry in self._lines():
            if "family" not in entry:
                result = CheckResult.from_json(entry)
                merged[result.id] = result
        return list(merged.values())

    def reported_families(self) -> set[str]:
        """The check families that ran to the end in any worker."""
        return {entry["family"] for entry in self._lines() if "family" in entry}

    def required_families(self) -> tuple[str, ...]:
        """What this run must report before it may say GO: every sign-off family, or the
        chaos scenarios when the run selected only those (`-m chaos`)."""
        path = self.workdir / SELECTION_FILE
        chaos_only = path.exists() and json.loads(path.read_text())["chaos_only"]
        return (CHAOS,) if chaos_only else registry.NAMES

    def rehearsed(self) -> bool:
        """True when this run provisioned or checked anything (unit-test runs write nothing)."""
        return (self.workdir / "environment.json").exists() or (self.workdir / RESULTS_DIR).exists()


def _run_label(settings: Settings) -> str:
    """The run folder's label: the target's name as a safe slug (never a path)."""
    return slug(settings.target.name) if settings.target else "rehearsal"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Resolve settings once; bad configuration is a usage error, not a traceback.
    Runs first so pytest-html and junitxml see the report paths set here."""
    config.addinivalue_line("markers", "pgcutover: a check of the migration rehearsal")
    try:
        settings = build_settings(
            _option_values(config),
            migrate=config.getoption("pgcutover_migrate"),
            allow_destructive=config.getoption("pgcutover_allow_destructive"),
            rootdir=config.rootpath,
        )
    except ConfigError as error:
        raise pytest.UsageError(str(error)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        run_id = workerinput["pgcutover_run_id"]
        workdir = Path(workerinput["pgcutover_workdir"])
        started_at = workerinput["pgcutover_started_at"]
    else:
        now = datetime.now(UTC)
        started_at = now.isoformat(timespec="seconds")
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{_run_label(settings)}-{secrets.token_hex(2)}"
        for line in runfolder.clean_stale(_stop_dead_run):
            config.issue_config_time_warning(pytest.PytestWarning(f"pgcutover: {line}"), 2)
        workdir = runfolder.create()
        runfolder.end_on_signals()
        if config.option.xmlpath is None:
            config.option.xmlpath = str(workdir / JUNIT)
    session = RunSession(config, settings, run_id, workdir, workerinput is None, started_at)
    config.pluginmanager.register(session, SESSION_PLUGIN)
    if session.owner:
        pytesthtml.request_report(config, lambda: _report_folders(session))
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHandOff(session), "pgcutover-xdist")


def _progress_display(config: pytest.Config) -> TerminalProgress | None:
    """Progress of long work through the terminal reporter; none under -q or where no
    terminal reporter writes (an xdist worker's output is not shown)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.get_verbosity() < 0:
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")
    return TerminalProgress(reporter, capture, live=bool(reporter.isatty()))


class _XdistHandOff:
    """Tell xdist workers the run id and the shared work folder."""

    def __init__(self, session: RunSession) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["pgcutover_run_id"] = self.session.run_id
        node.workerinput["pgcutover_workdir"] = str(self.session.workdir)
        node.workerinput["pgcutover_started_at"] = self.session.started_at


def _report_folders(run: RunSession) -> list[Path]:
    """Where files finished after the sign-off go: the run's folder and reports/latest."""
    if run.report_paths is None:
        return []
    return [run.run_dir, run.run_dir.parent / "latest"]


def _session(config: pytest.Config) -> RunSession:
    return config.pluginmanager.get_plugin(SESSION_PLUGIN)  # type: ignore[no-any-return]


def _side(settings: Settings, side: DataRole) -> str:
    """A named side's DSN, or what pgcutover starts for it: the provider and what it runs."""
    named = settings.source if side == "source" else settings.target
    if named is not None:
        return named.endpoint.safe_dsn()
    if settings.provider == "docker":
        return f"docker {settings.image(side)}"
    return f"{settings.provider} {SHIPS[SIDE_FLAVORS[side]]}"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Effective settings, never a password."""
    settings = _session(config).settings
    source, target = _side(settings, "source"), _side(settings, "target")
    return [
        f"pgcutover: source {source} -> target {target}",
        f"pgcutover: strategy={settings.strategy} migrate={settings.migrate} rows={settings.rows}"
        f" dims={settings.vector_dimensions} model={settings.embedding_model}",
    ]


def _refuse(run: RunSession, check_id: str, error: PgcutoverError) -> None:
    """End the run before any test: a NO-GO report naming the problem, printed once in the
    summary (pytest.exit would print it twice, the second time as `! _pytest.outcomes.Exit`),
    exit code 3; no test runs (see pytest_runtestloop)."""
    run.record(
        [
            CheckResult(
                id=check_id,
                area="connectivity",
                status="fail",
                message=error.problem,
                remedy=error.remedy,
            )
        ]
    )
    _finish(run)
    run.refused = error


def _plan(run: RunSession) -> None:
    """--plan: open both sides (starting and seeding throwaway ones), write and print what the
    migration would do, stop what was started, and end the run: 0 when nothing would hold
    the GO, 1 otherwise. Nothing is migrated or checked; reports/latest keeps the last
    sign-off."""
    try:
        sides = open_sides(run.settings, run.workdir)
        made = plan.build(
            sides.source, sides.restore_as, run.settings, provider=sides.provider is not None
        )
        paths = plan.write(made, run.run_dir)
    except PgcutoverError as error:
        outcome: tuple[str, int] = (f"--plan failed: {error}", 3)
    else:
        terminal = run.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write(made.to_text())
        held = len(made.blocking) + len(made.cannot)
        outcome = (f"plan written: {paths['text']} and {paths['json']}", 1 if held else 0)
    finally:
        with runfolder.shielded():
            stop_servers(run.workdir)
            shutil.rmtree(run.workdir, ignore_errors=True)
    pytest.exit(outcome[0], returncode=outcome[1])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Show progress from here on (the terminal reporter exists now), then probe named
    environments before any test runs: an unreachable host, a wrong password, or a target
    that is the source under another name ends the run (see `_refuse`) before anything is
    written. With --plan, the plan is the run."""
    session.config.stash[_PREVIOUS_DISPLAY] = progress.install(_progress_display(session.config))
    run = _session(session.config)
    if not run.owner:
        return
    sides: tuple[tuple[DataRole, Environment | None], ...] = (
        ("source", run.settings.source),
        ("target", run.settings.target),
    )
    for role, environment in sides:
        if environment is None:
            continue
        try:
            with connection(environment.endpoint, role=role):
                pass
        except PgcutoverError as error:
            _refuse(run, f"connectivity.{role}", error)
            return
    source, target = run.settings.source, run.settings.target
    if source is not None and target is not None:
        try:
            refuse_same_database(source.endpoint, target.endpoint)
        except PgcutoverError as error:
            _refuse(run, "connectivity.identity", error)
            return
    if run.settings.scratch and target is not None:
        try:
            scratch.require_createdb(target.endpoint)
        except PgcutoverError as error:
            _refuse(run, "connectivity.target.createdb", error)
    if run.settings.plan:
        _plan(run)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """No test runs once the run was refused (xdist's loop included)."""
    return True if _session(session.config).refused is not None else None


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Record what this run selected: a chaos-only run owes the chaos family, not the
    sign-off's (every process collects the same items; the first one writes)."""
    run = _session(session.config)
    path = run.workdir / SELECTION_FILE
    if path.exists() or not session.items:
        return
    chaos_only = all(item.get_closest_marker(CHAOS) for item in session.items)
    path.write_text(json.dumps({"chaos_only": chaos_only, "items": len(session.items)}))


@dataclass
class Rehearsal:
    """What a suite test gets: the pair of databases (with the source's inventory), settings,
    and a way to run a check family."""

    environment: RunEnvironment
    settings: Settings
    session: RunSession

    @property
    def pair(self) -> Pair:
        return Pair(self.environment.source, self.environment.target, self.environment.inventory)

    def artefact(self, label: str, filename: str) -> Path:
        """Where to write a file the sign-off links to (see RunSession.artefact)."""
        return self.session.artefact(label, filename)

    def context(self) -> registry.Context:
        """What the check families need (see checks/registry.py)."""
        return registry.Context(
            pair=self.pair,
            settings=self.settings,
            migration=self.environment.migration,
            blocked=self.environment.blocked,
            artefact=self.artefact,
        )

    def verify(self, family: str) -> list[CheckResult]:
        """Run a check family, record its results and that it reported, fail the test on a
        blocker."""
        results = self.session.record(registry.run(family, self.context()), family)
        if failures(results):
            pytest.fail(describe(results), pytrace=False)
        return results

    def verify_extra(
        self, check: Callable[[Pair, Settings], list[CheckResult]]
    ) -> list[CheckResult]:
        """Run an opt-in check outside the sign-off's families (e.g. load during the dump)."""
        results = self.session.record(check(self.pair, self.settings))
        if failures(results):
            pytest.fail(describe(results), pytrace=False)
        return results


@pytest.fixture(scope="session")
def pgcutover(request: pytest.FixtureRequest) -> Rehearsal:
    """The run's source and target, provisioned once and shared by all workers."""
    session = _session(request.config)
    try:
        environment = session.environment()
    except PgcutoverError as error:
        pytest.fail(str(error), pytrace=False)
    return Rehearsal(environment, session.settings, session)


@pytest.fixture(scope="session")
def source_db(pgcutover: Rehearsal) -> Endpoint:
    """The source application database (connect with role='source': read-only)."""
    return pgcutover.environment.source


@pytest.fixture(scope="session")
def target_db(pgcutover: Rehearsal) -> Endpoint:
    """The target application database."""
    return pgcutover.environment.target


def environment_fixture(name: str) -> Callable[..., Environment]:
    """Factory for a further named environment: `staging = environment_fixture("staging")`
    in a conftest gives tests a `staging` fixture resolved from targets.toml."""

    @pytest.fixture(scope="session")
    def _fixture(request: pytest.FixtureRequest) -> Environment:
        settings_file = request.config.rootpath / str(
            _option_values(request.config)["targets_file"]
        )
        try:
            return resolve_environment(name, settings_file)
        except ConfigError as error:
            pytest.fail(str(error), pytrace=False)

    return _fixture


def _completeness(run: RunSession, interrupted: bool) -> dict[str, Any]:
    """Which families this run owed and which reported: GO needs all of them, uninterrupted."""
    required = run.required_families()
    reported = run.reported_families()
    return {
        "required": list(required),
        "missing": [name for name in required if name not in reported],
        "interrupted": interrupted,
    }


def _build_report(run: RunSession, interrupted: bool) -> RunReport:
    environment = load_environment(run.workdir)
    checks = run.recorded()
    error = provisioning_error(run.workdir)
    if error is not None:
        checks.append(
            CheckResult(
                id="environment.provision",
                area="environment",
                status=STATUS_UNKNOWN,
                message=error[0],
                remedy=error[1],
            )
        )
    settings = run.settings
    return RunReport(
        run_id=run.run_id,
        started_at=run.started_at,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=environment.facts["source"] if environment else _facts(settings.source, "source"),
        target=environment.facts["target"] if environment else _facts(settings.target, "target"),
        migration=environment.migration.to_json()
        if environment
        else {"performed": False, "notes": []},
        checks=checks,
        seed=environment.seed if environment else None,
        inventory=environment.inventory.to_json() if environment else None,
        relation={
            "shared_server": environment.facts.get("shared_server"),
            "evidence": environment.facts.get("relation"),
        }
        if environment
        else None,
        completeness=_completeness(run, interrupted),
        mode=environment.facts.get("mode", "") if environment else "",
        settings={
            "strategy": settings.strategy,
            "rows": settings.rows,
            "vector_dimensions": settings.vector_dimensions,
            "embedding_model": settings.embedding_model,
            "maintenance_work_mem": settings.maintenance_work_mem,
            "exclude_schemas": list(settings.exclude_schemas),
        },
        signoff_by=_option_values(run.config)["signoff_by"],
    )


def _facts(environment: Environment | None, role: DataRole) -> dict[str, Any]:
    if environment is None:
        return {"label": f"{role} (not started)"}
    return describe_endpoint(environment.endpoint, role)


def _finish(run: RunSession, interrupted: bool = False) -> None:
    """Write the sign-off files once; an incomplete run never replaces a GO in
    reports/latest."""
    if run.report_paths is not None:
        return
    report = _build_report(run, interrupted)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    report.artefacts.update(run.artefacts())
    junit = run.workdir / JUNIT
    if junit.exists():
        shutil.copy(junit, run.run_dir / JUNIT)
        report.artefacts["JUnit XML"] = JUNIT
    if pytesthtml.requested(run.config):
        report.artefacts[pytesthtml.LABEL] = pytesthtml.FILENAME
    run.report = report
    run.report_paths = write_report(report, run.run_dir)
    if report.complete or latest_verdict(run.run_dir.parent) != "GO":
        mirror_latest(run.run_dir)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Owner only: write the sign-off, stop the servers, remove the work folder."""
    run = _session(session.config)
    if not run.owner:
        return
    try:
        with runfolder.shielded():
            _clean_up_replication(run)
        if run.rehearsed():
            _finish(
                run,
                interrupted=exitstatus == pytest.ExitCode.INTERRUPTED or bool(runfolder.RECEIVED),
            )
            if run.refused is not None:
                session.exitstatus = EXIT_REFUSED
            elif run.report and run.report.verdict == "NO-GO" and exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        _clean_up(run)
        _silence_temporary_junit(session.config, run.workdir)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Progress goes back where it went before this run (nowhere, unless this run was
    started inside another, as pytester does). Owner only: clean up also when no session
    ran or it ended early (`--help`, an error in a sessionstart hook), so no work folder is
    left in the temporary directory."""
    if _PREVIOUS_DISPLAY in config.stash:
        progress.install(config.stash[_PREVIOUS_DISPLAY])
    run = config.pluginmanager.get_plugin(SESSION_PLUGIN)
    if run is not None and run.owner:
        _clean_up(run)


def _clean_up(run: RunSession) -> None:
    """Stop the servers this run started and remove its work folder (idempotent)."""
    if not run.workdir.exists():
        return
    with runfolder.shielded():
        problems = stop_servers(run.workdir)
        shutil.rmtree(run.workdir, ignore_errors=True)
    for problem in problems:
        run.config.get_terminal_writer().line(
            f"pgcutover: could not stop {problem}; the next run retries", red=True
        )


def _stop_dead_run(folder: Path) -> list[str]:
    """What a run that died left: its replication objects first (a slot keeps WAL on the
    source, and its servers must be up to drop it), then its servers."""
    outcomes = clean_up_folder(folder)
    lines = [f"removed {item}" for o in outcomes for item in o.removed]
    lines += [f"could NOT remove {item}" for o in outcomes for item in o.failed]
    return lines + stop_servers(folder)


def _clean_up_replication(run: RunSession) -> None:
    """Remove what a logical migration of this run left behind (it was interrupted, or its
    own clean-up could not reach a server), and report it as a failed check."""
    outcomes = [o for o in clean_up_folder(run.workdir) if o.removed or o.failed]
    if not outcomes:
        return
    removed = [item for o in outcomes for item in o.removed]
    failed = [item for o in outcomes for item in o.failed]
    message = f"left behind by the migration and removed at the end of the run: {removed}"
    if failed:
        message += f"; could NOT be removed: {failed}"
    run.record(
        [
            CheckResult(
                id="cutover.left_behind",
                area="migration",
                status="fail",
                message=message,
                actual={"removed": removed, "failed": failed},
                remedy="a slot left on the source keeps WAL until the disk fills: drop what "
                "could not be removed by hand (pg_drop_replication_slot, DROP PUBLICATION)",
            )
        ]
    )


def _silence_temporary_junit(config: pytest.Config, workdir: Path) -> None:
    """junitxml would name the work folder's file, removed by now: when that file was ours,
    its work is done (copied beside the sign-off), so unregister it."""
    xml = config.stash.get(xml_key, None)
    if xml is not None and Path(xml.logfile).parent == workdir:
        del config.stash[xml_key]
        config.pluginmanager.unregister(xml)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The verdict, the blocking checks and where the report is, in a few lines."""
    run = _session(config)
    if not run.owner or run.report is None or run.report_paths is None:
        return
    report = run.report
    terminalreporter.section("pgcutover sign-off")
    terminalreporter.line(
        verdict_line(report), green=report.verdict == "GO", red=report.verdict != "GO", bold=True
    )
    if run.refused is not None:
        terminalreporter.line(str(run.refused), red=True)
        terminalreporter.line(report_line(report, run.report_paths["html"]))
        return
    for line in summary_lines(report, run.report_paths["html"]):
        terminalreporter.line(line)
