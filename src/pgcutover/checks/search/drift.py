"""Embedding drift (the guide's step 4, "Re-index documents"): re-embed a sample of stored
chunks with the configured model (EMBEDDINGS_XENOVA_MODEL, run from its offline copy) and
compare with the stored vectors. A model or dimension mismatch between the app's
configuration and the stored data shows here. `reindex` rewrites the target's vectors with
fresh embeddings (`--reindex`), on the target only."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover.catalog import vector_columns
from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.checks.search import shapes
from pgcutover.checks.search.shapes import AREA, SearchConfig, Shape
from pgcutover.config import Settings
from pgcutover.dataset.embedder import OFFLINE_MODELS, Embedder, model_dimension
from pgcutover.db import Endpoint, connection
from pgcutover.errors import ConfigError

HISTOGRAM_EDGES = (-1.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0001)
DIMENSION_REMEDY = (
    "the embedding model, VECTOR_DB_DIMENSIONS and the vector column must agree (the guide's "
    "'Vector dimensions mismatch': all-MiniLM-L6-v2 gives 384): fix the configuration, or "
    "re-create the table with the right dimension and re-index the documents (step 4)"
)
#: Texts embedded per batch while re-indexing.
REINDEX_BATCH = 512


def _columns(pair_source: Endpoint, settings: Settings) -> list[Shape]:
    """One shape per searched vector column (shapes sharing a column are one column)."""
    with connection(pair_source, role="source") as conn:
        found, _ = shapes.discover(conn, shapes.load(settings), settings)
    unique: dict[str, Shape] = {}
    for shape in found:
        unique.setdefault(shape.qualified, shape)
    return list(unique.values())


def _sample(
    endpoint: Endpoint, role: str, shape: Shape, config: SearchConfig
) -> tuple[list[str], list[np.ndarray], int | None]:
    """A deterministic sample of (text, stored vector) and the column's declared dimension."""
    content = sql.Identifier(config.drift.content_column)
    with connection(endpoint, role=role) as conn:  # type: ignore[arg-type]
        register_vector(conn)
        declared = next(
            (
                column.dimensions
                for column in vector_columns(conn, ())
                if column.qualified == shape.qualified
            ),
            None,
        )
        rows = conn.execute(
            sql.SQL(
                "SELECT {t}, {c} FROM {tbl} WHERE {t} IS NOT NULL AND {c} IS NOT NULL"
                " ORDER BY md5({t}) LIMIT %s"
            ).format(
                t=content,
                c=sql.Identifier(shape.column),
                tbl=sql.Identifier(shape.schema, shape.table),
            ),
            (config.drift.sample,),
        ).fetchall()
    return (
        [row[0] for row in rows],
        [row[1].to_numpy().astype(np.float32) for row in rows],
        declared,
    )


def _similarities(stored: list[np.ndarray], fresh: np.ndarray) -> np.ndarray:
    values = []
    for vector, new in zip(stored, fresh, strict=True):
        norm = float(np.linalg.norm(vector) * np.linalg.norm(new))
        values.append(float(vector @ new) / norm if norm and len(vector) == len(new) else 0.0)
    return np.array(values)


def _distribution(values: np.ndarray) -> dict[str, float]:
    return {
        "min": round(float(values.min()), 4),
        "p5": round(float(np.percentile(values, 5)), 4),
        "median": round(float(np.median(values)), 4),
        "mean": round(float(values.mean()), 4),
        "max": round(float(values.max()), 4),
    }


def _dimensions(settings: Settings, declared: int | None, stored: set[int]) -> dict[str, Any]:
    return {
        "model": model_dimension(settings.embedding_model),
        "configured": settings.vector_dimensions,
        "column": declared,
        "stored": sorted(stored),
    }


def _check_column(pair: Pair, settings: Settings, shape: Shape) -> list[CheckResult]:
    config = shapes.load(settings)
    check_id = f"search.drift.{shape.qualified}"
    model = settings.embedding_model
    texts, stored, declared = _sample(pair.target, "target", shape, config)
    dims = _dimensions(settings, declared, {len(v) for v in stored})
    agreed = {dims["model"], dims["configured"], dims["column"], *dims["stored"]}
    if len(agreed) != 1 or None in agreed:
        return [
            outcome(
                check_id,
                AREA,
                False,
                f"{shape.qualified}: dimensions disagree: {model} gives {dims['model']}, "
                f"VECTOR_DB_DIMENSIONS is {dims['configured']}, the column is declared "
                f"{dims['column']} and the sampled rows have {dims['stored']}",
                expected=dims["configured"],
                actual=dims,
                remedy=DIMENSION_REMEDY,
            )
        ]
    if model not in OFFLINE_MODELS:
        return [
            CheckResult(
                check_id,
                AREA,
                "unknown",
                f"cannot re-embed with {model}: pgcutover has no offline copy of it",
                remedy=f"run with one of {', '.join(sorted(OFFLINE_MODELS))}, or check drift "
                "with the app's own embedder",
            )
        ]
    if not texts:
        return [CheckResult(check_id, AREA, "skip", f"{shape.qualified} is empty on the target")]
    source_texts, source_stored, _ = _sample(pair.source, "source", shape, config)
    embedder = Embedder(model, settings.cache_dir)
    try:
        target = _similarities(stored, embedder.embed(texts))
        source = _similarities(source_stored, embedder.embed(source_texts))
    finally:
        embedder.close()
    minimum = config.drift.min_similarity
    stats = _distribution(target)
    ok = stats["min"] >= minimum
    message = (
        f"{shape.qualified}: {len(texts)} chunks re-embedded with {model}: cosine similarity to "
        f"the stored vectors min {stats['min']:.4f}, median {stats['median']:.4f} on the target"
    )
    if source.size:
        message += f" (source median {float(np.median(source)):.4f})"
    if stats["median"] < minimum:
        message += f"; the stored vectors were not made by {model}"
    labels = [f"{low:g}..{high:g}" for low, high in itertools.pairwise(HISTOGRAM_EDGES)]
    return [
        outcome(
            check_id,
            AREA,
            ok,
            message,
            expected=f"every sampled similarity >= {minimum}",
            actual=stats,
            threshold=minimum,
            details={
                "model": model,
                "dimensions": dims,
                "similarity": {
                    "target": stats,
                    "source": _distribution(source) if source.size else None,
                },
                "below_threshold": int(np.count_nonzero(target < minimum)),
                "bars": {
                    "title": f"cosine similarity of stored vs re-embedded chunks ({model})",
                    "y_label": "chunks",
                    "labels": labels,
                    "groups": {
                        side: np.histogram(values, bins=HISTOGRAM_EDGES)[0].tolist()
                        for side, values in (("source", source), ("target", target))
                    },
                },
            },
            remedy=(
                f"the stored vectors do not match {model}: fix EMBEDDINGS_XENOVA_MODEL if it "
                "names the wrong model, otherwise re-index the documents (the guide's step 4; "
                "`pytest suites/ --reindex` rewrites the target's vectors)"
            ),
        )
    ]


def _run(pair: Pair, settings: Settings) -> list[CheckResult]:
    results: list[CheckResult] = []
    for shape in _columns(pair.source, settings):
        check_id = f"search.drift.{shape.qualified}"
        results.extend(
            guarded(check_id, AREA, lambda s=shape: _check_column(pair, settings, s), pair)
        )
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.drift.<schema.table.column> for every searched vector column."""
    return guarded("search.drift", AREA, lambda: _run(pair, settings), pair)


def _rewrite(
    conn: psycopg.Connection, shape: Shape, config: SearchConfig, embedder: Embedder
) -> int:
    """Re-embed every row's text and rewrite its vector, in one transaction with the table
    locked against writers (rows are addressed by ctid, which the lock keeps stable)."""
    table = sql.Identifier(shape.schema, shape.table)
    content = sql.Identifier(config.drift.content_column)
    column = sql.Identifier(shape.column)
    register_vector(conn)
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))
        rows = conn.execute(
            sql.SQL("SELECT ctid::text, {c} FROM {t} WHERE {c} IS NOT NULL").format(
                c=content, t=table
            )
        ).fetchall()
        conn.execute(
            "CREATE TEMP TABLE pgcutover_reindex (row_ctid text, fresh vector) ON COMMIT DROP"
        )
        with conn.cursor().copy("COPY pgcutover_reindex FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "vector"])
            for start in range(0, len(rows), REINDEX_BATCH):
                batch = rows[start : start + REINDEX_BATCH]
                vectors = embedder.embed([text for _, text in batch])
                for (ctid, _), vector in zip(batch, vectors, strict=True):
                    copy.write_row((ctid, vector))
        conn.execute(
            sql.SQL(
                "UPDATE {t} SET {c} = r.fresh FROM pgcutover_reindex r"
                " WHERE {t}.ctid = r.row_ctid::tid"
            ).format(t=table, c=column)
        )
    conn.execute(sql.SQL("ANALYZE {}").format(table))
    return len(rows)


def _reindex(pair: Pair, settings: Settings) -> list[CheckResult]:
    model = settings.embedding_model
    config = shapes.load(settings)
    results = []
    embedder = Embedder(model, settings.cache_dir)
    try:
        for shape in _columns(pair.source, settings):
            with connection(pair.target, role="target") as conn:
                declared = next(
                    (
                        c.dimensions
                        for c in vector_columns(conn, ())
                        if c.qualified == shape.qualified
                    ),
                    None,
                )
                if declared != model_dimension(model):
                    raise ConfigError(
                        f"--reindex: {model} gives {model_dimension(model)} dimensions, "
                        f"{shape.qualified} is declared {declared} on the target",
                        DIMENSION_REMEDY,
                    )
                started = time.monotonic()
                count = _rewrite(conn, shape, config, embedder)
            results.append(
                outcome(
                    f"search.reindex.{shape.qualified}",
                    AREA,
                    True,
                    f"{shape.qualified}: {count} chunks re-embedded with {model} and rewritten "
                    f"on the target in {time.monotonic() - started:.1f} s",
                    actual=count,
                )
            )
    finally:
        embedder.close()
    return results


def reindex(pair: Pair, settings: Settings) -> list[CheckResult]:
    """The guide's step 4 on the target (`--reindex`): re-embed every chunk with the
    configured model and rewrite the stored vectors, one search.reindex.<column> result each.
    Raises ConfigError for a target pgcutover did not create unless --allow-destructive;
    never touches the source."""
    if not (pair.target.ephemeral or settings.allow_destructive):
        raise ConfigError(
            f"--reindex would rewrite the vectors of {pair.target.label}, which pgcutover did "
            "not create",
            "add --allow-destructive if that is intended",
        )
    return guarded("search.reindex", AREA, lambda: _reindex(pair, settings), pair)
