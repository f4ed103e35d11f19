"""The query mix one load process runs: shapes, their weights, and parameter values drawn
from stored data, bound once into requests ready for the wire. Plain psycopg, no locust.

A request costs the client as little as the protocol allows, so that the load generator
measures the database and not itself: each shape's SQL is converted to `$n` placeholders and
every sampled parameter row dumped once, when the process starts; a request is then sent as
it is (extended protocol, unnamed statement: what psycopg sends with prepare_threshold=None
and pgbench with -M extended), read to its end by libpq, and only its row count is kept.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import Buffer
from psycopg.adapt import PyFormat, Transformer

from pgcutover.errors import ConfigError
from pgcutover.load.config import LoadConfig, Shape

#: A named placeholder, or an escaped percent sign.
PLACEHOLDER_OR_PERCENT = re.compile(r"%%|%\((\w+)\)s")


@dataclass(frozen=True)
class Request:
    """One query ready for the wire: SQL with `$n` placeholders and its parameters, dumped
    (with their types and formats) as psycopg would dump them."""

    query: bytes
    values: tuple[Buffer | None, ...]
    types: tuple[int, ...]
    formats: tuple[int, ...]


@dataclass(frozen=True)
class Workload:
    """What one simulated user runs: a weighted choice of shapes, each with its requests,
    one per sampled row of its parameters."""

    shapes: tuple[Shape, ...]
    cumulative_weights: tuple[float, ...]
    requests: tuple[tuple[Request, ...], ...]

    def pick(self, rng: random.Random) -> tuple[Shape, Request]:
        """The next request: a shape by weight and one of its requests at random."""
        total = self.cumulative_weights[-1]
        index = bisect.bisect(self.cumulative_weights, rng.random() * total)
        return self.shapes[index], rng.choice(self.requests[index])


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


def bind(
    conn: psycopg.Connection, shape: Shape, rows: list[Mapping[str, Any]]
) -> tuple[Request, ...]:
    """A shape's SQL with `$n` placeholders, with each row's values (and the shape's
    constants) dumped for it."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "%"
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    query = PLACEHOLDER_OR_PERCENT.sub(number, shape.sql).encode(conn.info.encoding)
    requests = []
    for row in rows:
        values = {**row, **shape.constants}
        dumper = Transformer(conn)
        dumped = dumper.dump_sequence(
            [values[name] for name in numbers], [PyFormat.AUTO] * len(numbers)
        )
        requests.append(Request(query, tuple(dumped), tuple(dumper.types), tuple(dumper.formats)))
    return tuple(requests)


def build_workload(config: LoadConfig, conn: psycopg.Connection, *, writes: bool) -> Workload:
    """Sample every shape's parameters once (shapes sharing a query share the sample), check
    that each placeholder has a value, and bind the requests."""
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
        requests=tuple(bind(conn, shape, samples[config.parameters_for(shape)]) for shape in mix),
    )


def execute(
    pgconn: pq.abc.PGconn, request: Request, wait: Callable[[bool], None], encoding: str
) -> int:
    """Send one request and read it to its end; returns the rows it produced (or changed).
    `wait(writing)` blocks until the socket can be written (True) or read (False)."""
    pgconn.send_query_params(request.query, request.values, request.types, request.formats)
    while pgconn.flush():
        wait(True)
    rows = 0
    error: psycopg.Error | None = None
    while True:
        while pgconn.is_busy():
            wait(False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        if result.status == pq.ExecStatus.FATAL_ERROR:
            error = error or psycopg.errors.error_from_result(result, encoding)
        else:
            rows += result.ntuples or result.command_tuples or 0
    if error is not None:
        raise error
    return rows
