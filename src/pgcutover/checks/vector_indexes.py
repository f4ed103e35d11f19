"""Every vector index of the source exists on the target with the same access method and is
valid; full plan and recall checks live in the search checks. The guide's absolute demand
("ensure an HNSW index exists" for the app's vectors) is a readiness finding: the source
lacks it too, so it is advice, blocking only when [inventory] readiness_blocking says so."""

from __future__ import annotations

from pgcutover.catalog import AnnIndex, ann_indexes
from pgcutover.checks.base import READINESS, CheckResult, Pair, finding, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import connection
from pgcutover.inventory import EmbeddingColumn, inventory_config

AREA = "search"


def _by_name(indexes: list[AnnIndex] | tuple[AnnIndex, ...]) -> dict[str, AnnIndex]:
    """Indexes by schema-qualified name, as both sides are paired."""
    return {f"{index.schema}.{index.name}": index for index in indexes}


def create_index_advice(column: EmbeddingColumn) -> str:
    """The guide's remedy for a vector column without an ANN index, for this column."""
    ops = {"vector": "vector", "halfvec": "halfvec", "sparsevec": "sparsevec"}.get(column.type_name)
    opclass = f"{ops}_cosine_ops" if ops else "bit_hamming_ops"
    return (
        f"CREATE INDEX ON {column.schema}.{column.table} USING hnsw ({column.column} {opclass}); "
        f"ANALYZE {column.schema}.{column.table}; (the guide's 'Slow queries after migration'; "
        "use the operator class of the distance the app orders by)"
    )


def _readiness(pair: Pair, settings: Settings, target: dict[str, AnnIndex]) -> list[CheckResult]:
    """One finding per app vector column (or partition parent) no ANN index serves."""
    blocking = inventory_config(settings).readiness_blocking
    results = []
    for column in pair.inventory.app_vectors:
        if column.partition:
            continue
        place = (column.schema, column.table, column.column)
        on_source = [
            i for i in pair.inventory.ann_indexes if (i.schema, i.table, i.column) == place
        ]
        on_target = [i for i in target.values() if (i.schema, i.table, i.column) == place]
        if on_source:
            continue
        where = "either side" if not on_target else "the source"
        results.append(
            finding(
                f"vector_index.readiness.{column.qualified}",
                AREA,
                f"{column.qualified} (the app's vectors) has no HNSW or ivfflat index on {where}: "
                "every search reads the whole table. Not a migration fault (the source lacks "
                "it too); the guide wants one in production",
                kind=READINESS,
                blocking=blocking,
                remedy=create_index_advice(column),
            )
        )
    return results


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    source = _by_name(pair.inventory.ann_indexes)
    with connection(pair.target, role="target") as conn:
        target = _by_name(ann_indexes(conn, settings.ignored_schemas))
    results = []
    for name in sorted(source.keys() | target.keys()):
        src, dst = source.get(name), target.get(name)
        fix = f"recreate the source's index on the target: {src.definition}" if src else ""
        if src is None:
            ok, message = True, f"{name} ({dst.method}) exists on the target only"  # type: ignore[union-attr]
        elif dst is None:
            ok, message = False, f"{name} ({src.method}) is missing on the target"
        elif dst.method != src.method:
            ok, message = False, f"{name} is {src.method} on the source, {dst.method} on the target"
        elif not dst.valid:
            ok, message = False, f"{name} exists on the target but is INVALID (a failed build)"
            fix = f"REINDEX INDEX {name};"
        else:
            ok, message = True, f"{name} ({dst.method}) present and valid on the target"
        results.append(
            outcome(
                f"vector_index.{name}",
                AREA,
                ok,
                message,
                expected=src.definition if src else None,
                actual=dst.definition if dst else None,
                remedy=fix,
            )
        )
    results += _readiness(pair, settings, target)
    if not results:
        results.append(
            outcome(
                "vector_index", AREA, True, "no vector column and no vector index on the source"
            )
        )
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """One result per vector index found on either side, and a readiness finding per app
    vector column without one."""
    return guarded("vector_index", AREA, lambda: _compare(pair, settings), pair)
