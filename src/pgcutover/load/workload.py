"""The query mix one load process runs: shapes, their weights, and parameter values drawn
from stored data. Plain psycopg, no locust: the locust user and the benchmark share it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from pgcutover.errors import ConfigError
from pgcutover.load.config import LoadConfig, Shape


@dataclass(frozen=True)
class Workload:
    """What one simulated user runs: a weighted choice of shapes, each filled with a
    randomly chosen row of its sampled parameters and its constants."""

    shapes: tuple[Shape, ...]
    cumulative_weights: tuple[float, ...]
    parameters: tuple[tuple[Mapping[str, Any], ...], ...]

    def pick(self, rng: random.Random) -> tuple[Shape, dict[str, Any]]:
        """The next request: a shape by weight and the values for its placeholders."""
        index = rng.choices(range(len(self.shapes)), cum_weights=self.cumulative_weights)[0]
        shape = self.shapes[index]
        return shape, {**rng.choice(self.parameters[index]), **shape.constants}


def sample_parameters(conn: psycopg.Connection, query: str) -> list[dict[str, Any]]:
    """Rows of placeholder values from stored data (a shape's parameters query)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        rows = cursor.execute(query).fetchall()  # type: ignore[arg-type]
    if not rows:
        raise ConfigError(
            f"the load parameters query returned no rows, so there is no stored data to draw "
            f"query values from: {query}",
            "load the data first, or fix the parameters query in fixtures/load.toml",
        )
    return rows


def build_workload(config: LoadConfig, conn: psycopg.Connection, *, writes: bool) -> Workload:
    """Sample every shape's parameters once (shapes sharing a query share the sample) and
    check that each placeholder has a value."""
    mix = config.mix(writes=writes)
    samples: dict[str, list[dict[str, Any]]] = {}
    for shape in mix:
        query = config.parameters_for(shape)
        if query not in samples:
            samples[query] = sample_parameters(conn, query)
        missing = shape.placeholders - set(samples[query][0]) - set(shape.constants)
        if missing:
            raise ConfigError(
                f"query shape {shape.name!r} uses placeholders {sorted(missing)} that its "
                f"parameters query does not return: {query}",
                "add those columns to the parameters query or fix the shape",
            )
    return Workload(
        shapes=tuple(mix),
        cumulative_weights=tuple(itertools.accumulate(mix.values())),
        parameters=tuple(tuple(samples[config.parameters_for(shape)]) for shape in mix),
    )


def execute(conn: psycopg.Connection, shape: Shape, parameters: Mapping[str, Any]) -> int:
    """Run one request to completion (all rows fetched); returns the rows it produced."""
    with conn.cursor() as cursor:
        cursor.execute(shape.sql, parameters)  # type: ignore[arg-type]
        if cursor.description is None:
            return max(cursor.rowcount, 0)
        return len(cursor.fetchall())
