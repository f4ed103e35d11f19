"""The query set every search check shares: stored source vectors with small perturbations
plus embedded golden questions, each with a filter value for filtered shapes; its ground
truth on both sides; and the loop that runs a shape's query for every query vector."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover.catalog import sample_clause
from pgcutover.checks.search import groundtruth
from pgcutover.checks.search.groundtruth import Block, Corpus, Truth
from pgcutover.checks.search.shapes import RecallConfig, Shape
from pgcutover.config import Settings
from pgcutover.dataset.embedder import OFFLINE_MODELS, Embedder

PERTURBED = "perturbed"
GOLDEN = "golden"
#: Rows sampled per wanted query vector (TABLESAMPLE reads whole pages: neighbours cluster).
SAMPLE_FACTOR = 4
#: A label hash no row carries: a filter value absent from one side matches nothing there.
ABSENT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class QuerySet:
    """Query vectors, what each one is, and its filter value (None for unfiltered shapes)."""

    vectors: np.ndarray
    kinds: tuple[str, ...]
    filters: tuple[str | None, ...]
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.kinds)


@dataclass(frozen=True)
class Workload:
    """A shape's query set and the exact answers on each side ("source", "target")."""

    shape: Shape
    queries: QuerySet
    truth: dict[str, Truth]
    shared_truth: bool
    rows: dict[str, int]

    def sharing_note(self) -> str:
        """How the ground truth was obtained, for the report."""
        how = "exact top-k with NumPy over the vectors streamed once with COPY BINARY"
        if self.shared_truth:
            return (
                f"{how}, computed once and shared: both sides' content fingerprints are equal "
                "(row count + md5 over the sorted per-row md5 of the vector and filter values)"
            )
        return f"{how}, computed per side: the content fingerprints differ"


def golden_questions(path: Path) -> list[str]:
    """One question a line; blank lines and `#` comments skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def embed_golden(settings: Settings, config: RecallConfig) -> tuple[np.ndarray, str]:
    """The golden questions embedded with the configured model (cached on disk), or none
    with the reason when that model has no offline copy."""
    questions = golden_questions(config.golden_questions)
    model = settings.embedding_model
    if model not in OFFLINE_MODELS:
        return np.zeros((0, 0), dtype=np.float32), f"golden questions skipped: no offline {model}"
    embedder = Embedder(model, settings.cache_dir)
    try:
        vectors = embedder.embed(questions)
    finally:
        embedder.close()
    return vectors, f"{len(questions)} golden questions embedded with {model}"


def build(
    shape: Shape, corpus: Corpus, golden: tuple[np.ndarray, str], config: RecallConfig
) -> QuerySet:
    """Perturbed copies of sampled stored vectors (same norm, gaussian noise) and the golden
    questions. Filter values: the sampled row's own value, and for a golden question the value
    of its nearest stored row (a user asking about their own documents)."""
    rng = np.random.default_rng(config.seed)
    picked = rng.choice(corpus.rows, size=min(config.perturbed_queries, corpus.rows), replace=False)
    vectors, questions, kinds, notes = _queries(shape, corpus.vectors[picked], rng, golden, config)
    if shape.filter_column is None:
        return QuerySet(vectors, kinds, (None,) * len(kinds), notes)
    nearest = groundtruth.exact(corpus.blocks(), questions, 1, shape.operator).nearest
    rows = [*picked.tolist(), *nearest.tolist()]
    filters = tuple(corpus.label_text(shape.filter_column, row) for row in rows)
    return QuerySet(vectors, kinds, filters, notes)


def _queries(
    shape: Shape,
    base: np.ndarray,
    rng: np.random.Generator,
    golden: tuple[np.ndarray, str],
    config: RecallConfig,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """(query vectors, the golden questions among them, each query's kind, notes): `base`
    perturbed, then the golden questions when their dimension matches the column's."""
    noisy = base + rng.normal(0.0, config.perturbation, base.shape).astype(np.float32)
    scale = np.linalg.norm(base, axis=1, keepdims=True) / np.linalg.norm(
        noisy, axis=1, keepdims=True
    )
    perturbed = (noisy * scale).astype(np.float32)
    questions, note = golden
    if len(questions) and questions.shape[1] != base.shape[1]:
        note = (
            f"golden questions skipped: the model gives {questions.shape[1]} dimensions, "
            f"{shape.qualified} has {base.shape[1]}"
        )
        questions = questions[:0]
    questions = questions.reshape(-1, base.shape[1]) if len(questions) else base[:0]
    vectors = np.vstack([perturbed, questions]).astype(np.float32)
    kinds = (PERTURBED,) * len(perturbed) + (GOLDEN,) * len(questions)
    notes = (f"{len(perturbed)} stored vectors perturbed (sigma {config.perturbation})", note)
    return vectors, questions, kinds, notes


def _truth(
    blocks: Iterable[Block], values: dict[str, dict[str, int]], shape: Shape, queries: QuerySet
) -> Truth:
    """Exact answers on one side (`values`: its filter values' hashes); filter values that
    side lacks match nothing."""
    codes = None
    if shape.filter_column is not None:
        known = values[shape.filter_column]
        codes = [known.get(v, ABSENT) if v is not None else ABSENT for v in queries.filters]
    return groundtruth.exact(
        blocks, queries.vectors, shape.k, shape.operator, codes, shape.filter_column
    )


#: Workloads built in this process, by everything that determines them: the recall and the
#: filtered checks ask for the same shape, and the second pays only for two fingerprints.
_built: dict[tuple[Shape, str, str, str, RecallConfig], Workload] = {}


def workload(
    source: psycopg.Connection,
    target: psycopg.Connection,
    shape: Shape,
    golden: tuple[np.ndarray, str],
    config: RecallConfig,
) -> Workload:
    """Build the query set from the source and its ground truth on both sides, streaming the
    target's vectors only when its content differs from the source's."""
    filters = (shape.filter_column,) if shape.filter_column else ()
    source_digest = groundtruth.fingerprint(source, shape, filters)
    target_digest = groundtruth.fingerprint(target, shape, filters)
    key = (shape, source_digest, target_digest, golden[1], config)
    if key not in _built:
        _built[key] = _build_workload(
            source, target, shape, golden, config, (source_digest, target_digest)
        )
    return _built[key]


def _build_workload(
    source: psycopg.Connection,
    target: psycopg.Connection,
    shape: Shape,
    golden: tuple[np.ndarray, str],
    config: RecallConfig,
    digests: tuple[str, str],
) -> Workload:
    """Stream the vectors and compute the ground truth (the expensive part of `workload`)."""
    source_digest, target_digest = digests
    filters = (shape.filter_column,) if shape.filter_column else ()
    source_corpus = groundtruth.stream(source, shape, filters, source_digest)
    queries = build(shape, source_corpus, golden, config)
    source_truth = _truth(source_corpus.blocks(), source_corpus.values, shape, queries)
    shared = source_digest == target_digest
    target_truth = source_truth
    if not shared:
        values = groundtruth.label_values(target, shape, filters)
        target_truth = _truth(groundtruth.blocks(target, shape, filters), values, shape, queries)
    return Workload(
        shape=shape,
        queries=queries,
        truth={"source": source_truth, "target": target_truth},
        shared_truth=shared,
        rows={"source": source_truth.rows, "target": target_truth.rows},
    )


def sampled(
    source: psycopg.Connection,
    shape: Shape,
    golden: tuple[np.ndarray, str],
    config: RecallConfig,
) -> QuerySet:
    """The query set for checks that need no ground truth (latency), built as `build` does
    but from a few pages of the source (TABLESAMPLE, repeatable with the configured seed)
    instead of every vector; a golden question's filter value is that of its nearest row
    as the source's own index finds it."""
    register_vector(source)
    column = shape.stored()
    label = (
        sql.SQL("{}::text").format(sql.Identifier(shape.filter_column))
        if shape.filter_column
        else sql.SQL("NULL")
    )
    wanted = config.perturbed_queries * SAMPLE_FACTOR
    rows = source.execute(
        sql.SQL("SELECT {c}, {f} FROM {t} WHERE {c} IS NOT NULL").format(
            c=column, f=label, t=sample_clause(shape.schema, shape.table, wanted, config.seed)
        )
    ).fetchall()
    if not rows:
        return QuerySet(np.zeros((0, 0), dtype=np.float32), (), ())
    rng = np.random.default_rng(config.seed)
    picked = rng.choice(len(rows), size=min(config.perturbed_queries, len(rows)), replace=False)
    base = np.stack([rows[i][0].to_numpy() for i in picked]).astype(np.float32)
    vectors, questions, kinds, notes = _queries(shape, base, rng, golden, config)
    if shape.filter_column is None:
        return QuerySet(vectors, kinds, (None,) * len(kinds), notes)
    nearest = sql.SQL("SELECT {f} FROM {t} ORDER BY {o} {op} %s::{q} LIMIT 1").format(
        f=label,
        t=sql.Identifier(shape.schema, shape.table),
        o=shape.ordered(),
        op=sql.SQL(shape.operator),
        q=shape.query_type(),
    )
    asked = [source.execute(nearest, (question,)).fetchone()[0] for question in questions]  # type: ignore[index]
    return QuerySet(vectors, kinds, (*(rows[i][1] for i in picked), *asked), notes)


class Runner:
    """Runs one shape's query on one connection, timing each execution."""

    def __init__(
        self,
        conn: psycopg.Connection,
        shape: Shape,
        filter_expression: sql.Composable | None = None,
    ) -> None:
        register_vector(conn)
        self.shape = shape
        self.cursor = conn.cursor()
        self.statement = shape.query(filter_expression)

    def one(self, vector: np.ndarray, value: str | None) -> tuple[np.ndarray, float]:
        """The distances one query returns, and its seconds (round trip included)."""
        params: dict[str, object] = {"q": vector, "k": self.shape.k, "f": value}
        started = time.perf_counter()
        rows = self.cursor.execute(self.statement, params).fetchall()
        seconds = time.perf_counter() - started
        return np.array([row[0] for row in rows], dtype=np.float64), seconds

    def all(self, queries: QuerySet) -> tuple[list[np.ndarray], np.ndarray]:
        """Every query of the set: the distances returned and each query's seconds."""
        results = [self.one(v, f) for v, f in zip(queries.vectors, queries.filters, strict=True)]
        return [found for found, _ in results], np.array([seconds for _, seconds in results])


def setting(conn: psycopg.Connection, name: str) -> str | None:
    """A setting's value in this session (None when the server does not know it)."""
    row = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
    return row[0] if row else None
