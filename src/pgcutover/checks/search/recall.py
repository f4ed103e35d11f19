"""Recall@k of every dense query shape (vector, halfvec) on both sides against exact ground
truth, at each database's own settings and over a sweep of hnsw.ef_search (or
ivfflat.probes): the target must reach the source's recall minus a tolerance. The rows each
shape returns are judged against the source too: fewer than k where k rows exist fails only
where the source returns more; short on both sides is a finding (filtered HNSW scans run
short) with the setting that fixes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pgcutover.checks.base import SHARED, CheckResult, Pair, finding, outcome
from pgcutover.checks.search import groundtruth, queryset, shapes
from pgcutover.checks.search.queryset import GOLDEN, PERTURBED, Runner, Workload
from pgcutover.checks.search.shapes import AREA, SWEEP_SETTINGS, SearchConfig, Shape
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connection

SIDES = ("source", "target")
#: The search settings reported as in force on each side (None where pgvector lacks one).
IN_FORCE = (
    "hnsw.ef_search",
    "hnsw.iterative_scan",
    "ivfflat.probes",
    "ivfflat.iterative_scan",
    "enable_seqscan",
    "enable_indexscan",
    "random_page_cost",
    "work_mem",
)
#: Standard errors of the mean per-query difference allowed beyond the tolerance. A rebuilt
#: HNSW graph is a new random draw: on clustered data at scale two builds of the same index
#: on the same rows differ by more than a fixed tolerance (200,000 synthetic rehearsal rows,
#: recall@10 at ef_search 40 over 200 queries: 0.864 to 0.902 in four builds on PG18, 0.855
#: and 0.874 on PG16), while a real loss (a weaker index, a lower ef_search) is far larger.
NOISE_Z = 2.0


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
    in_force: dict[str, dict[str, str | None]]


def measure(workload: Workload, side: str, found: list[np.ndarray], epsilon: float) -> Measured:
    """Recall and row counts of one side's answers against that side's ground truth."""
    return Measured(
        recall=groundtruth.recall(workload.truth[side], found, epsilon),
        returned=np.array([len(rows) for rows in found]),
    )


def noise(source: np.ndarray, target: np.ndarray) -> float:
    """NOISE_Z standard errors of the mean per-query difference target - source (queries
    with a recall on both sides): how far two equally good indexes can fall apart here."""
    both = np.isfinite(source) & np.isfinite(target)
    differences = target[both] - source[both]
    if differences.size < 2:
        return 0.0
    return float(NOISE_Z * differences.std(ddof=1) / np.sqrt(differences.size))


def _swept(measured: list[Measured]) -> np.ndarray:
    """Each query's recall averaged over the sweep."""
    return np.nanmean(np.stack([m.recall for m in measured]), axis=0)


def sweep_setting(pair: Pair, settings: Settings, shape: Shape) -> str | None:
    """The knob to sweep for a shape: that of the ANN index serving it on the source, else on
    the target; None when neither side has one."""
    index = shapes.index_for(shape, pair.inventory.ann_indexes)
    if index is None:
        with connection(pair.target, role="target") as conn:
            index = shapes.index_for(shape, shapes.ann_indexes(conn, settings.ignored_schemas))
    return SWEEP_SETTINGS[index.method] if index is not None else None


def _side(
    endpoint: Endpoint,
    role: str,
    workload: Workload,
    knob: str | None,
    values: tuple[int, ...],
    epsilon: float,
) -> tuple[Measured, list[Measured], str | None, dict[str, str | None]]:
    """At the database's own settings (a fresh session, nothing SET), then per sweep value;
    with the knob's value and the search settings in force."""
    with connection(endpoint, role=role) as conn:  # type: ignore[arg-type]
        runner = Runner(conn, workload.shape)
        own = measure(workload, role, runner.all(workload.queries)[0], epsilon)
        effective = queryset.setting(conn, knob) if knob else None
        in_force = {name: queryset.setting(conn, name) for name in IN_FORCE}
        curve = []
        for value in values if knob else ():
            conn.execute(f"SET {knob} = {int(value)}")
            curve.append(measure(workload, role, runner.all(workload.queries)[0], epsilon))
    return own, curve, effective, in_force


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
    margin = noise(own["source"].recall, own["target"].recall)
    curve_margin = (
        noise(_swept(curves["source"]), _swept(curves["target"])) if curves["target"] else 0.0
    )
    curve_ok = (
        area["target"] is None or area["target"] >= area["source"] - tolerance - curve_margin  # type: ignore[operator]
    )
    ok = target >= source - tolerance - margin and curve_ok
    knob_text = f" ({knob} {effective['source']} / {effective['target']})" if knob else ""
    message = (
        f"{shape.name}: recall@{k} {target:.3f} on the target vs {source:.3f} on the source "
        f"at each database's settings{knob_text}"
    )
    if area["target"] is not None:
        message += f"; mean over the {knob} sweep {area['target']:.3f} vs {area['source']:.3f}"
    message += f" (allowed: {tolerance} below, plus {margin:.3f} of noise between two builds)"
    details: dict[str, Any] = {
        "k": k,
        "recall": {side: _by_kind(workload, own[side]) for side in SIDES},
        "settings": {side: {knob: effective[side]} for side in SIDES} if knob else {},
        "in_force": observed.in_force,
        "queries": {
            "count": len(workload.queries),
            "perturbed": workload.queries.kinds.count(PERTURBED),
            "golden": workload.queries.kinds.count(GOLDEN),
            "notes": list(workload.queries.notes),
        },
        "rows": workload.rows,
        "ground_truth": workload.sharing_note(),
        "epsilon": config.recall.epsilon,
        "noise_margin": {"own_settings": round(margin, 4), "sweep": round(curve_margin, 4)},
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
        f"a filtered query that the planner sends through the {knob_index(knob)} index stops "
        f"after {knob or 'hnsw.ef_search'} candidates and returns short: on pgvector >= 0.8 set "
        f"`ALTER DATABASE <db> SET {iterative(knob)} = relaxed_order` (see the "
        f"search.filtered.{shape.name} check), or make sure the btree index on the filter "
        "column exists and is analysed"
        if shape.filter_column
        else f"raise {knob or 'hnsw.ef_search'} so the index returns LIMIT {shape.k} rows "
        f"(`SHOW {knob or 'hnsw.ef_search'}` on the target; look for ALTER DATABASE/ROLE ... "
        "SET)"
    )
    message = (
        f"{shape.name}: {average['target']} of {shape.k} rows on average on the target "
        f"({short['target']} of {len(workload.queries)} queries short), "
        f"{average['source']} on the source ({short['source']} short)"
    )
    evidence = {
        "expected": round(fraction["source"], 4),
        "actual": round(fraction["target"], 4),
        "threshold": config.recall.tolerance,
        "details": details,
    }
    if fraction["target"] < minimum and fraction["source"] < minimum:
        return finding(
            f"search.rows.{shape.name}",
            AREA,
            f"{message}: short on both sides, as on the source (not a migration fault)",
            kind=SHARED,
            blocking=fraction["target"] < fraction["source"] - config.recall.tolerance,
            remedy=remedy,
            **evidence,
        )
    return outcome(
        f"search.rows.{shape.name}",
        AREA,
        fraction["target"] >= min(minimum, fraction["source"] - config.recall.tolerance),
        message,
        remedy=remedy,
        **evidence,
    )


def knob_index(knob: str | None) -> str:
    """The index method a sweep setting belongs to, for advice."""
    return "ivfflat" if knob == "ivfflat.probes" else "HNSW"


def iterative(knob: str | None) -> str:
    """pgvector >= 0.8's iterative-scan setting of the index method a knob belongs to."""
    return "ivfflat.iterative_scan" if knob == "ivfflat.probes" else "hnsw.iterative_scan"


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
    in_force: dict[str, dict[str, str | None]] = {}
    for side, endpoint in (("source", pair.source), ("target", pair.target)):
        own[side], curves[side], effective[side], in_force[side] = _side(
            endpoint, side, workload, knob, values, config.recall.epsilon
        )
    observed = Observed(knob, values, own, curves, effective, in_force)
    return _judge(shape, workload, config, observed)


def not_dense(pair: Pair, prefix: str) -> list[CheckResult]:
    """A skip for every shape whose vectors are not dense (sparsevec, bit): measured by the
    plan checks only."""
    return [
        CheckResult(
            f"{prefix}.{shape.name}",
            AREA,
            "skip",
            f"{shape.qualified} is {shape.column_type}: recall and latency are measured on "
            "dense vector and halfvec columns; its plans are checked (search.plan)",
        )
        for shape in pair.inventory.shapes
        if not shape.dense
    ]


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.recall.<shape> and search.rows.<shape> for every dense query shape."""
    dense = shapes.per_shape(
        pair,
        settings,
        "search.recall",
        _check_shape,
        absent=shapes.NO_VECTOR_SHAPE,
        wanted=lambda shape: shape.dense,
    )
    return dense + not_dense(pair, "search.recall")
