"""Filtered shapes through the vector index: what the app gets whenever the planner picks the
HNSW index for `WHERE filter = $u ORDER BY embedding <=> $q LIMIT k` (a user with many
chunks). The filter is applied after the index scan, so results run short unless pgvector
>= 0.8 keeps scanning (`hnsw.iterative_scan`). Both sides are measured on that path; on
pgvector >= 0.8 each iterative mode is measured too and the best one is recommended."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgcutover.catalog import extension_version
from pgcutover.checks.base import CheckResult, Pair, outcome
from pgcutover.checks.search import plans, queryset, shapes
from pgcutover.checks.search.queryset import Runner, Workload
from pgcutover.checks.search.recall import SIDES, measure, noise
from pgcutover.checks.search.shapes import AREA, SWEEP_SETTINGS, SearchConfig, Shape
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connection

AS_CONFIGURED = "as configured"
#: pgvector >= 0.8: the setting that keeps an index scan going, and its modes, per method.
ITERATIVE = {
    "hnsw": ("hnsw.iterative_scan", ("off", "relaxed_order", "strict_order")),
    "ivfflat": ("ivfflat.iterative_scan", ("off", "relaxed_order")),
}
ALL_MODES = ("off", "relaxed_order", "strict_order")
#: Where a mode's per-query recall is kept until the judgement (not in the evidence).
PER_QUERY = "per_query"
#: Recall this close counts as a tie, and the faster relaxed_order wins it.
RECALL_TIE = 0.01


def _supports_iterative(version: str | None) -> bool:
    if not version:
        return False
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (0, 8)


def _mode(runner: Runner, workload: Workload, side: str, epsilon: float) -> dict[str, Any]:
    """Rows, recall and median latency of the query set in the session's current mode."""
    found, seconds = runner.all(workload.queries)
    measured = measure(workload, side, found, epsilon)
    expected = workload.truth[side].expected
    total = int(expected.sum())
    return {
        "rows": round(float(measured.returned.mean()), 2),
        "row_fraction": round(float(np.minimum(measured.returned, expected).sum() / total), 4)
        if total
        else 1.0,
        "recall": round(measured.mean, 4),
        "p50_ms": round(float(np.median(seconds)) * 1000, 3),
        PER_QUERY: measured.recall,
    }


def _side(
    endpoint: Endpoint, side: str, workload: Workload, settings: Settings, config: SearchConfig
) -> dict[str, Any]:
    """The shape forced through the vector index: the filter compared as text (no btree can
    serve it) and sequential scans off; each iterative mode where pgvector has them."""
    shape = workload.shape
    cast = sql.SQL("{}::text").format(sql.Identifier(shape.filter_column))  # type: ignore[arg-type]
    epsilon = config.recall.epsilon
    with connection(endpoint, role=side) as conn:  # type: ignore[arg-type]
        conn.execute(  # loads pgvector, so its settings exist
            sql.SQL("SELECT '[1]'::{}.vector").format(sql.Identifier(shape.type_schema))
        )
        version = extension_version(conn, "vector")
        index = shapes.index_for(shape, shapes.ann_indexes(conn, settings.ignored_schemas))
        report: dict[str, Any] = {"pgvector": version, "index": index.name if index else None}
        if index is None:
            return report
        report["method"] = index.method
        setting, iterative_modes = ITERATIVE[index.method]
        report["setting"] = setting
        conn.execute("SET enable_seqscan = off")
        runner = Runner(conn, shape, cast)
        first = workload.queries
        params = {"q": first.vectors[0], "f": first.filters[0], "k": shape.k}
        path = plans.summary(plans.explain(conn, shape.query(cast), params))
        report["plan"] = path
        if not any(index.name in line for line in path):
            report["index"] = None
            return report
        report["configured"] = queryset.setting(conn, setting)
        modes = {AS_CONFIGURED: _mode(runner, workload, side, epsilon)}
        if _supports_iterative(version):
            for mode in iterative_modes:
                conn.execute(f"SET {setting} = {mode}")
                modes[mode] = _mode(runner, workload, side, epsilon)
        else:
            try:
                conn.execute(f"SET {setting} = relaxed_order")
            except psycopg.Error as error:
                report["iterative_scan_error"] = str(error).strip().splitlines()[0]
        report["modes"] = modes
    return report


def _recommend(target: dict[str, Any], minimum: float) -> str | None:
    """The iterative mode returning enough rows with the best recall (ties: relaxed_order)."""
    modes = target.get("modes", {})
    candidates = [m for m in ("relaxed_order", "strict_order") if m in modes]
    full = [m for m in candidates if modes[m]["row_fraction"] >= minimum]
    if not full:
        return None
    best = max(modes[m]["recall"] for m in full)
    return next(m for m in full if modes[m]["recall"] >= best - RECALL_TIE)


def _describe(mode: dict[str, Any], k: int) -> str:
    return f"{mode['rows']} of {k} rows, recall {mode['recall']:.3f}"


def _check_shape(
    pair: Pair, settings: Settings, config: SearchConfig, shape: Shape
) -> list[CheckResult]:
    check_id = f"search.filtered.{shape.name}"
    golden = queryset.embed_golden(settings, config.recall)
    with (
        connection(pair.source, role="source") as source,
        connection(pair.target, role="target") as target,
    ):
        workload = queryset.workload(source, target, shape, golden, config.recall)
    if workload.rows["source"] == 0:
        return [
            CheckResult(check_id, AREA, "skip", f"{shape.qualified} holds no vectors on the source")
        ]
    sides = {
        side: _side(endpoint, side, workload, settings, config)
        for side, endpoint in zip(SIDES, (pair.source, pair.target), strict=True)
    }
    per_query = {
        side: sides[side].get("modes", {}).get(AS_CONFIGURED, {}).get(PER_QUERY) for side in SIDES
    }
    for side in SIDES:  # the evidence keeps means only
        for mode in sides[side].get("modes", {}).values():
            mode.pop(PER_QUERY)
    if sides["target"]["index"] is None or sides["source"]["index"] is None:
        return [
            CheckResult(
                check_id,
                AREA,
                "skip",
                f"{shape.name}: no side-by-side vector index path to measure (source index "
                f"{sides['source']['index']}, target index {sides['target']['index']}); the "
                f"search.plan.{shape.name} check judges the plans",
                details={"sides": sides},
            )
        ]
    source, target = (sides[side]["modes"][AS_CONFIGURED] for side in SIDES)
    tolerance = config.recall.tolerance
    margin = noise(per_query["source"], per_query["target"])
    ok = (
        target["recall"] >= source["recall"] - tolerance - margin
        and target["row_fraction"] >= source["row_fraction"] - tolerance
    )
    message = (
        f"{shape.name} through {sides['target']['index']}: {_describe(target, shape.k)} on the "
        f"target, {_describe(source, shape.k)} on the source"
    )
    setting = sides["target"]["setting"]
    recommended = _recommend(sides["target"], config.recall.min_row_fraction)
    recommendation = None
    if recommended is not None:
        chosen = sides["target"]["modes"][recommended]
        already = sides["target"].get("configured") == recommended
        recommendation = (
            f"{setting} = {recommended} is already set on the target"
            if already
            else f"recommended on the target: ALTER DATABASE {pair.target.dbname} SET "
            f"{setting} = {recommended} ({_describe(chosen, shape.k)})"
        )
        message += f"; {recommendation}"
    error = sides["source"].get("iterative_scan_error")
    if error:
        message += f"; the source's pgvector {sides['source']['pgvector']} has no iterative scans"
    labels = [AS_CONFIGURED, *ALL_MODES]
    details: dict[str, Any] = {
        "sides": sides,
        "recommendation": recommendation,
        "noise_margin": round(margin, 4),
        "bars": {
            "title": f"recall@{shape.k} of {shape.name} through the vector index, by {setting}",
            "y_label": f"recall@{shape.k}",
            "labels": labels,
            "groups": {
                side: [sides[side]["modes"].get(label, {}).get("recall") for label in labels]
                for side in SIDES
            },
        },
    }
    return [
        outcome(
            check_id,
            AREA,
            ok,
            message,
            expected=source,
            actual=target,
            threshold=tolerance,
            details=details,
            remedy=(
                f"the target's {sides['target']['method']} index finds fewer of a filter "
                "value's rows than the source's: compare the index definitions and "
                f"{SWEEP_SETTINGS[sides['target']['method']]} on both sides; on pgvector >= 0.8 "
                f"set {setting} = relaxed_order for the database"
            ),
        )
    ]


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.filtered.<shape> for every filtered query shape."""
    return shapes.per_shape(
        pair,
        settings,
        "search.filtered",
        _check_shape,
        absent="no filtered query shape: no filter column was found beside a vector column (a"
        " column an RLS policy uses, an indexed foreign key or a btree-indexed column); a filter"
        " inside JSON metadata (metadata->>'key') is not discovered or checked yet. Name a"
        " filter column as filter_column of a [[search.shapes]] entry in targets.toml",
        wanted=lambda shape: shape.filter_column is not None and shape.dense,
    )
