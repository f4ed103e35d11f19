"""Load under migration (opt-in): the app's read mix keeps running against the source while
pg_dump reads it, as it would during a live migration, and the latency during the dump is
compared with the latency just before it (owners ask how much a live dump hurts)."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgcutover.checks.base import UNKNOWN, CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import Endpoint
from pgcutover.load.config import LoadConfig, load_config
from pgcutover.load.runner import LoadPlan, LocustRun
from pgcutover.load.slo import AREA, Artefact
from pgcutover.load.stats import LoadStats, Window
from pgcutover.migrate.runner import exported_snapshot
from pgcutover.migrate.tools import client_binary, run_pipeline

CHECK_ID = "load.source.during_dump"
#: Seconds of load kept running after the last dump, to show the recovery in the chart.
AFTER_SECONDS = 2.0


@dataclass(frozen=True)
class Dump:
    """One pg_dump run, as epoch seconds."""

    start: float
    end: float


@dataclass(frozen=True)
class DumpMeasurement:
    """The load run, when its users were all running, and the dumps made under it."""

    stats: LoadStats
    running_at: float
    dumps: list[Dump]

    @property
    def baseline(self) -> Window | None:
        return self.stats.history.window(self.running_at, self.dumps[0].start)

    @property
    def during(self) -> Window | None:
        return self.stats.history.window(self.dumps[0].start, self.dumps[-1].end)


def _dump(source: Endpoint, settings: Settings, archive: Path) -> Dump:
    """pg_dump as the migration runs it: one exported snapshot, custom format."""
    started = time.time()
    with exported_snapshot(source) as snapshot:
        command = [
            str(client_binary("pg_dump")),
            f"--dbname={source.tool_dbname()}",
            f"--snapshot={snapshot}",
            "--no-password",
            "-Fc",
            "--compress=none",
            f"--file={archive}",
            *[f"--exclude-schema={schema}" for schema in settings.exclude_schemas],
        ]
        run_pipeline([command], [source], phase="dump under load", timeout=settings.phase_timeout)
    return Dump(started, time.time())


def measure(
    source: Endpoint, config: LoadConfig, settings: Settings, workdir: Path, html: Path | None
) -> DumpMeasurement:
    """Run the read mix on the source; after the baseline, dump until at least
    min_dump_seconds were spent dumping; then stop the load."""
    run = LocustRun(LoadPlan(source, config, source=True), workdir, "during-dump", html)
    run.start(duration=int(settings.phase_timeout))
    dumps: list[Dump] = []
    try:
        running_at = run.wait_until_running()
        time.sleep(config.during_dump.baseline_seconds)
        while sum(d.end - d.start for d in dumps) < config.during_dump.min_dump_seconds:
            dumps.append(_dump(source, settings, workdir / "dump.pgc"))
        time.sleep(AFTER_SECONDS)
    except BaseException:
        run.kill()
        raise
    run.interrupt()
    stats = run.wait()
    return DumpMeasurement(stats, running_at, dumps)


def judge(measurement: DumpMeasurement, config: LoadConfig) -> CheckResult:
    """Error rate during the dump within the service level, and mean latency during the
    dump within max_slowdown times the latency before it."""
    baseline, during = measurement.baseline, measurement.during
    if baseline is None or during is None or baseline.requests == 0 or during.requests == 0:
        return CheckResult(
            id=CHECK_ID,
            area=AREA,
            status=UNKNOWN,
            message="too few statistics samples before or during the dump to compare",
            remedy="raise [load.during_dump] baseline_seconds and min_dump_seconds",
        )
    limit = config.during_dump.max_slowdown
    slowdown = during.mean_ms / baseline.mean_ms if baseline.mean_ms else float("inf")
    dumped = sum(d.end - d.start for d in measurement.dumps)
    ok = slowdown <= limit and during.error_rate <= config.slo.error_rate
    return outcome(
        CHECK_ID,
        AREA,
        ok,
        f"while pg_dump ran ({len(measurement.dumps)} dump(s), {dumped:.1f} s) the read mix "
        f"averaged {during.mean_ms:.1f} ms at {during.requests_per_second:.0f} requests/s "
        f"with {during.error_rate:.2%} errors, against {baseline.mean_ms:.1f} ms at "
        f"{baseline.requests_per_second:.0f} requests/s before: {slowdown:.1f}x slower; "
        f"allowed {limit:.1f}x and {config.slo.error_rate:.2%} errors",
        remedy="a live dump slows the source's queries beyond the allowed factor: dump from "
        "a replica, at a quiet hour, or with fewer pg_dump jobs; or correct "
        "[load.during_dump] max_slowdown",
        expected=f"<= {limit}x",
        actual=round(slowdown, 2),
        threshold=limit,
        details=_details(measurement, baseline, during),
    )


def _window(window: Window) -> dict[str, float]:
    return {
        "seconds": window.seconds,
        "mean_ms": round(window.mean_ms, 3),
        "requests_per_second": round(window.requests_per_second, 1),
        "error_rate": window.error_rate,
    }


def _details(measurement: DumpMeasurement, baseline: Window, during: Window) -> dict[str, Any]:
    history = measurement.stats.history
    origin = history.timestamps[0]
    seconds, means = history.latency()
    return {
        "baseline": _window(baseline),
        "during": _window(during),
        "series": {
            "title": "source read latency while pg_dump runs",
            "x_label": "seconds",
            "y_label": "mean milliseconds",
            "x": seconds,
            "lines": {"source": means},
        },
        "timeline": [
            {
                "name": f"pg_dump {number}",
                "start": round(dump.start - origin, 2),
                "end": round(dump.end - origin, 2),
                "kind": "dump",
            }
            for number, dump in enumerate(measurement.dumps, start=1)
        ],
    }


def check(pair: Pair, settings: Settings, artefact: Artefact) -> list[CheckResult]:
    """The opt-in load-under-migration case, as a check result."""

    def run() -> list[CheckResult]:
        config = load_config(settings, pair.inventory)
        workdir = Path(tempfile.mkdtemp(prefix="pgcutover-dump-load-"))
        try:
            html = artefact("locust report (source during pg_dump)", "locust-during-dump.html")
            measurement = measure(pair.source, config, settings, workdir, html)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return [judge(measurement, config)]

    return guarded(CHECK_ID, AREA, run, pair)
