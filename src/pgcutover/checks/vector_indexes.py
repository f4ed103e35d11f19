"""Every vector index of the source exists on the target with the same access method (the
guide's "ensure HNSW index exists"). Full plan and recall checks live in the search checks."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import connection

AREA = "search"
VECTOR_METHODS = ("hnsw", "ivfflat")


@dataclass(frozen=True)
class VectorIndex:
    """An ANN index: its name, table, method, columns and definition."""

    schema: str
    name: str
    table: str
    method: str
    valid: bool
    definition: str


def vector_indexes(conn: psycopg.Connection, ignored: tuple[str, ...]) -> dict[str, VectorIndex]:
    """HNSW and ivfflat indexes by schema-qualified name."""
    rows = conn.execute(
        """
        SELECT n.nspname, i.relname, t.relname, am.amname, x.indisvalid,
               pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        JOIN pg_am am ON am.oid = i.relam
        WHERE am.amname = ANY(%s) AND n.nspname <> ALL(%s)
        """,
        (list(VECTOR_METHODS), list(ignored)),
    ).fetchall()
    return {f"{row[0]}.{row[1]}": VectorIndex(*row) for row in rows}


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    with connection(pair.source, role="source") as conn:
        source = vector_indexes(conn, settings.ignored_schemas)
    with connection(pair.target, role="target") as conn:
        target = vector_indexes(conn, settings.ignored_schemas)
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
