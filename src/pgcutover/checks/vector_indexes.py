"""Every vector index of the source exists on the target with the same access method (the
guide's "ensure HNSW index exists"). Full plan and recall checks live in the search checks."""

from __future__ import annotations

from pgcutover.catalog import AnnIndex, ann_indexes
from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import connection

AREA = "search"


def _by_name(indexes: list[AnnIndex]) -> dict[str, AnnIndex]:
    """Indexes by schema-qualified name, as both sides are paired."""
    return {f"{index.schema}.{index.name}": index for index in indexes}


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    with connection(pair.source, role="source") as conn:
        source = _by_name(ann_indexes(conn, settings.ignored_schemas))
    with connection(pair.target, role="target") as conn:
        target = _by_name(ann_indexes(conn, settings.ignored_schemas))
    remedy = (
        "CREATE INDEX IF NOT EXISTS idx_embedding_hnsw ON vector_embeddings USING hnsw "
        "(embedding vector_cosine_ops); then ANALYZE (the guide's 'slow queries' remedy)"
    )
    if not source and not target:
        return [
            outcome(
                "vector_index.any",
                AREA,
                False,
                "neither side has an HNSW or ivfflat index: every vector search is a "
                "sequential scan",
                remedy=remedy,
            )
        ]
    results = []
    for name in sorted(source.keys() | target.keys()):
        src, dst = source.get(name), target.get(name)
        fix = remedy
        if dst is None:
            ok, message = False, f"{name} ({src.method}) is missing on the target"  # type: ignore[union-attr]
        elif src is None:
            ok, message = True, f"{name} ({dst.method}) exists on the target only"
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
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """One result per vector index found on either side."""
    return guarded("vector_index", AREA, lambda: _compare(pair, settings), pair)
