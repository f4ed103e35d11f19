"""Exact nearest neighbours, computed once per query set with NumPy over a table's vectors
streamed once with COPY BINARY, instead of one sequential scan per query.

Sides with identical content share one ground truth. "Identical" is proven by a fingerprint
computed inside each server: the row count and an md5 over the sorted per-row md5 of
(vector_send(vector), hash of each filter column). Only 32 bytes cross the network, and it
is order-independent, so it needs no primary key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from pgcutover.checks.search.shapes import Shape
from pgcutover.errors import PgcutoverError

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
#: Queries per NumPy block: bounds memory to block x rows distances.
BLOCK = 256


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
            sql.SQL("vector_send({})").format(sql.Identifier(shape.column)),
            *(sql.SQL("int8send({})").format(_label(column)) for column in filters),
        ]
    )
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM"
        " (SELECT md5({row}) AS h FROM {table} WHERE {col} IS NOT NULL) AS rows"
    ).format(
        row=row_bytes,
        table=sql.Identifier(shape.schema, shape.table),
        col=sql.Identifier(shape.column),
    )
    count, digest = conn.execute(query).fetchone()  # type: ignore[misc]
    return f"{count}:{digest}"


def stream(conn: psycopg.Connection, shape: Shape, filters: tuple[str, ...], digest: str) -> Corpus:
    """Read every vector of a shape's column once, as one COPY BINARY stream parsed with
    fixed strides (the vector and 8-byte label hashes have a fixed size per row); `digest` is
    the side's fingerprint, kept with the corpus."""
    table = sql.Identifier(shape.schema, shape.table)
    column = sql.Identifier(shape.column)
    row = conn.execute(
        sql.SQL("SELECT vector_dims({c}) FROM {t} WHERE {c} IS NOT NULL LIMIT 1").format(
            c=column, t=table
        )
    ).fetchone()
    if row is None:
        return Corpus(digest, np.zeros((0, 0), dtype=np.float32))
    dims = int(row[0])
    fields = sql.SQL(", ").join([column, *(_label(f) for f in filters)])
    copy = sql.SQL("COPY (SELECT {f} FROM {t} WHERE {c} IS NOT NULL) TO STDOUT (FORMAT BINARY)")
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(copy.format(f=fields, t=table, c=column)) as stream_:
        for chunk in stream_:
            buffer.extend(chunk)
    vectors, labels = _parse(bytes(buffer), dims, len(filters), shape)
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
    data: bytes, dims: int, n_labels: int, shape: Shape
) -> tuple[np.ndarray, list[np.ndarray]]:
    """COPY BINARY rows of (vector, int8 * n_labels) -> float32 matrix and label columns."""
    if not data.startswith(COPY_SIGNATURE):
        raise PgcutoverError(
            f"COPY of {shape.qualified} did not return the binary format", "report this as a bug"
        )
    extension = int.from_bytes(data[15:19], "big")
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


def distances(vectors: np.ndarray, queries: np.ndarray, operator: str) -> np.ndarray:
    """Distances (queries x rows) as pgvector's operator computes them."""
    if operator == "<+>":
        return np.abs(queries[:, None, :] - vectors[None, :, :]).sum(axis=2)
    dot = queries @ vectors.T
    if operator == "<#>":
        return -dot
    if operator == "<->":
        squared = (queries**2).sum(1)[:, None] + (vectors**2).sum(1)[None, :] - 2 * dot
        return np.sqrt(np.maximum(squared, 0.0))
    norms = np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(vectors, axis=1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - dot / norms


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
    if filters is None:
        groups = {None: (np.arange(count), np.arange(corpus.rows))}
    else:
        labels = corpus.labels[filter_column]  # type: ignore[index]
        wanted = np.asarray(filters, dtype=np.int64)
        groups = {
            code: (np.flatnonzero(wanted == code), np.flatnonzero(labels == code))
            for code in np.unique(wanted)
        }
    for query_ids, row_ids in groups.values():
        if len(row_ids) == 0:
            continue
        rows = corpus.vectors[row_ids]
        n = min(k, len(row_ids))
        for start in range(0, len(query_ids), BLOCK):
            block = query_ids[start : start + BLOCK]
            found = distances(rows, queries[block], operator)
            kth[block] = np.partition(found, n - 1, axis=1)[:, n - 1]
            expected[block] = n
            nearest[block] = row_ids[np.argmin(found, axis=1)]
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
