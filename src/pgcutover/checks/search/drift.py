"""Embedding drift (the guide's step 4, "Re-index documents"): re-embed a sample of stored
chunks with the column's model (EMBEDDINGS_XENOVA_MODEL for the app's columns, or the model
configured per column; run from its offline copy) and compare with the stored vectors, on
both sides. The target is judged against the source: the same rows must give the same
similarities. Vectors that were not made from their text by that model on both sides are a
readiness finding, not a failed migration. `reindex` rewrites the target's vectors with fresh
embeddings (`--reindex`), on the target only."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover.checks.base import (
    READINESS,
    SKIP,
    CheckResult,
    Pair,
    finding,
    guarded,
    outcome,
)
from pgcutover.checks.search import shapes
from pgcutover.checks.search.shapes import AREA, SearchConfig
from pgcutover.config import Settings
from pgcutover.dataset.embedder import OFFLINE_MODELS, Embedder, model_dimension
from pgcutover.db import DataRole, Endpoint, connection
from pgcutover.errors import ConfigError
from pgcutover.inventory import EmbeddingColumn, inventory_config

HISTOGRAM_EDGES = (-1.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0001)
#: Texts embedded per batch while re-indexing.
REINDEX_BATCH = 512
#: The target's similarities may sit this far below the source's (float noise only: the
#: same rows hold the same vectors on a faithful copy).
TOLERANCE = 1e-3


def _sample(
    endpoint: Endpoint,
    role: DataRole,
    column: EmbeddingColumn,
    config: SearchConfig,
    key: tuple[str, ...],
) -> tuple[list[str], list[np.ndarray]]:
    """A deterministic sample of (text, stored vector): the same rows on both sides. Texts
    repeat (boilerplate, or a large rehearsal's synthetic chunks), so ties are broken by the
    table's primary key `key`, else by the vector itself."""
    text = sql.Identifier(column.text_column or "")
    stored = sql.Identifier(column.column)
    if column.type_name != "vector":
        stored = sql.SQL("{}::{}.vector").format(stored, sql.Identifier(column.type_schema))
    ties = sql.SQL(", ").join(sql.Identifier(name) for name in key) if key else stored
    with connection(endpoint, role=role) as conn:
        register_vector(conn)
        rows = conn.execute(
            sql.SQL(
                "SELECT {t}, {c} FROM {tbl} WHERE {t} IS NOT NULL AND {v} IS NOT NULL"
                " ORDER BY md5({t}), {ties} LIMIT %s"
            ).format(
                t=text,
                c=stored,
                v=sql.Identifier(column.column),
                tbl=sql.Identifier(column.schema, column.table),
                ties=ties,
            ),
            (config.drift.sample,),
        ).fetchall()
    return [row[0] for row in rows], [row[1].to_numpy().astype(np.float32) for row in rows]


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


def skipped(column: EmbeddingColumn) -> str | None:
    """Why a column's drift cannot be measured (with the setting that enables it), or None."""
    where = f'[inventory.columns."{column.qualified}"]'
    if column.partition:
        return f"{column.qualified} is a partition: measured through its parent table"
    if not column.dense:
        return f"{column.qualified} is {column.type_name}: re-embedding applies to dense vectors"
    if column.text_column is None:
        return (
            f"the text {column.qualified}'s embeddings were made from is unknown: set "
            f"text_column in {where}"
        )
    if column.model is None:
        return (
            f"no embedding model is configured for {column.qualified} (not one of the app's "
            f"columns): set model in {where}"
        )
    if column.model not in OFFLINE_MODELS:
        return (
            f"pgcutover has no offline copy of {column.model} to re-embed {column.qualified} "
            f"with (it has {', '.join(sorted(OFFLINE_MODELS))}): check drift with the app's "
            "own embedder"
        )
    dims = model_dimension(column.model)
    if column.dimensions is not None and dims != column.dimensions:
        return (
            f"{column.model} gives {dims} dimensions, {column.qualified} holds "
            f"{column.dimensions}: see vector_dimensions.configuration"
        )
    return None


def _check_column(pair: Pair, settings: Settings, column: EmbeddingColumn) -> list[CheckResult]:
    config = shapes.load(settings)
    check_id = f"search.drift.{column.qualified}"
    model = str(column.model)
    table = pair.inventory.table(f"{column.schema}.{column.table}")
    key = table.primary_key if table is not None else ()
    texts, stored = _sample(pair.target, "target", column, config, key)
    if not texts:
        return [CheckResult(check_id, AREA, SKIP, f"{column.qualified} is empty on the target")]
    source_texts, source_stored = _sample(pair.source, "source", column, config, key)
    embedder = Embedder(model, settings.cache_dir)
    try:
        target = _similarities(stored, embedder.embed(texts))
        source = (
            _similarities(source_stored, embedder.embed(source_texts))
            if source_texts
            else np.zeros(0)
        )
    finally:
        embedder.close()
    minimum = config.drift.min_similarity
    stats = _distribution(target)
    baseline = _distribution(source) if source.size else None
    message = (
        f"{column.qualified}: {len(texts)} chunks re-embedded with {model}: cosine similarity "
        f"to the stored vectors min {stats['min']:.4f}, median {stats['median']:.4f} on the "
        "target"
    )
    if baseline:
        message += f", min {baseline['min']:.4f}, median {baseline['median']:.4f} on the source"
    labels = [f"{low:g}..{high:g}" for low, high in itertools.pairwise(HISTOGRAM_EDGES)]
    evidence: dict[str, Any] = {
        "expected": baseline,
        "actual": stats,
        "threshold": TOLERANCE,
        "details": {
            "model": model,
            "text_column": column.text_column,
            "similarity": {"target": stats, "source": baseline},
            "below_readiness_bound": int(np.count_nonzero(target < minimum)),
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
    }
    drifted = baseline is None or any(
        stats[key] < baseline[key] - TOLERANCE for key in ("min", "median")
    )
    if drifted:
        return [
            outcome(
                check_id,
                AREA,
                False,
                message + ": the target's vectors match their text worse than the source's",
                remedy=(
                    "the target's vectors changed in the migration (see content.<table> for "
                    f"the rows): migrate {column.schema}.{column.table} again, or re-index it "
                    "with the app's model (the guide's step 4; `--reindex`)"
                ),
                **evidence,
            )
        ]
    if stats["median"] < minimum:
        return [
            finding(
                check_id,
                AREA,
                message + f": on both sides the stored vectors were not made from "
                f"{column.text_column} by {model} (a faithful copy of what the source holds)",
                kind=READINESS,
                blocking=inventory_config(settings).readiness_blocking,
                remedy=(
                    f"if the app embeds with {model}, re-index the documents (the guide's step "
                    "4; `--reindex` on the target); otherwise configure the column's real model "
                    f'in [inventory.columns."{column.qualified}"] model'
                ),
                **evidence,
            )
        ]
    return [outcome(check_id, AREA, True, message, **evidence)]


def _run(pair: Pair, settings: Settings) -> list[CheckResult]:
    results: list[CheckResult] = []
    for column in pair.inventory.vectors:
        check_id = f"search.drift.{column.qualified}"
        reason = skipped(column)
        if reason is not None:
            if not column.partition:
                results.append(CheckResult(check_id, AREA, SKIP, reason))
            continue
        results.extend(
            guarded(check_id, AREA, lambda c=column: _check_column(pair, settings, c), pair)
        )
    return results or [CheckResult("search.drift", AREA, SKIP, "no vector column to re-embed")]


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.drift.<schema.table.column> for every vector column."""
    return guarded("search.drift", AREA, lambda: _run(pair, settings), pair)


def _rewrite(conn: psycopg.Connection, shape: EmbeddingColumn, embedder: Embedder) -> int:
    """Re-embed every row's text and rewrite its vector, in one transaction with the table
    locked against writers (rows are addressed by ctid, which the lock keeps stable)."""
    table = sql.Identifier(shape.schema, shape.table)
    content = sql.Identifier(shape.text_column or "")
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
    results = []
    for column in pair.inventory.app_vectors:
        reason = skipped(column)
        if reason is not None:
            if not column.partition:
                results.append(
                    CheckResult(f"search.reindex.{column.qualified}", AREA, SKIP, reason)
                )
            continue
        model = str(column.model)
        embedder = Embedder(model, settings.cache_dir)
        try:
            started = time.monotonic()
            with connection(pair.target, role="target") as conn:
                count = _rewrite(conn, column, embedder)
        finally:
            embedder.close()
        results.append(
            outcome(
                f"search.reindex.{column.qualified}",
                AREA,
                True,
                f"{column.qualified}: {count} chunks re-embedded with {model} and rewritten "
                f"on the target in {time.monotonic() - started:.1f} s",
                actual=count,
            )
        )
    return results or [CheckResult("search.reindex", AREA, SKIP, "the app has no vector column")]


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
