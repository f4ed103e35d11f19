"""Vector dimensions agree everywhere they are stated: the columns on both sides, the stored
rows, VECTOR_DB_DIMENSIONS and the embedding model (the guide's "Vector dimensions mismatch")."""

from __future__ import annotations

from psycopg import sql

from pgcutover.catalog import VectorColumn, vector_columns
from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.dataset.embedder import model_dimension
from pgcutover.db import Endpoint, connection

AREA = "vectors"
REMEDY = (
    "the embedding model, VECTOR_DB_DIMENSIONS and the vector column must agree "
    "(all-MiniLM-L6-v2 gives 384): fix the configuration, or re-create the table with the "
    "right dimension and re-index the documents (the guide's step 4)"
)


def _stored_dims(endpoint: Endpoint, column: VectorColumn) -> list[int]:
    """The distinct dimensions of the vectors stored in a column on the target."""
    query = sql.SQL(
        "SELECT DISTINCT vector_dims({col}) FROM {tbl} WHERE {col} IS NOT NULL ORDER BY 1"
    ).format(col=sql.Identifier(column.column), tbl=sql.Identifier(column.schema, column.table))
    with connection(endpoint, role="target") as conn:
        return [int(row[0]) for row in conn.execute(query).fetchall()]


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    with connection(pair.source, role="source") as conn:
        source_columns = {c.qualified: c for c in vector_columns(conn, settings.ignored_schemas)}
    with connection(pair.target, role="target") as conn:
        target_columns = {c.qualified: c for c in vector_columns(conn, settings.ignored_schemas)}
    configured = settings.vector_dimensions
    model_dims = model_dimension(settings.embedding_model)
    results = [
        outcome(
            "vector_dimensions.configuration",
            AREA,
            model_dims == configured,
            f"EMBEDDINGS_XENOVA_MODEL={settings.embedding_model} gives "
            f"{model_dims if model_dims else 'an unknown number of'} dimensions, "
            f"VECTOR_DB_DIMENSIONS={configured}",
            expected=configured,
            actual=model_dims,
            remedy=REMEDY,
        )
    ]
    for name in sorted(source_columns.keys() | target_columns.keys()):
        src, dst = source_columns.get(name), target_columns.get(name)
        if dst is None:
            results.append(
                outcome(
                    f"vector_dimensions.{name}",
                    AREA,
                    False,
                    f"{name} is missing on the target",
                    expected=src.dimensions,  # type: ignore[union-attr]
                    remedy="rerun the migration",
                )
            )
            continue
        stored = _stored_dims(pair.target, dst)
        declared = {"source": src.dimensions if src else None, "target": dst.dimensions}
        agree = (
            src is not None
            and src.dimensions == dst.dimensions == configured
            and all(d == configured for d in stored)
        )
        results.append(
            outcome(
                f"vector_dimensions.{name}",
                AREA,
                agree,
                f"{name}: declared {declared['source']} on the source and "
                f"{declared['target']} on the target, stored rows have {stored or 'no'} "
                f"dimensions, configured {configured}",
                expected=configured,
                actual={"declared": declared, "stored": stored},
                remedy=REMEDY,
            )
        )
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """One result for the configuration, one per vector column."""
    return guarded("vector_dimensions", AREA, lambda: _compare(pair, settings), pair)
