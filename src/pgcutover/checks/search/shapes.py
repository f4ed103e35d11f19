"""The search thresholds (settings.section("search"): data in fixtures/search.toml,
overridable in targets.toml) and how a check runs over the inventory's query shapes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgcutover.catalog import AnnIndex, ann_indexes
from pgcutover.checks.base import CheckResult, Pair, guarded
from pgcutover.config import FIXTURES_DIR, Settings
from pgcutover.errors import ConfigError
from pgcutover.inventory import Shape

AREA = "search"
#: The query-time knob that trades recall for speed, per index method.
SWEEP_SETTINGS = {"hnsw": "hnsw.ef_search", "ivfflat": "ivfflat.probes"}
WHERE = "fixtures/search.toml (or [search] in targets.toml)"
__all__ = ["AREA", "SWEEP_SETTINGS", "Shape", "ann_indexes", "index_for", "load", "per_shape"]


@dataclass(frozen=True)
class RecallConfig:
    tolerance: float
    epsilon: float
    ef_search: tuple[int, ...]
    ivfflat_probes: tuple[int, ...]
    perturbed_queries: int
    perturbation: float
    min_row_fraction: float
    golden_questions: Path
    seed: int


@dataclass(frozen=True)
class LatencyConfig:
    ratio: float
    slack_ms: float
    repeats: int


@dataclass(frozen=True)
class DriftConfig:
    sample: int
    min_similarity: float


@dataclass(frozen=True)
class SmokeConfig:
    document: str
    question: str


@dataclass(frozen=True)
class SearchConfig:
    """Everything the search checks read from configuration."""

    recall: RecallConfig
    latency: LatencyConfig
    drift: DriftConfig
    smoke: SmokeConfig


def _value(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing {key}", f"add {key} to {WHERE}")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ConfigError(
            f"{where}: {key} must be a {kind.__name__}, got {value!r}", f"fix {key} in {WHERE}"
        )
    return value


def _ints(table: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
    values = _value(table, key, list, where)
    if not values or not all(isinstance(v, int) and v > 0 for v in values):
        raise ConfigError(
            f"{where}: {key} must be a list of positive integers", f"fix {key} in {WHERE}"
        )
    return tuple(values)


def load(settings: Settings) -> SearchConfig:
    """Parse and validate the `search` section; errors name the key and the fix."""
    data = settings.section("search")
    recall = data.get("recall", {})
    latency = data.get("latency", {})
    drift = data.get("drift", {})
    smoke = data.get("smoke", {})
    return SearchConfig(
        recall=RecallConfig(
            tolerance=_value(recall, "tolerance", float, "search.recall"),
            epsilon=_value(recall, "epsilon", float, "search.recall"),
            ef_search=_ints(recall, "ef_search", "search.recall"),
            ivfflat_probes=_ints(recall, "ivfflat_probes", "search.recall"),
            perturbed_queries=_value(recall, "perturbed_queries", int, "search.recall"),
            perturbation=_value(recall, "perturbation", float, "search.recall"),
            min_row_fraction=_value(recall, "min_row_fraction", float, "search.recall"),
            golden_questions=FIXTURES_DIR
            / _value(recall, "golden_questions", str, "search.recall"),
            seed=_value(recall, "seed", int, "search.recall"),
        ),
        latency=LatencyConfig(
            ratio=_value(latency, "ratio", float, "search.latency"),
            slack_ms=_value(latency, "slack_ms", float, "search.latency"),
            repeats=_value(latency, "repeats", int, "search.latency"),
        ),
        drift=DriftConfig(
            sample=_value(drift, "sample", int, "search.drift"),
            min_similarity=_value(drift, "min_similarity", float, "search.drift"),
        ),
        smoke=SmokeConfig(
            document=_value(smoke, "document", str, "search.smoke"),
            question=_value(smoke, "question", str, "search.smoke"),
        ),
    )


def index_for(shape: Shape, indexes: Sequence[AnnIndex]) -> AnnIndex | None:
    """The valid ANN index that can serve a shape's ORDER BY (same column, expression and
    operator)."""
    for index in indexes:
        if (
            (index.schema, index.table, index.column) == (shape.schema, shape.table, shape.column)
            and index.expression == shape.expression
            and index.operator == shape.operator
            and index.valid
        ):
            return index
    return None


#: Why a database has no nearest-neighbour shape, and how to give it one.
NO_VECTOR_SHAPE = (
    "no nearest-neighbour query shape: the source has no vector column to search (or, for"
    " recall and latency, none they read as dense vectors); name one as a [[search.shapes]]"
    " entry in targets.toml"
)


def per_shape(
    pair: Pair,
    settings: Settings,
    prefix: str,
    run: Callable[[Pair, Settings, SearchConfig, Shape], list[CheckResult]],
    absent: str,
    wanted: Callable[[Shape], bool] = lambda shape: True,
) -> list[CheckResult]:
    """A check over every wanted shape: each shape guarded as `<prefix>.<shape>`, the whole
    guarded as `<prefix>` (a crash is `unknown`, never a pass); without one, a skip saying
    why (`absent`)."""

    def each() -> list[CheckResult]:
        config = load(settings)
        chosen = [shape for shape in pair.inventory.shapes if wanted(shape)]
        if not chosen:
            return [CheckResult(prefix, AREA, "skip", absent)]
        results: list[CheckResult] = []
        for shape in chosen:
            results.extend(
                guarded(
                    f"{prefix}.{shape.name}",
                    AREA,
                    lambda s=shape: run(pair, settings, config, s),
                    pair,
                )
            )
        return results

    return guarded(prefix, AREA, each, pair)
