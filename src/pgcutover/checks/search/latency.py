"""p50/p95 latency of every query shape on both sides, with the same query set, at each
database's own settings. Queries alternate between the sides so background load on a shared
machine hits both alike; the target fails when its p95 exceeds ratio x the source's + slack
and the app's service level for the shape ([load.slo.p95_ms]); slower than the source but
within that level is a finding (a newer planner may prefer a sequential scan on a small
table, which costs milliseconds, not the cutover)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pgcutover.checks.base import DIFFERS, CheckResult, Pair, finding, outcome
from pgcutover.checks.search import queryset, shapes
from pgcutover.checks.search.queryset import QuerySet, Runner
from pgcutover.checks.search.recall import not_dense
from pgcutover.checks.search.shapes import AREA, SWEEP_SETTINGS, SearchConfig, Shape
from pgcutover.config import Settings
from pgcutover.db import connection
from pgcutover.load.config import load_config


def _timings(pair: Pair, shape: Shape, queries: QuerySet, repeats: int) -> dict[str, np.ndarray]:
    """Seconds per query per side: one untimed warm-up pass, then `repeats` passes, each
    query run on both sides back to back (the first side alternates between passes)."""
    seconds: dict[str, list[float]] = {"source": [], "target": []}
    with (
        connection(pair.source, role="source") as source,
        connection(pair.target, role="target") as target,
    ):
        runners = {
            "source": Runner(source, shape),
            "target": Runner(target, shape),
        }
        for runner in runners.values():
            runner.all(queries)
        for repeat in range(repeats):
            order = ("source", "target") if repeat % 2 == 0 else ("target", "source")
            for vector, value in zip(queries.vectors, queries.filters, strict=True):
                for side in order:
                    seconds[side].append(runners[side].one(vector, value)[1])
    return {side: np.array(values) for side, values in seconds.items()}


def _check_shape(
    pair: Pair, settings: Settings, config: SearchConfig, shape: Shape
) -> list[CheckResult]:
    golden = queryset.embed_golden(settings, config.recall)
    with connection(pair.source, role="source") as source:
        queries = queryset.sampled(source, shape, golden, config.recall)
    if not len(queries):
        return [
            CheckResult(
                f"search.latency.{shape.name}",
                AREA,
                "skip",
                f"{shape.qualified} holds no vectors on the source: nothing to time",
            )
        ]
    timings = _timings(pair, shape, queries, config.latency.repeats)
    p50 = {side: float(np.percentile(t, 50)) * 1000 for side, t in timings.items()}
    p95 = {side: float(np.percentile(t, 95)) * 1000 for side, t in timings.items()}
    ratio, slack = config.latency.ratio, config.latency.slack_ms
    allowed = p95["source"] * ratio + slack
    service_level = load_config(settings, pair.inventory).slo.p95(shape.name)
    message = (
        f"{shape.name}: p50 {p50['target']:.2f} ms / p95 {p95['target']:.2f} ms on the "
        f"target, p50 {p50['source']:.2f} ms / p95 {p95['source']:.2f} ms on the source "
        f"({len(timings['target'])} queries per side, round trip included)"
    )
    evidence: dict[str, Any] = {
        "expected": f"p95 <= {ratio} x {p95['source']:.2f} + {slack} ms",
        "actual": round(p95["target"], 3),
        "threshold": {"ratio": ratio, "slack_ms": slack, "service_level_p95_ms": service_level},
        "details": {
            "p50_ms": {side: round(value, 3) for side, value in p50.items()},
            "p95_ms": {side: round(value, 3) for side, value in p95.items()},
            "queries_per_side": len(timings["target"]),
            "bars": {
                "title": f"latency of {shape.name} (ms)",
                "y_label": "ms",
                "labels": ["p50", "p95"],
                "groups": {
                    side: [round(p50[side], 3), round(p95[side], 3)]
                    for side in ("source", "target")
                },
            },
        },
    }
    remedy = (
        "the target answers this shape more slowly: check the plan (search.plan checks: a "
        "planner that prefers a sequential scan at this size, or a missing index), that the "
        "vector index fits in memory (shared_buffers, effective_cache_size), "
        f"{SWEEP_SETTINGS['hnsw']}, and that ANALYZE ran after the restore"
    )
    if p95["target"] > allowed and p95["target"] <= service_level:
        return [
            finding(
                f"search.latency.{shape.name}",
                AREA,
                f"{message}: slower than the source, within the app's service level (p95 <= "
                f"{service_level:g} ms, [load.slo.p95_ms])",
                kind=DIFFERS,
                remedy=remedy,
                **evidence,
            )
        ]
    return [
        outcome(
            f"search.latency.{shape.name}",
            AREA,
            p95["target"] <= allowed,
            message,
            remedy=remedy,
            **evidence,
        )
    ]


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.latency.<shape> for every dense query shape."""
    dense = shapes.per_shape(
        pair,
        settings,
        "search.latency",
        _check_shape,
        absent=shapes.NO_VECTOR_SHAPE,
        wanted=lambda shape: shape.dense,
    )
    return dense + not_dense(pair, "search.latency")
