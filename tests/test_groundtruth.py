"""Ground truth computed block by block (groundtruth.exact) against a brute-force reference
over all distances at once, for every operator, with and without filters, over blocks wide
enough to be searched by group maxima and narrow enough to be searched whole; and blocks
streamed from a real server against the corpus held in memory."""

from __future__ import annotations

import numpy as np
import pytest

from pgcutover.checks.search import groundtruth
from pgcutover.checks.search.groundtruth import Block, Corpus
from pgcutover.checks.search.shapes import Shape
from pgcutover.db import connection
from pgcutover.errors import PgcutoverError

K = 10
OPERATORS = ["<=>", "<->", "<#>", "<+>"]


def clustered(rows: int, dims: int, seed: int) -> np.ndarray:
    """Vectors around 30 centres: many near ties, as real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dims))
    picked = centres[rng.integers(0, 30, rows)] + rng.normal(0, 0.3, (rows, dims))
    return picked.astype(np.float32)


def reference(
    vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray, operator: str, codes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kth distance, expected count and nearest row, from every distance in float64."""
    v, q = vectors.astype(np.float64), queries.astype(np.float64)
    if operator == "<=>":
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        distances = 1 - q @ v.T
    elif operator == "<->":
        distances = np.sqrt(np.maximum((q**2).sum(1)[:, None] - 2 * q @ v.T + (v**2).sum(1), 0))
    elif operator == "<#>":
        distances = -(q @ v.T)
    else:
        distances = np.abs(q[:, None, :] - v[None, :, :]).sum(axis=2)
    if codes is not None:
        distances = np.where(labels[None, :] == np.asarray(codes)[:, None], distances, np.inf)
    expected = np.minimum(np.isfinite(distances).sum(axis=1), K)
    kth = np.sort(distances, axis=1)[np.arange(len(q)), np.maximum(expected - 1, 0)]
    nearest = np.where(expected > 0, distances.argmin(axis=1), -1)
    return np.where(expected > 0, kth, np.inf), expected, nearest


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize("filtered", [False, True])
def test_block_by_block_equals_all_distances_at_once(monkeypatch, operator, filtered):
    # 3,000 rows in blocks of 2,600: the first is searched through group maxima (40 groups
    # of 64 >= 4k), the second (400 rows) whole.
    monkeypatch.setattr(groundtruth, "BLOCK_ROWS", 2600)
    vectors = clustered(3000, 24, seed=1)
    labels = np.random.default_rng(2).integers(1, 40, len(vectors)).astype(np.int64)
    queries = vectors[::61] + np.random.default_rng(3).normal(0, 0.05, (50, 24)).astype(np.float32)
    codes = None
    if filtered:  # a label with no row at all, and one on a handful of rows only
        labels[:5] = 99
        codes = [int(labels[i]) for i in range(0, 3000, 61)]
        codes[0], codes[1] = 12345, 99
    corpus = Corpus("", vectors, {"user_id": labels})
    truth = groundtruth.exact(
        corpus.blocks(), queries, K, operator, codes, "user_id" if filtered else None
    )
    kth, expected, nearest = reference(vectors, labels, queries, operator, codes)
    assert truth.rows == len(vectors)
    np.testing.assert_array_equal(truth.expected, expected)
    np.testing.assert_array_equal(truth.nearest, nearest)
    finite = np.isfinite(kth)
    np.testing.assert_allclose(truth.kth[finite], kth[finite], rtol=2e-5, atol=2e-5)
    assert np.isinf(truth.kth[~finite]).all()
    if filtered:
        assert (truth.expected[0], truth.expected[1]) == (0, 5)


def test_streamed_blocks_equal_the_corpus_in_memory(seeded_source, monkeypatch):
    """Blocks of 500 rows straight from COPY give the ground truth of the corpus held whole."""
    monkeypatch.setattr(groundtruth, "BLOCK_ROWS", 500)
    shape = Shape("t", "public", "vector_embeddings", "embedding", "<=>", K, "user_id")
    filters = ("user_id",)
    with connection(seeded_source, role="source") as conn:
        corpus = groundtruth.stream(conn, shape, filters)
        queries = corpus.vectors[:40] + np.float32(0.01)
        codes = [int(code) for code in corpus.labels["user_id"][:40]]
        one_block = [Block(0, corpus.vectors, corpus.labels)]
        whole = groundtruth.exact(one_block, queries, K, "<=>", codes, "user_id")
        streamed = groundtruth.exact(
            groundtruth.blocks(conn, shape, filters), queries, K, "<=>", codes, "user_id"
        )
    assert corpus.rows == streamed.rows > 1000
    assert len(list(corpus.blocks())) == -(-corpus.rows // 500)
    # the same float32 products summed in other block shapes: equal to float32 precision
    np.testing.assert_allclose(whole.kth, streamed.kth, rtol=1e-6)
    np.testing.assert_array_equal(whole.nearest, streamed.nearest)
    assert (streamed.nearest[:40] == np.arange(40)).mean() > 0.9


@pytest.mark.parametrize("longer_first", [False, True])
def test_vectors_of_different_dimensions_are_an_error(target_copy, longer_first):
    """A `vector` column without a declared dimension can mix lengths: a clear error."""
    dims = (4, 3) if longer_first else (3, 4)
    rows = ", ".join(f"('[{','.join(['1'] * n)}]')" for n in dims)
    with connection(target_copy, role="admin") as conn:
        conn.execute(f"CREATE TABLE mixed (v vector); INSERT INTO mixed VALUES {rows}")
        shape = Shape("m", "public", "mixed", "v", "<->", K)
        with pytest.raises(PgcutoverError, match="different dimensions"):
            list(groundtruth.blocks(conn, shape, ()))
