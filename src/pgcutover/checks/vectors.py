"""Vector dimensions agree everywhere they are stated (the guide's "Vector dimensions
mismatch"): the app's own vector columns (the inventory's, by default those of
VECTOR_DB_DIMENSIONS) against VECTOR_DB_DIMENSIONS and the embedding model; every vector
column, declared and stored, against the source."""

from __future__ import annotations

from psycopg import sql

from pgcutover.catalog import VectorColumn, vector_columns
from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.dataset.embedder import model_dimension
from pgcutover.db import DataRole, Endpoint, connection
from pgcutover.inventory import EmbeddingColumn

AREA = "vectors"
REMEDY = (
    "the embedding model, VECTOR_DB_DIMENSIONS and the app's vector column must agree "
    "(all-MiniLM-L6-v2 gives 384): fix the configuration, or re-create the table with the "
    "right dimension and re-index the documents (the guide's step 4)"
)
COPY_REMEDY = (
    "the target's column or its vectors differ from the source's: re-create the column as the "
    "source declares it and migrate the table's rows again"
)


def _dimensions(column: EmbeddingColumn) -> sql.Composable:
    """SQL for the number of dimensions of one stored value of the column."""
    value = sql.Identifier(column.column)
    if column.type_name == "bit":
        return sql.SQL("length({})").format(value)
    if column.type_name == "sparsevec":
        return sql.SQL("split_part({}::text, '/', 2)::int").format(value)
    return sql.SQL("{}.vector_dims({})").format(sql.Identifier(column.type_schema), value)


def _stored_dims(endpoint: Endpoint, role: DataRole, column: EmbeddingColumn) -> list[int]:
    """The distinct dimensions of the vectors stored in a column."""
    query = sql.SQL("SELECT DISTINCT {} FROM {} WHERE {} IS NOT NULL ORDER BY 1").format(
        _dimensions(column),
        sql.Identifier(column.schema, column.table),
        sql.Identifier(column.column),
    )
    with connection(endpoint, role=role) as conn:
        return [int(row[0]) for row in conn.execute(query).fetchall()]


def _configuration(settings: Settings, app: list[EmbeddingColumn]) -> CheckResult:
    """The app's configuration agrees with itself and with its own columns."""
    configured = settings.vector_dimensions
    model_dims = model_dimension(settings.embedding_model)
    names = ", ".join(f"{c.qualified} ({c.dimensions})" for c in app) or "none"
    wrong = [c for c in app if c.dimensions not in (None, configured)]
    ok = model_dims == configured and not wrong
    return outcome(
        "vector_dimensions.configuration",
        AREA,
        ok,
        f"EMBEDDINGS_XENOVA_MODEL={settings.embedding_model} gives "
        f"{model_dims if model_dims else 'an unknown number of'} dimensions, "
        f"VECTOR_DB_DIMENSIONS={configured}; the app's vector columns: {names}",
        expected=configured,
        actual={"model": model_dims, "app_columns": {c.qualified: c.dimensions for c in app}},
        remedy=REMEDY,
    )


def _column(
    pair: Pair, settings: Settings, column: EmbeddingColumn, target: VectorColumn | None
) -> CheckResult:
    check_id = f"vector_dimensions.{column.qualified}"
    kind = "the app's vector column" if column.app else "a vector column"
    if target is None:
        return outcome(
            check_id,
            AREA,
            False,
            f"{column.qualified} ({kind}, {column.type_name}({column.declared})) is missing "
            "on the target",
            expected=column.declared,
            remedy=COPY_REMEDY,
        )
    stored = {
        "source": _stored_dims(pair.source, "source", column),
        "target": _stored_dims(pair.target, "target", column),
    }
    declared = {"source": column.declared, "target": target.dimensions}
    same_type = column.type_name == target.type_name
    ok = (
        same_type
        and declared["source"] == declared["target"]
        and (stored["source"] == stored["target"])
    )
    problems = []
    if column.app:
        configured = settings.vector_dimensions
        if any(d != configured for d in stored["target"]):
            problems.append(
                f"stored vectors of {stored['target']} dimensions, app configured {configured}"
            )
            ok = False
    message = (
        f"{column.qualified} ({kind}): declared {column.type_name}({declared['source']}) on the "
        f"source and {target.type_name}({declared['target']}) on the target, stored rows have "
        f"{stored['source'] or 'no'} / {stored['target'] or 'no'} dimensions"
    )
    if problems:
        message += "; " + "; ".join(problems)
    return outcome(
        check_id,
        AREA,
        ok,
        message,
        expected={"declared": declared["source"], "stored": stored["source"]},
        actual={"declared": declared["target"], "stored": stored["target"]},
        remedy=REMEDY if problems else COPY_REMEDY,
        details={"app": column.app, "model": column.model},
    )


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    inventory = pair.inventory
    with connection(pair.target, role="target") as conn:
        on_target = {c.qualified: c for c in vector_columns(conn, settings.ignored_schemas)}
    results = [_configuration(settings, list(inventory.app_vectors))]
    for column in inventory.vectors:
        results.append(_column(pair, settings, column, on_target.get(column.qualified)))
    known = {column.qualified for column in inventory.vectors}
    for name in sorted(set(on_target) - known):
        extra = on_target[name]
        results.append(
            outcome(
                f"vector_dimensions.{name}",
                AREA,
                True,
                f"{name} ({extra.type_name}({extra.dimensions})) exists on the target only",
            )
        )
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """One result for the app's configuration, one per vector column."""
    return guarded("vector_dimensions", AREA, lambda: _compare(pair, settings), pair)
