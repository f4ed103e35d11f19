"""Exact nearest neighbours, computed once per query set with NumPy over a table's vectors
streamed once with COPY BINARY, instead of one sequential scan per query.

Sides with identical content share one ground truth. "Identical" is proven by a fingerprint
computed inside each server: the row count and the sums of both 64-bit halves of each row's
md5 over (vector_send(vector), hash of each filter column). A few bytes cross the network;
sums are order-independent, so no primary key and no sort are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from pgcutover.checks.search.shapes import Shape
from pgcutover.errors import PgcutoverError

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
#: Queries per NumPy block: bounds memory to block x rows scores.
BLOCK = 256
#: Columns sampled per row to bound its k-th largest score before the exact selection.
SAMPLE = 2048


@dataclass(frozen=True)
class Corpus:
    """One side's vectors (rows in COPY order) and, per filter column, each row's value as a
    64-bit hash (hashtextextended; 0 for NULL) with the text -> hash map of the values."""

    fingerprint: str
    vectors: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])

    def label_text(self, column: str, row: int) -> str | None:
        """The filter column's value on one row, as text."""
        wanted = int(self.labels[column][row])
        return next((text for text, code in self.values[column].items() if code == wanted), None)


@dataclass(frozen=True)
class Truth:
    """Per query: the distance of the last true neighbour (the k-th, or fewer when fewer rows
    match), how many neighbours exist (at most k), and the nearest row."""

    kth: np.ndarray
    expected: np.ndarray
    nearest: np.ndarray


def _label(column: str) -> sql.Composed:
    return sql.SQL("coalesce(hashtextextended({}::text, 0), 0)").format(sql.Identifier(column))


def fingerprint(conn: psycopg.Connection, shape: Shape, filters: tuple[str, ...]) -> str:
    """Content fingerprint of a shape's vectors and filter columns (see the module doc)."""
    row_bytes = sql.SQL(" || ").join(
        [
            sql.SQL("{}.vector_send({})").format(sql.Identifier(shape.type_schema), shape.stored()),
            *(sql.SQL("int8send({})").format(_label(column)) for column in filters),
        ]
    )
    half = "coalesce(sum(('x' || substr(h, {}, 16))::bit(64)::bigint::numeric), 0)"
    query = sql.SQL(
        "SELECT count(*), " + half.format(1) + ", " + half.format(17) + " FROM"
        " (SELECT md5({row}) AS h FROM {table} WHERE {col} IS NOT NULL) AS rows"
    ).format(
        row=row_bytes,
        table=sql.Identifier(shape.schema, shape.table),
        col=sql.Identifier(shape.column),
    )
    count, high, low = conn.execute(query).fetchone()  # type: ignore[misc]
    return f"{count}:{high}:{low}"


def stream(
    conn: psycopg.Connection, shape: Shape, filters: tuple[str, ...], digest: str = ""
) -> Corpus:
    """Read every vector of a shape's column once, as one COPY BINARY stream parsed with
    fixed strides (the vector and 8-byte label hashes have a fixed size per row); `digest` is
    the side's fingerprint when the caller computed one, kept with the corpus."""
    table = sql.Identifier(shape.schema, shape.table)
    column = shape.stored()
    row = conn.execute(
        sql.SQL("SELECT {s}.vector_dims({c}) FROM {t} WHERE {c} IS NOT NULL LIMIT 1").format(
            s=sql.Identifier(shape.type_schema), c=column, t=table
        )
    ).fetchone()
    if row is None:
        empty = {name: np.zeros(0, dtype=np.int64) for name in filters}
        return Corpus(digest, np.zeros((0, 0), dtype=np.float32), empty, {f: {} for f in filters})
    dims = int(row[0])
    fields = sql.SQL(", ").join([column, *(_label(f) for f in filters)])
    copy = sql.SQL("COPY (SELECT {f} FROM {t} WHERE {c} IS NOT NULL) TO STDOUT (FORMAT BINARY)")
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(copy.format(f=fields, t=table, c=column)) as stream_:
        for chunk in stream_:
            buffer.extend(chunk)
    vectors, labels = _parse(memoryview(buffer), dims, len(filters), shape)
    values: dict[str, dict[str, int]] = {}
    for name in filters:
        pairs = conn.execute(
            sql.SQL("SELECT DISTINCT {c}::text, {h} FROM {t} WHERE {c} IS NOT NULL").format(
                c=sql.Identifier(name), h=_label(name), t=table
            )
        ).fetchall()
        values[name] = {text: int(code) for text, code in pairs}
    return Corpus(digest, vectors, dict(zip(filters, labels, strict=True)), values)


def _parse(
    data: memoryview, dims: int, n_labels: int, shape: Shape
) -> tuple[np.ndarray, list[np.ndarray]]:
    """COPY BINARY rows of (vector, int8 * n_labels) -> float32 matrix and label columns
    (the stream is read in place, never copied)."""
    if bytes(data[: len(COPY_SIGNATURE)]) != COPY_SIGNATURE:
        raise PgcutoverError(
            f"COPY of {shape.qualified} did not return the binary format", "report this as a bug"
        )
    extension = int.from_bytes(bytes(data[15:19]), "big")
    body = data[19 + extension : -2]  # header, then tuples, then the int16 -1 trailer
    vector_bytes = 4 + 4 * dims
    dtype = np.dtype(
        [
            ("fields", ">i2"),
            ("vlen", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (dims,)),
            *((f"l{i}", [("len", ">i4"), ("hash", ">i8")]) for i in range(n_labels)),
        ]
    )
    if len(body) % dtype.itemsize:
        raise PgcutoverError(
            f"{shape.qualified} holds vectors of different dimensions",
            "every row must have the column's dimension; see the vector_dimensions check",
        )
    rows = np.frombuffer(body, dtype=dtype)
    if rows.size and (
        (rows["fields"] != 1 + n_labels).any()
        or (rows["vlen"] != vector_bytes).any()
        or (rows["dim"] != dims).any()
    ):
        raise PgcutoverError(
            f"{shape.qualified} holds vectors of different dimensions",
            "every row must have the column's dimension; see the vector_dimensions check",
        )
    vectors = rows["vec"].astype(np.float32)
    return vectors, [rows[f"l{i}"]["hash"].astype(np.int64) for i in range(n_labels)]


def _prepared(vectors: np.ndarray, operator: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ready for scoring, once per corpus: unit length for cosine (zero vectors score
    0), squared norms alongside for L2."""
    if operator == "<=>":
        norms = np.linalg.norm(vectors, axis=1)
        if np.allclose(norms, 1.0, atol=1e-5):
            return vectors, None  # already unit length (sentence-transformers output)
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return vectors * scale[:, None], None
    if operator == "<->":
        return vectors, np.einsum("ij,ij->i", vectors, vectors)
    return vectors, None


def _scores(
    rows: np.ndarray, squares: np.ndarray | None, queries: np.ndarray, operator: str
) -> np.ndarray:
    """Queries x rows scores, larger meaning nearer, monotonic in pgvector's distance."""
    if operator == "<+>":
        return -np.stack([np.abs(rows - query).sum(axis=1) for query in queries])
    if operator == "<=>":
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        queries = np.divide(queries, norms, out=np.zeros_like(queries), where=norms > 0)
    dot = queries @ rows.T
    if operator == "<->":
        return 2 * dot - squares[None, :]  # type: ignore[index]
    return dot


def _distance(scores: np.ndarray, queries: np.ndarray, operator: str) -> np.ndarray:
    """Scores back to pgvector's distances."""
    if operator == "<=>":
        return 1.0 - scores
    if operator == "<->":
        return np.sqrt(np.maximum(np.einsum("ij,ij->i", queries, queries) - scores, 0.0))
    return -scores


def _kth_largest(scores: np.ndarray, n: int) -> np.ndarray:
    """Each row's n-th largest score. Wide rows are first cut down to the values at or above
    the n-th largest of a strided sample (a lower bound), so only a few candidates per row
    are partitioned instead of every row in full."""
    width = scores.shape[1]
    stride = width // SAMPLE
    if stride < 2 or n > SAMPLE // 4:
        return np.partition(scores, width - n, axis=1)[:, width - n]
    sample = scores[:, ::stride]
    bound = np.partition(sample, sample.shape[1] - n, axis=1)[:, sample.shape[1] - n]
    kth = np.empty(len(scores), dtype=scores.dtype)
    for i, (row, low) in enumerate(zip(scores, bound, strict=True)):
        candidates = row[row >= low]
        kth[i] = np.partition(candidates, len(candidates) - n)[len(candidates) - n]
    return kth


def exact(
    corpus: Corpus,
    queries: np.ndarray,
    k: int,
    operator: str,
    filters: list[int] | None = None,
    filter_column: str | None = None,
) -> Truth:
    """Exact top-k of every query; with `filters` (label hashes), only rows whose
    `filter_column` carries the query's label count, as `WHERE column = value` does."""
    count = len(queries)
    kth = np.full(count, np.inf)
    expected = np.zeros(count, dtype=np.int64)
    nearest = np.full(count, -1, dtype=np.int64)
    if corpus.rows == 0:
        return Truth(kth, expected, nearest)
    groups: list[tuple[np.ndarray, np.ndarray | None]] = [(np.arange(count), None)]
    if filters is not None:
        labels = corpus.labels[filter_column]  # type: ignore[index]
        wanted = np.asarray(filters, dtype=np.int64)
        groups = [
            (np.flatnonzero(wanted == code), np.flatnonzero(labels == code))
            for code in np.unique(wanted)
        ]
    for query_ids, row_ids in groups:
        selected = corpus.vectors if row_ids is None else corpus.vectors[row_ids]
        if len(selected) == 0:
            continue
        rows, squares = _prepared(selected, operator)
        n = min(k, len(rows))
        for start in range(0, len(query_ids), BLOCK):
            block = query_ids[start : start + BLOCK]
            scores = _scores(rows, squares, queries[block], operator)
            kth[block] = _distance(_kth_largest(scores, n), queries[block], operator)
            expected[block] = n
            best = np.argmax(scores, axis=1)
            nearest[block] = best if row_ids is None else row_ids[best]
    return Truth(kth, expected, nearest)


def recall(truth: Truth, returned: list[np.ndarray], epsilon: float) -> np.ndarray:
    """Per-query recall@k by the ann-benchmarks rule: a returned row counts when its distance
    is within `epsilon` of the k-th true distance, so ties are never misses. Queries with no
    matching row are NaN (nothing to find)."""
    values = np.full(len(returned), np.nan)
    for i, found in enumerate(returned):
        want = int(truth.expected[i])
        if want:
            hits = np.count_nonzero(found[:want] <= truth.kth[i] + epsilon)
            values[i] = hits / want
    return values
