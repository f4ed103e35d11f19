"""Service levels under load: the same short locust run against the source (for comparison,
read shapes only) and the target, judged against the configured error rate, p95/p99 per
query shape, and minimum throughput."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgcutover.checks.base import SHARED, UNKNOWN, CheckResult, Pair, finding, guarded, outcome
from pgcutover.checks.search.smoke import writes_allowed
from pgcutover.config import Settings
from pgcutover.errors import ConfigError, PgcutoverError
from pgcutover.load.config import LoadConfig, load_config
from pgcutover.load.runner import LoadPlan, run_locust
from pgcutover.load.stats import EntryStats, LoadStats

AREA = "load"
#: A shape over its bar on both sides blocks only when the target is this much slower than
#: the source (times the source's value, plus the slack for a shared machine's noise).
SOURCE_RATIO = 2.0
SOURCE_SLACK_MS = 5.0
#: Where a check writes a file the sign-off links to: (label, filename) -> path.
Artefact = Callable[[str, str], Path]


def target_writes(config: LoadConfig, pair: Pair, settings: Settings) -> bool:
    """Write shapes run only when configured, and only on a target pgcutover created or
    one the user allowed it to write into (--test-writes)."""
    if not config.writes:
        return False
    if writes_allowed(pair, settings):
        return True
    raise ConfigError(
        f"[load] writes = true would insert rows into {pair.target.label}, which pgcutover "
        "did not create",
        "add --test-writes if that is intended, or set [load] writes = false",
    )


def _percentiles(entry: EntryStats | None) -> list[float | None]:
    if entry is None:
        return [None, None, None]
    return [entry.p50_ms, entry.p95_ms, entry.p99_ms]


def _latency(
    side: str,
    kind: str,
    shape: str,
    limit: float,
    target: LoadStats,
    source: LoadStats | None,
) -> CheckResult:
    """p95 or p99 of one shape against its limit, with source and target side by side."""
    check_id = f"load.{side}.{kind}.{shape}"
    entry = target.entries.get(shape)
    if entry is None or entry.requests == 0:
        return CheckResult(
            id=check_id,
            area=AREA,
            status=UNKNOWN,
            message=f"no {shape} request completed during the run",
            remedy="run longer (duration) or raise the shape's weight in [load.weights]",
        )
    compared = source.entries.get(shape) if source else None
    value = entry.p95_ms if kind == "p95" else entry.p99_ms
    source_value = None
    if compared is not None:
        source_value = compared.p95_ms if kind == "p95" else compared.p99_ms
    source_note = f" (source: {source_value:.0f} ms)" if source_value is not None else ""
    details: dict[str, Any] = {"requests": entry.requests, "failures": entry.failures}
    if kind == "p95":
        details["bars"] = {
            "title": f"{shape}: latency percentiles under load",
            "y_label": "milliseconds",
            "labels": ["p50", "p95", "p99"],
            "groups": {"source": _percentiles(compared), side: _percentiles(entry)},
        }
    if value > limit and source_value is not None and source_value > limit:
        within = value <= source_value * SOURCE_RATIO + SOURCE_SLACK_MS
        return finding(
            check_id,
            AREA,
            f"{shape} {kind} is {value:.0f} ms{source_note}; allowed {limit:.0f} ms: over the "
            "bar on the source too"
            + ("" if within else f", and more than {SOURCE_RATIO:g}x the source's here"),
            kind=SHARED,
            blocking=not within,
            remedy=f"{shape} is as slow on the source: index it (search.plan checks) or set the "
            f"bar the app really needs in [load.slo.{kind}_ms]",
            expected=f"<= {limit:.0f} ms",
            actual=value,
            threshold=limit,
            details=details,
        )
    return outcome(
        check_id,
        AREA,
        value <= limit,
        f"{shape} {kind} is {value:.0f} ms{source_note}; allowed {limit:.0f} ms",
        remedy=f"the {side} answers {shape} too slowly under load: compare with the source, "
        "check its indexes and ANALYZE (the vector_index checks), the server's CPU and "
        f"memory, and hnsw.ef_search; or correct [load.slo.{kind}_ms] if the bar is wrong",
        expected=f"<= {limit:.0f} ms",
        actual=value,
        threshold=limit,
        details=details,
    )


def _throughput_series(target: LoadStats, source: LoadStats | None, side: str) -> dict[str, Any]:
    seconds, rates = target.history.throughput()
    lines = {side: rates}
    if source is not None:
        _, source_rates = source.history.throughput()
        length = min(len(rates), len(source_rates))
        seconds, lines = seconds[:length], {"source": source_rates[:length], side: rates[:length]}
    return {
        "title": "throughput under load",
        "x_label": "seconds",
        "y_label": "requests per second",
        "x": seconds,
        "lines": lines,
    }


def judge(
    stats: LoadStats,
    config: LoadConfig,
    *,
    writes: bool,
    source: LoadStats | None = None,
    source_problem: str = "",
    side: str = "target",
) -> list[CheckResult]:
    """Judge one side's run against the configured service levels; `source` is the
    comparison run, or `source_problem` says why there is none."""
    slo = config.slo
    total = stats.total
    compared = source.total if source else None
    results = [
        outcome(
            f"load.{side}.error_rate",
            AREA,
            stats.error_rate <= slo.error_rate,
            f"{total.failures} of {total.requests} requests failed ({stats.error_rate:.2%}); "
            f"allowed {slo.error_rate:.2%}",
            remedy="read the errors in the details and in the locust report: a missing "
            "object, a permission, a statement timeout or a refused connection",
            expected=f"<= {slo.error_rate}",
            actual=round(stats.error_rate, 6),
            threshold=slo.error_rate,
            details={
                "errors": stats.top_errors(),
                "source_error_rate": compared.error_rate if compared else None,
            },
        ),
        outcome(
            f"load.{side}.throughput",
            AREA,
            total.requests_per_second >= slo.min_throughput,
            f"{total.requests_per_second:.0f} requests/s with {config.users} users"
            + (f" (source: {compared.requests_per_second:.0f})" if compared else "")
            + f"; required {slo.min_throughput:.0f}",
            remedy=f"the {side} serves fewer queries than required: look at the slowest shapes "
            "below, the server's CPU and connection limits; or correct [load.slo] "
            "min_throughput",
            expected=f">= {slo.min_throughput}",
            actual=round(total.requests_per_second, 1),
            threshold=slo.min_throughput,
            details={
                "series": _throughput_series(stats, source, side),
                "source_problem": source_problem or None,
            },
        ),
    ]
    for shape in config.mix(writes=writes):
        results.append(_latency(side, "p95", shape.name, slo.p95(shape.name), stats, source))
        results.append(_latency(side, "p99", shape.name, slo.p99(shape.name), stats, source))
    return results


def check(pair: Pair, settings: Settings, artefact: Artefact) -> list[CheckResult]:
    """The configured load against the source (read shapes) and then the target; the
    target's service levels are judged, the source's numbers shown beside them."""

    def run() -> list[CheckResult]:
        config = load_config(settings, pair.inventory)
        writes = target_writes(config, pair, settings)
        workdir = Path(tempfile.mkdtemp(prefix="pgcutover-load-"))
        try:
            source: LoadStats | None = None
            source_problem = ""
            try:
                source = run_locust(
                    LoadPlan(pair.source, config, source=True),
                    workdir,
                    "source",
                    artefact("locust report (source)", "locust-source.html"),
                )
            except PgcutoverError as error:
                source_problem = pair.redact(error.problem)
            target = run_locust(
                LoadPlan(pair.target, config, source=False, writes=writes),
                workdir,
                "target",
                artefact("locust report (target)", "locust-target.html"),
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return judge(target, config, writes=writes, source=source, source_problem=source_problem)

    return guarded("load.target", AREA, run, pair)
