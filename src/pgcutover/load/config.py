"""Load-test configuration as data: which query shapes run and how often, how hard, and the
service levels they must meet (fixtures/load.toml, overridable in targets.toml [load]).

The mix is the inventory's own query shapes (the search checks run the same ones): nearest-
neighbour and filtered searches per vector column, text searches on trigram/tsvector indexes,
and lookups by filter column, each sampling its query values from the data it searches.
[load.shapes] adds the app's own SQL where the discovered mix is not enough.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from psycopg import sql

from pgcutover.catalog import sample_clause
from pgcutover.config import Settings
from pgcutover.errors import ConfigError
from pgcutover.inventory import Inventory, Lookup, TextShape
from pgcutover.inventory import Shape as SearchShape

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
WHERE = "fixtures/load.toml (or targets.toml [load])"
#: Stored rows sampled per locust process to fill a shape's placeholders.
SAMPLE_ROWS = 200


@dataclass(frozen=True)
class Shape:
    """One query the app sends. Named placeholders `%(name)s` are filled from a row of
    stored data, sampled by `parameters_sql` (empty: the shared [load.parameters] query),
    and from `constants`; `write` shapes change data and run only where writes are allowed."""

    name: str
    sql: str
    write: bool = False
    parameters_sql: str = ""
    constants: dict[str, Any] = field(default_factory=dict, hash=False)
    #: vector, filtered, text, lookup (discovered) or app (from [load.shapes]).
    kind: str = "app"

    @property
    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER.findall(self.sql))


@dataclass(frozen=True)
class ServiceLevels:
    """What the target must sustain: error rate, latency per shape, total throughput."""

    error_rate: float
    min_throughput: float
    p95_ms: dict[str, float]
    p99_ms: dict[str, float]

    def p95(self, shape: str) -> float:
        return _per_shape(self.p95_ms, shape, "p95_ms")

    def p99(self, shape: str) -> float:
        return _per_shape(self.p99_ms, shape, "p99_ms")


@dataclass(frozen=True)
class DuringDump:
    """The opt-in measurement of the read mix on the source while pg_dump runs."""

    enabled: bool
    baseline_seconds: float
    min_dump_seconds: float
    max_slowdown: float


@dataclass(frozen=True)
class LoadConfig:
    """Everything a load run needs except where to connect."""

    shapes: tuple[Shape, ...]
    weights: dict[str, float]
    parameters_sql: str
    users: int
    spawn_rate: float
    duration: int
    wait_seconds: float
    statement_timeout_ms: int
    writes: bool
    slo: ServiceLevels
    during_dump: DuringDump

    def parameters_for(self, shape: Shape) -> str:
        """The query that samples this shape's placeholder values."""
        return shape.parameters_sql or self.parameters_sql

    def mix(self, *, writes: bool) -> dict[Shape, float]:
        """Shapes that run and their weights; write shapes only when `writes` is True."""
        mix = {
            shape: self.weights[shape.name]
            for shape in self.shapes
            if self.weights.get(shape.name, 0) > 0 and (writes or not shape.write)
        }
        if not mix:
            raise ConfigError(
                f"{WHERE}: no query shape has a positive weight"
                + ("" if writes else " among the read-only shapes"),
                "give at least one read shape a weight > 0 in [load.weights]",
            )
        return mix

    def with_overrides(self, **changes: Any) -> LoadConfig:
        """A copy with some fields replaced (tests and the benchmark tune runs this way)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadConfig:
        return cls(
            **{
                **data,
                "shapes": tuple(Shape(**shape) for shape in data["shapes"]),
                "slo": ServiceLevels(**data["slo"]),
                "during_dump": DuringDump(**data["during_dump"]),
            }
        )

    def write(self, path: Path) -> Path:
        """Save for a locust process (`--pg-load-config`); holds no password."""
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path

    @classmethod
    def read(cls, path: Path) -> LoadConfig:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"cannot read the load configuration {path}: {error}",
                "pass a file written by pgcutover (LoadConfig.write), or leave "
                "--pg-load-config out to read fixtures/load.toml",
            ) from None


def _per_shape(table: Mapping[str, float], shape: str, key: str) -> float:
    if shape in table:
        return float(table[shape])
    if "default" in table:
        return float(table["default"])
    raise ConfigError(
        f"{WHERE}: [load.slo.{key}] has no entry for {shape!r} and no default",
        f"add `{shape} = <milliseconds>` or `default = <milliseconds>` to [load.slo.{key}]",
    )


def _number(section: Mapping[str, Any], key: str, kind: type, *, minimum: float = 0) -> Any:
    if key not in section:
        raise ConfigError(f"{WHERE}: missing `{key}`", f"set {key} in [load]")
    try:
        value = kind(section[key])
    except (TypeError, ValueError):
        raise ConfigError(
            f"{WHERE}: `{key}` must be a number, got {section[key]!r}", f"fix {key}"
        ) from None
    if value < minimum:
        raise ConfigError(f"{WHERE}: `{key}` must be >= {minimum}, got {value}", f"fix {key}")
    return value


def _shapes(table: Mapping[str, Any], where: str) -> dict[str, Shape]:
    """Shapes from TOML tables `[load.shapes.<name>]` with `sql` and optional `write`."""
    shapes = {}
    for name, entry in table.items():
        if not isinstance(entry, Mapping) or not entry.get("sql"):
            raise ConfigError(
                f"{where}: query shape {name!r} needs an `sql` text, got {entry!r}",
                "see fixtures/load.toml for the format",
            )
        shapes[str(name)] = Shape(str(name), str(entry["sql"]).strip(), bool(entry.get("write")))
    return shapes


def _sample(
    columns: Sequence[sql.Composable], schema: str, table: str, *, pages: bool = False
) -> str:
    """A sample of stored rows to draw query values from. With `pages`, from a few pages of
    the table (TABLESAMPLE: a vector table of millions of rows is never read whole, nor every
    vector in it rendered as text); TABLESAMPLE needs a table, so relational lookups, which
    may meet a view on a broken target, read theirs whole."""
    source = (
        sample_clause(schema, table, SAMPLE_ROWS * 2) if pages else sql.Identifier(schema, table)
    )
    return (
        sql.SQL("SELECT {} FROM {} ORDER BY random() LIMIT {}")
        .format(sql.SQL(", ").join(columns), source, sql.Literal(SAMPLE_ROWS))
        .as_string()
    )


def from_search(shape: SearchShape) -> Shape:
    """A search shape as the load runs it: its own SQL, its LIMIT k, and query vectors (and
    filter values) sampled from the column it searches."""
    columns = [sql.SQL("{}::text AS q").format(sql.Identifier(shape.column))]
    if shape.filter_column is not None:
        columns.append(sql.SQL("{} AS f").format(sql.Identifier(shape.filter_column)))
    return Shape(
        name=shape.name,
        sql=shape.query().as_string(),
        parameters_sql=_sample(columns, shape.schema, shape.table, pages=True),
        constants={"k": shape.k},
        kind="filtered" if shape.filter_column else "vector",
    )


def from_text(shape: TextShape) -> Shape:
    """A text search (the keyword half of hybrid search), with a term from the data."""
    return Shape(
        name=shape.name,
        sql=shape.query().as_string(),
        parameters_sql=shape.term_query().as_string(),
        kind="text",
    )


def from_lookup(lookup: Lookup) -> Shape:
    """An equality lookup by a filter column, with values from the data."""
    column = sql.Identifier(lookup.column)
    statement = sql.SQL("SELECT * FROM {} WHERE {} = %(v)s LIMIT 20").format(
        sql.Identifier(lookup.schema, lookup.table), column
    )
    return Shape(
        name=lookup.name,
        sql=statement.as_string(),
        parameters_sql=_sample(
            [sql.SQL("{}::text AS v").format(column)], lookup.schema, lookup.table
        ),
        kind="lookup",
    )


def discovered(inventory: Inventory) -> tuple[Shape, ...]:
    """The inventory's query shapes as load shapes."""
    return (
        *(from_search(shape) for shape in inventory.shapes),
        *(from_text(shape) for shape in inventory.text_shapes),
        *(from_lookup(lookup) for lookup in inventory.lookups),
    )


def parse_config(load: Mapping[str, Any], found: Sequence[Shape] = ()) -> LoadConfig:
    """Validate the merged [load] section, plus the discovered shapes, into a LoadConfig.
    Weights: [load.weights] by shape name, else [load.kind_weights] by kind."""
    shapes = _shapes(load.get("shapes", {}), WHERE)
    clashes = sorted(set(shapes) & {shape.name for shape in found})
    if clashes:
        raise ConfigError(
            f"{WHERE}: [load.shapes] redefines the discovered shapes {clashes}",
            "give the app's own shape another name",
        )
    shapes.update({shape.name: shape for shape in found})
    named = {str(k): float(v) for k, v in load.get("weights", {}).items()}
    unknown = sorted(set(named) - set(shapes))
    if unknown:
        raise ConfigError(
            f"{WHERE}: [load.weights] names unknown shapes {unknown} (known: {sorted(shapes)})",
            "fix the names, or define the shape in [load.shapes]",
        )
    by_kind = {str(k): float(v) for k, v in load.get("kind_weights", {}).items()}
    weights = {
        name: named.get(name, by_kind.get(shape.kind, 0.0)) for name, shape in shapes.items()
    }
    parameters = load.get("parameters", {}).get("sql", "")
    needing = sorted(n for n, s in shapes.items() if s.kind == "app" and not s.parameters_sql)
    if needing and not parameters:
        raise ConfigError(
            f"{WHERE}: the shapes {needing} take their values from [load.parameters] sql, "
            "which is missing",
            "give a query whose columns fill the shapes' %(name)s placeholders",
        )
    slo = load.get("slo", {})
    dump = load.get("during_dump", {})
    config = LoadConfig(
        shapes=tuple(shapes.values()),
        weights=weights,
        parameters_sql=str(parameters).strip(),
        users=_number(load, "users", int, minimum=1),
        spawn_rate=_number(load, "spawn_rate", float, minimum=0.1),
        duration=_number(load, "duration", int, minimum=1),
        wait_seconds=_number(load, "wait_seconds", float),
        statement_timeout_ms=_number(load, "statement_timeout_ms", int, minimum=1),
        writes=bool(load.get("writes", False)),
        slo=ServiceLevels(
            error_rate=_number(slo, "error_rate", float),
            min_throughput=_number(slo, "min_throughput", float),
            p95_ms=dict(slo.get("p95_ms", {})),
            p99_ms=dict(slo.get("p99_ms", {})),
        ),
        during_dump=DuringDump(
            enabled=bool(dump.get("enabled", False)),
            baseline_seconds=_number(dump, "baseline_seconds", float, minimum=1),
            min_dump_seconds=_number(dump, "min_dump_seconds", float, minimum=1),
            max_slowdown=_number(dump, "max_slowdown", float),
        ),
    )
    for shape in config.mix(writes=True):
        config.slo.p95(shape.name)
        config.slo.p99(shape.name)
    return config


def load_config(settings: Settings, inventory: Inventory) -> LoadConfig:
    """The run's load configuration: fixtures/load.toml and the inventory's shapes, with the
    overrides from targets.toml [load] and [targets.<target>.load]."""
    return parse_config(settings.section("load"), discovered(inventory))
