"""Recall@k of every query shape on both sides against exact ground truth, at each database's
own settings and over a sweep of hnsw.ef_search (or ivfflat.probes): the target must reach
the source's recall minus a tolerance. The rows each shape returns are judged too: fewer
than k where k rows exist is a finding of its own (filtered HNSW scans run short)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pgcutover.checks.base import CheckResult, Pair, outcome
from pgcutover.checks.search import groundtruth, queryset, shapes
from pgcutover.checks.search.queryset import GOLDEN, PERTURBED, Runner, Workload
from pgcutover.checks.search.shapes import AREA, SWEEP_SETTINGS, SearchConfig, Shape
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connection

SIDES = ("source", "target")


@dataclass(frozen=True)
class Measured:
    """One side's answers to the query set under one setting."""

    recall: np.ndarray
    returned: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.recall)) if np.isfinite(self.recall).any() else 1.0


@dataclass(frozen=True)
class Observed:
    """Both sides' measurements of one shape: at their own settings and over the sweep."""

    knob: str | None
    values: tuple[int, ...]
    own: dict[str, Measured]
    curves: dict[str, list[Measured]]
    effective: dict[str, str | None]


def measure(workload: Workload, side: str, found: list[np.ndarray], epsilon: float) -> Measured:
    """Recall and row counts of one side's answers against that side's ground truth."""
    return Measured(
        recall=groundtruth.recall(workload.truth[side], found, epsilon),
        returned=np.array([len(rows) for rows in found]),
    )


def sweep_setting(pair: Pair, settings: Settings, shape: Shape) -> str | None:
    """The knob to sweep for a shape: that of the ANN index serving it on the source, else on
    the target; None when neither side has one."""
    for endpoint, role in ((pair.source, "source"), (pair.target, "target")):
        with connection(endpoint, role=role) as conn:  # type: ignore[arg-type]
            index = shapes.index_for(shape, shapes.ann_indexes(conn, settings.ignored_schemas))
        if index is not None:
            return SWEEP_SETTINGS[index.method]
    return None


def _side(
    endpoint: Endpoint,
    role: str,
    workload: Workload,
    knob: str | None,
    values: tuple[int, ...],
    epsilon: float,
) -> tuple[Measured, list[Measured], str | None]:
    """At the database's own settings (a fresh session, nothing SET), then per sweep value."""
    with connection(endpoint, role=role) as conn:  # type: ignore[arg-type]
        runner = Runner(conn, workload.shape)
        own = measure(workload, role, runner.all(workload.queries)[0], epsilon)
        effective = queryset.setting(conn, knob) if knob else None
        curve = []
        for value in values if knob else ():
            conn.execute(f"SET {knob} = {int(value)}")
            curve.append(measure(workload, role, runner.all(workload.queries)[0], epsilon))
    return own, curve, effective


def _by_kind(workload: Workload, measured: Measured) -> dict[str, float | None]:
    kinds = np.array(workload.queries.kinds)
    breakdown: dict[str, float | None] = {"all": round(measured.mean, 4)}
    for kind in (PERTURBED, GOLDEN):
        values = measured.recall[kinds == kind]
        finite = values[np.isfinite(values)]
        breakdown[kind] = round(float(finite.mean()), 4) if finite.size else None
    return breakdown


def _judge(
    shape: Shape, workload: Workload, config: SearchConfig, observed: Observed
) -> list[CheckResult]:
    knob, values, own, curves = observed.knob, observed.values, observed.own, observed.curves
    effective = observed.effective
    tolerance = config.recall.tolerance
    k = shape.k
    source, target = own["source"].mean, own["target"].mean
    curve = {side: [round(m.mean, 4) for m in curves[side]] for side in SIDES}
    area = {side: float(np.mean(curve[side])) if curve[side] else None for side in SIDES}
    curve_ok = area["target"] is None or area["target"] >= area["source"] - tolerance  # type: ignore[operator]
    ok = target >= source - tolerance and curve_ok
    knob_text = f" ({knob} {effective['source']} / {effective['target']})" if knob else ""
    message = (
        f"{shape.name}: recall@{k} {target:.3f} on the target vs {source:.3f} on the source "
        f"at each database's settings{knob_text}"
    )
    if area["target"] is not None:
        message += f"; mean over the {knob} sweep {area['target']:.3f} vs {area['source']:.3f}"
    details: dict[str, Any] = {
        "k": k,
        "recall": {side: _by_kind(workload, own[side]) for side in SIDES},
        "settings": {side: {knob: effective[side]} for side in SIDES} if knob else {},
        "queries": {
            "count": len(workload.queries),
            "perturbed": workload.queries.kinds.count(PERTURBED),
            "golden": workload.queries.kinds.count(GOLDEN),
            "notes": list(workload.queries.notes),
        },
        "rows": workload.rows,
        "ground_truth": workload.sharing_note(),
        "epsilon": config.recall.epsilon,
    }
    if knob:
        details["series"] = {
            "title": f"recall@{k} of {shape.name} over {knob}",
            "x_label": knob,
            "y_label": f"recall@{k}",
            "x": list(values),
            "lines": curve,
        }
    results = [
        outcome(
            f"search.recall.{shape.name}",
            AREA,
            ok,
            message,
            expected=round(source, 4),
            actual=round(target, 4),
            threshold=tolerance,
            details=details,
            remedy=(
                "the target's index finds fewer true neighbours: compare the index definition "
                "(m, ef_construction, lists) with the source's and rebuild it, check "
                f"`SHOW {knob or 'hnsw.ef_search'}` and any ALTER DATABASE/ROLE ... SET on the "
                "target, then ANALYZE"
            ),
        )
    ]
    results.append(_rows(shape, workload, config, observed))
    return results


def _fraction(workload: Workload, side: str, measured: Measured) -> float:
    expected = workload.truth[side].expected
    total = int(expected.sum())
    return float(np.minimum(measured.returned, expected).sum() / total) if total else 1.0


def _rows(
    shape: Shape, workload: Workload, config: SearchConfig, observed: Observed
) -> CheckResult:
    """Rows returned against rows that exist (up to k): short results are their own finding."""
    knob, values, own, curves = observed.knob, observed.values, observed.own, observed.curves
    minimum = config.recall.min_row_fraction
    fraction = {side: _fraction(workload, side, own[side]) for side in SIDES}
    short = {
        side: int(np.count_nonzero(own[side].returned < workload.truth[side].expected))
        for side in SIDES
    }
    average = {side: round(float(own[side].returned.mean()), 2) for side in SIDES}
    details: dict[str, Any] = {"average_rows": average, "short_queries": short, "k": shape.k}
    if knob:
        details["series"] = {
            "title": f"average rows returned by {shape.name} (LIMIT {shape.k}) over {knob}",
            "x_label": knob,
            "y_label": "rows returned",
            "x": list(values),
            "lines": {
                side: [round(float(m.returned.mean()), 2) for m in curves[side]] for side in SIDES
            },
        }
    remedy = (
        "a filtered query that the planner sends through the HNSW index stops after "
        "hnsw.ef_search candidates and returns short: on pgvector >= 0.8 set "
        "`ALTER DATABASE <db> SET hnsw.iterative_scan = relaxed_order` (see the "
        f"search.filtered.{shape.name} check), or make sure the btree index on the filter "
        "column exists and is analysed"
        if shape.filter_column
        else f"raise hnsw.ef_search to at least LIMIT {shape.k} (`SHOW hnsw.ef_search` on "
        "the target; look for ALTER DATABASE/ROLE ... SET)"
    )
    return outcome(
        f"search.rows.{shape.name}",
        AREA,
        fraction["target"] >= minimum,
        f"{shape.name}: {average['target']} of {shape.k} rows on average on the target "
        f"({short['target']} of {len(workload.queries)} queries short), "
        f"{average['source']} on the source ({short['source']} short)",
        expected=f">= {minimum:.0%} of the rows that exist",
        actual=round(fraction["target"], 4),
        threshold=minimum,
        details=details,
        remedy=remedy,
    )


def _check_shape(
    pair: Pair,
    settings: Settings,
    config: SearchConfig,
    shape: Shape,
) -> list[CheckResult]:
    golden = queryset.embed_golden(settings, config.recall)
    with (
        connection(pair.source, role="source") as source,
        connection(pair.target, role="target") as target,
    ):
        workload = queryset.workload(source, target, shape, golden, config.recall)
    if workload.rows["source"] == 0:
        return [
            CheckResult(
                id=f"search.recall.{shape.name}",
                area=AREA,
                status="skip",
                message=f"{shape.qualified} holds no vectors on the source: nothing to search",
            )
        ]
    knob = sweep_setting(pair, settings, shape)
    values = config.recall.ivfflat_probes if knob == "ivfflat.probes" else config.recall.ef_search
    own: dict[str, Measured] = {}
    curves: dict[str, list[Measured]] = {}
    effective: dict[str, str | None] = {}
    for side, endpoint in (("source", pair.source), ("target", pair.target)):
        own[side], curves[side], effective[side] = _side(
            endpoint, side, workload, knob, values, config.recall.epsilon
        )
    return _judge(shape, workload, config, Observed(knob, values, own, curves, effective))


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.recall.<shape> and search.rows.<shape> for every query shape."""
    return shapes.per_shape(pair, settings, "search.recall", _check_shape)
