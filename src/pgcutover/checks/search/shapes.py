"""The app's query shapes and the search thresholds (settings.section("search"): data in
fixtures/search.toml, overridable in targets.toml), and the ANN indexes found in the catalog."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgcutover.catalog import (
    OPCLASS_OPERATORS,
    AnnIndex,
    VectorColumn,
    ann_indexes,
    vector_columns,
)
from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.config import FIXTURES_DIR, Settings
from pgcutover.db import connection
from pgcutover.errors import ConfigError

AREA = "search"
#: pgvector's distance operators, by the operator class an index is built with.
OPERATORS = tuple(OPCLASS_OPERATORS.values())
#: The query-time knob that trades recall for speed, per index method.
SWEEP_SETTINGS = {"hnsw": "hnsw.ef_search", "ivfflat": "ivfflat.probes"}
#: k for vector columns the catalog shows but no configured shape names.
DISCOVERED_K = 10
WHERE = "fixtures/search.toml (or [search] in targets.toml)"


@dataclass(frozen=True)
class Shape:
    """One nearest-neighbour query of the app:
    `SELECT ... FROM table [WHERE filter_column = $f] ORDER BY column <op> $q LIMIT k`."""

    name: str
    schema: str
    table: str
    column: str
    operator: str
    k: int
    filter_column: str | None = None
    discovered: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"

    def query(self, filter_expression: sql.Composable | None = None) -> sql.Composed:
        """The shape as SQL returning each row's distance; parameters %(q)s, %(f)s, %(k)s.
        `filter_expression` replaces the filter column (e.g. a cast the btree cannot serve)."""
        column = sql.Identifier(self.column)
        distance = sql.SQL("{} {} %(q)s::vector").format(column, sql.SQL(self.operator))
        where = sql.SQL("")
        if self.filter_column is not None:
            left = filter_expression or sql.Identifier(self.filter_column)
            where = sql.SQL(" WHERE {} = %(f)s").format(left)
        return sql.SQL("SELECT {d} FROM {t}{w} ORDER BY {d} LIMIT %(k)s").format(
            d=distance, t=sql.Identifier(self.schema, self.table), w=where
        )


@dataclass(frozen=True)
class Lookup:
    """A relational lookup the guide indexes ("Slow queries after migration")."""

    name: str
    schema: str
    table: str
    column: str


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
    content_column: str
    sample: int
    min_similarity: float


@dataclass(frozen=True)
class SmokeConfig:
    document: str
    question: str


@dataclass(frozen=True)
class SearchConfig:
    """Everything the search checks read from configuration."""

    shapes: tuple[Shape, ...]
    lookups: tuple[Lookup, ...]
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


def _split_table(name: str, where: str) -> tuple[str, str]:
    schema, dot, table = name.rpartition(".")
    if not table:
        raise ConfigError(f"{where}: table is empty", "name it as schema.table")
    return (schema if dot else "public"), table


def _shape(entry: Mapping[str, Any], index: int) -> Shape:
    where = f"search shape #{index + 1}"
    name = _value(entry, "name", str, where)
    where = f"search shape {name!r}"
    schema, table = _split_table(_value(entry, "table", str, where), where)
    operator = _value(entry, "operator", str, where)
    if operator not in OPERATORS:
        raise ConfigError(
            f"{where}: operator {operator!r} is not a pgvector distance operator",
            f"use one of {', '.join(OPERATORS)}",
        )
    k = _value(entry, "k", int, where)
    if k <= 0:
        raise ConfigError(f"{where}: k must be positive", "set k to the app's LIMIT")
    filter_column = entry.get("filter_column")
    if filter_column is not None and not isinstance(filter_column, str):
        raise ConfigError(f"{where}: filter_column must be a string", "name one column")
    return Shape(
        name=name,
        schema=schema,
        table=table,
        column=_value(entry, "column", str, where),
        operator=operator,
        k=k,
        filter_column=filter_column,
    )


def load(settings: Settings) -> SearchConfig:
    """Parse and validate the `search` section; errors name the key and the fix."""
    data = settings.section("search")
    shapes = tuple(_shape(entry, i) for i, entry in enumerate(data.get("shapes", [])))
    names = [shape.name for shape in shapes]
    if len(set(names)) != len(names):
        raise ConfigError(f"search shapes repeat a name: {names}", "give every shape its own name")
    lookups = []
    for i, entry in enumerate(data.get("lookups", [])):
        where = f"search lookup #{i + 1}"
        schema, table = _split_table(_value(entry, "table", str, where), where)
        lookups.append(
            Lookup(
                _value(entry, "name", str, where),
                schema,
                table,
                _value(entry, "column", str, where),
            )
        )
    recall = data.get("recall", {})
    latency = data.get("latency", {})
    drift = data.get("drift", {})
    smoke = data.get("smoke", {})
    return SearchConfig(
        shapes=shapes,
        lookups=tuple(lookups),
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
            content_column=_value(drift, "content_column", str, "search.drift"),
            sample=_value(drift, "sample", int, "search.drift"),
            min_similarity=_value(drift, "min_similarity", float, "search.drift"),
        ),
        smoke=SmokeConfig(
            document=_value(smoke, "document", str, "search.smoke"),
            question=_value(smoke, "question", str, "search.smoke"),
        ),
    )


def index_for(shape: Shape, indexes: Sequence[AnnIndex]) -> AnnIndex | None:
    """The valid ANN index that can serve a shape's ORDER BY (same column and operator)."""
    for index in indexes:
        if (
            (index.schema, index.table, index.column) == (shape.schema, shape.table, shape.column)
            and index.operator == shape.operator
            and index.valid
        ):
            return index
    return None


def discover(
    conn: psycopg.Connection, config: SearchConfig, settings: Settings
) -> tuple[list[Shape], list[CheckResult]]:
    """The configured shapes that exist on the source, plus an unfiltered shape for every
    other `vector` column there; a configured shape the source lacks is a failed result."""
    columns = {
        column.qualified: column for column in vector_columns(conn, settings.ignored_schemas)
    }
    indexes = ann_indexes(conn, settings.ignored_schemas)
    shapes: list[Shape] = []
    problems: list[CheckResult] = []
    for shape in config.shapes:
        column = columns.get(shape.qualified)
        problem = _unusable(column, shape.qualified)
        if problem:
            problems.append(
                outcome(
                    f"search.shape.{shape.name}",
                    AREA,
                    False,
                    f"query shape {shape.name!r}: {problem}",
                    remedy=f"fix the shape in {WHERE} so it names the app's vector table",
                )
            )
        else:
            shapes.append(shape)
    named = {shape.qualified for shape in config.shapes}
    for qualified, column in sorted(columns.items()):
        if qualified in named or _unusable(column, qualified):
            continue
        operators = [i.operator for i in indexes if f"{i.schema}.{i.table}.{i.column}" == qualified]
        shapes.append(
            Shape(
                name=qualified,
                schema=column.schema,
                table=column.table,
                column=column.column,
                operator=next((op for op in operators if op), "<=>"),
                k=DISCOVERED_K,
                discovered=True,
            )
        )
    return shapes, problems


def _unusable(column: VectorColumn | None, qualified: str) -> str | None:
    """Why a column cannot be searched by these checks, or None."""
    if column is None:
        return f"{qualified} is not a vector column on the source"
    if column.type_name != "vector":
        return f"{qualified} is {column.type_name}; the search checks measure `vector` columns"
    return None


def per_shape(
    pair: Pair,
    settings: Settings,
    prefix: str,
    run: Callable[[Pair, Settings, SearchConfig, Shape], list[CheckResult]],
    wanted: Callable[[Shape], bool] = lambda shape: True,
) -> list[CheckResult]:
    """A check over every wanted shape: each shape guarded as `<prefix>.<shape>`, the whole
    guarded as `<prefix>` (a crash is `unknown`, never a pass)."""

    def each() -> list[CheckResult]:
        config = load(settings)
        with connection(pair.source, role="source") as conn:
            found, results = discover(conn, config, settings)
        chosen = [shape for shape in found if wanted(shape)]
        if not chosen and not results:
            return [CheckResult(prefix, AREA, "skip", "no query shape of this kind to check")]
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
