"""Exact nearest neighbours of a query set, computed with NumPy over a table's vectors streamed
once with COPY BINARY, instead of one sequential scan per query.

The vectors arrive in blocks of BLOCK_ROWS rows: each block is parsed in place (fixed strides)
and converted to float32 once, multiplied with the queries (never more than SCORES scores at a
time, never all distances at once), and only each query's k best scores so far are kept. The
blocks come straight from the server (`blocks`) or from a corpus held in memory (`stream`,
filled block by block, never copied whole), which the query set is drawn from.

Sides with identical content share one ground truth. "Identical" is proven by a fingerprint
computed inside each server: the row count and the sums of both 64-bit halves of each row's
md5 over (vector_send(vector), hash of each filter column). A few bytes cross the network;
sums are order-independent, so no primary key and no sort are needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import psycopg
from psycopg import sql

from pgcutover.checks.content.copyout import CopyOut
from pgcutover.checks.search.shapes import Shape
from pgcutover.errors import PgcutoverError
from pgcutover.sessions import Session

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
#: The int16 -1 that ends a binary COPY stream.
TRAILER = b"\xff\xff"
#: Rows parsed and scored together.
BLOCK_ROWS = 16384
#: Scores held at once (queries x rows of one block): 64 MB of float32.
SCORES = 1 << 24
#: Rows per group when a block's best scores are searched by group maxima (`_block_best`).
GROUP_ROWS = 64


@dataclass(frozen=True)
class Block:
    """Consecutive rows of a table in COPY order, from row number `start`: their vectors
    (float32) and, per filter column, each row's value as a 64-bit hash."""

    start: int
    vectors: np.ndarray
    labels: dict[str, np.ndarray]


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

    def blocks(self) -> Iterator[Block]:
        """The corpus as blocks of BLOCK_ROWS rows (views, no copies)."""
        for start in range(0, self.rows, BLOCK_ROWS):
            end = start + BLOCK_ROWS
            labels = {name: codes[start:end] for name, codes in self.labels.items()}
            yield Block(start, self.vectors[start:end], labels)


@dataclass(frozen=True)
class Truth:
    """Per query: the distance of the last true neighbour (the k-th, or fewer when fewer rows
    match), how many neighbours exist (at most k), and the nearest row; and how many rows
    were searched."""

    kth: np.ndarray
    expected: np.ndarray
    nearest: np.ndarray
    rows: int


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


def _sizes(conn: psycopg.Connection, shape: Shape) -> tuple[int | None, int]:
    """The vectors' dimensions (None for no vector) and the planner's row estimate."""
    table = sql.Identifier(shape.schema, shape.table)
    query = sql.SQL(
        "SELECT (SELECT {s}.vector_dims({c}) FROM {t} WHERE {c} IS NOT NULL LIMIT 1),"
        " (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = {name}::regclass)"
    ).format(
        s=sql.Identifier(shape.type_schema),
        c=shape.stored(),
        t=table,
        name=sql.Literal(table.as_string(conn)),
    )
    dims, estimate = conn.execute(query).fetchone()  # type: ignore[misc]
    return dims, int(estimate or 0)


def _row_type(dims: int, n_labels: int) -> np.dtype:
    """One COPY BINARY row of (vector, int8 * n_labels), field by field."""
    return np.dtype(
        [
            ("fields", ">i2"),
            ("vlen", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (dims,)),
            *((f"l{i}", [("len", ">i4"), ("hash", ">i8")]) for i in range(n_labels)),
        ]
    )


def _mixed(shape: Shape) -> PgcutoverError:
    return PgcutoverError(
        f"{shape.qualified} holds vectors of different dimensions",
        "every row must have the column's dimension; see the vector_dimensions check",
    )


def _parse(data: memoryview, shape: Shape, filters: tuple[str, ...], block: Block) -> Block:
    """COPY BINARY rows (the stream's trailer may end them), read in place, into the first
    rows of `block`'s arrays (the vectors converted to native float32)."""
    dtype = _row_type(block.vectors.shape[1], len(filters))
    size = len(data)
    if size % dtype.itemsize == len(TRAILER) and bytes(data[-len(TRAILER) :]) == TRAILER:
        size -= len(TRAILER)
    if size % dtype.itemsize:
        raise _mixed(shape)
    rows = np.frombuffer(data[:size], dtype=dtype)
    dims = dtype["vec"].shape[0]
    if rows.size and (
        (rows["fields"] != 1 + len(filters)).any()
        or (rows["vlen"] != 4 + 4 * dims).any()
        or (rows["dim"] != dims).any()
    ):
        raise _mixed(shape)
    count = len(rows)
    np.copyto(block.vectors[:count], rows["vec"])
    for i, name in enumerate(filters):
        block.labels[name][:count] = rows[f"l{i}"]["hash"]
    labels = {name: codes[:count] for name, codes in block.labels.items()}
    return Block(block.start, block.vectors[:count], labels)


def blocks(conn: Session, shape: Shape, filters: tuple[str, ...]) -> Iterator[Block]:
    """Every vector of a shape's column (and its filter values' hashes), read once as one
    COPY BINARY stream, in blocks of BLOCK_ROWS rows. Each row is copied into one buffer as
    it arrives and the buffer parsed when full; the buffer and the block's arrays are reused,
    so a block is valid until the next one is asked for (copy what must outlive it)."""
    dims, _ = _sizes(conn, shape)
    if dims is None:
        return
    size = _row_type(int(dims), len(filters)).itemsize
    raw = memoryview(bytearray(BLOCK_ROWS * size + len(TRAILER)))
    block = Block(
        0,
        np.empty((BLOCK_ROWS, int(dims)), dtype=np.float32),
        {name: np.empty(BLOCK_ROWS, dtype=np.int64) for name in filters},
    )
    fields = sql.SQL(", ").join([shape.stored(), *(_label(f) for f in filters)])
    copy = sql.SQL("COPY (SELECT {f} FROM {t} WHERE {c} IS NOT NULL) TO STDOUT (FORMAT BINARY)")
    statement = copy.format(
        f=fields, t=sql.Identifier(shape.schema, shape.table), c=sql.Identifier(shape.column)
    )
    messages = iter(CopyOut(conn, statement))
    header = bytes(next(messages))
    if not header.startswith(COPY_SIGNATURE):
        raise PgcutoverError(
            f"COPY of {shape.qualified} did not return the binary format", "report this as a bug"
        )
    first = header[19 + int.from_bytes(header[15:19], "big") :]
    raw[: len(first)] = first
    end, full, start = len(first), BLOCK_ROWS * size, 0
    try:
        for message in messages:
            if end >= full:
                yield _parse(raw[:end], shape, filters, replace(block, start=start))
                start, end = start + BLOCK_ROWS, 0
            raw[end : end + len(message)] = message
            end += len(message)
    except ValueError:  # a row longer than the first overflows the buffer
        raise _mixed(shape) from None
    last = _parse(raw[:end], shape, filters, replace(block, start=start))
    if len(last.vectors):
        yield last


def label_values(
    conn: psycopg.Connection, shape: Shape, filters: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    """Per filter column, each value's text -> its 64-bit hash (as `blocks` labels rows)."""
    table = sql.Identifier(shape.schema, shape.table)
    values: dict[str, dict[str, int]] = {}
    for name in filters:
        pairs = conn.execute(
            sql.SQL("SELECT DISTINCT {c}::text, {h} FROM {t} WHERE {c} IS NOT NULL").format(
                c=sql.Identifier(name), h=_label(name), t=table
            )
        ).fetchall()
        values[name] = {text: int(code) for text, code in pairs}
    return values


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    """`array` with room for `rows` rows (doubling, when the row estimate was short)."""
    if rows <= len(array):
        return array
    bigger = np.empty((max(rows, 2 * len(array)), *array.shape[1:]), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


def stream(conn: Session, shape: Shape, filters: tuple[str, ...], digest: str = "") -> Corpus:
    """Every vector of a shape's column in memory, filled block by block into arrays sized
    from the planner's estimate; `digest` is the side's fingerprint when the caller computed
    one, kept with the corpus."""
    dims, estimate = _sizes(conn, shape)
    vectors = np.empty((estimate, dims or 0), dtype=np.float32)
    labels = {name: np.empty(estimate, dtype=np.int64) for name in filters}
    rows = 0
    for block in blocks(conn, shape, filters):
        end = rows + len(block.vectors)
        vectors = _grown(vectors, end)
        vectors[rows:end] = block.vectors
        for name in filters:
            labels[name] = _grown(labels[name], end)
            labels[name][rows:end] = block.labels[name]
        rows = end
    trimmed = {name: codes[:rows] for name, codes in labels.items()}
    return Corpus(digest, vectors[:rows], trimmed, label_values(conn, shape, filters))


def _prepared(vectors: np.ndarray, operator: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ready for scoring: unit length for cosine (zero vectors score 0), squared norms
    alongside for L2."""
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
    """Queries x rows scores, larger meaning nearer, monotonic in pgvector's distance (for
    cosine, the queries are already unit length)."""
    if operator == "<+>":
        return -np.stack([np.abs(rows - query).sum(axis=1) for query in queries])
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


def _block_best(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's n best scores (unordered) and the first column holding its best.

    A wide block is cut into interleaved groups of GROUP_ROWS columns; a row's n best scores
    all lie in the n groups with the largest maxima (any other group's scores are beaten by
    n group maxima), so only those groups (and the columns left over) are searched."""
    width = scores.shape[1]
    groups = width // GROUP_ROWS
    if groups < 4 * n:
        columns = np.broadcast_to(np.arange(width), scores.shape)
        candidates = scores
    else:
        full = groups * GROUP_ROWS
        view = scores[:, :full].reshape(len(scores), GROUP_ROWS, groups)
        maxima = np.maximum.reduce(view, axis=1)
        chosen = np.argpartition(maxima, groups - n, axis=1)[:, groups - n :]
        picked = (chosen[:, :, None] + np.arange(GROUP_ROWS) * groups).reshape(len(scores), -1)
        rest = np.broadcast_to(np.arange(full, width), (len(scores), width - full))
        columns = np.concatenate([picked, rest], axis=1)
        flat = np.ascontiguousarray(scores).ravel()
        candidates = flat[columns + (np.arange(len(scores)) * width)[:, None]]
    top = np.partition(candidates, candidates.shape[1] - n, axis=1)[:, -n:]
    best = candidates.max(axis=1, keepdims=True)
    first = np.where(candidates == best, columns, width).min(axis=1)
    return top, first


@dataclass
class _Running:
    """The k best scores found so far per query, the best one's row, and the rows matched."""

    top: np.ndarray
    best: np.ndarray
    nearest: np.ndarray
    matched: np.ndarray

    def add(self, ids: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> None:
        """Merge one block's scores of queries `ids` over the block's rows `rows`."""
        k = self.top.shape[1]
        top, first = _block_best(scores, min(k, scores.shape[1]))
        merged = np.concatenate([self.top[ids], top], axis=1)
        self.top[ids] = np.partition(merged, merged.shape[1] - k, axis=1)[:, -k:]
        value = scores[np.arange(len(ids)), first]
        better = value > self.best[ids]
        self.best[ids[better]] = value[better]
        self.nearest[ids[better]] = rows[first[better]]
        self.matched[ids] += scores.shape[1]


def _groups(
    block: Block, codes: list[tuple[int, np.ndarray]] | None, column: str | None
) -> Iterator[tuple[np.ndarray | None, np.ndarray]]:
    """(queries, the block's row positions they search); None queries means all of them.
    Filtered queries search only the rows labelled with their value, in COPY order."""
    if codes is None:
        yield None, np.arange(len(block.vectors))
        return
    labels = block.labels[column]  # type: ignore[index]
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    values = [code for code, _ in codes]
    lows = np.searchsorted(ordered, values, side="left")
    highs = np.searchsorted(ordered, values, side="right")
    for (_, ids), low, high in zip(codes, lows, highs, strict=True):
        if high > low:
            yield ids, order[low:high]


def exact(
    blocks: Iterable[Block],
    queries: np.ndarray,
    k: int,
    operator: str,
    filters: list[int] | None = None,
    filter_column: str | None = None,
) -> Truth:
    """Exact top-k of every query over the blocks; with `filters` (label hashes), only rows
    whose `filter_column` carries the query's label count, as `WHERE column = value` does."""
    count = len(queries)
    if operator == "<=>":
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        queries = np.divide(queries, norms, out=np.zeros_like(queries), where=norms > 0)
    queries = queries.astype(np.float32, copy=False)
    running = _Running(
        top=np.full((count, k), -np.inf, dtype=np.float32),
        best=np.full(count, -np.inf, dtype=np.float32),
        nearest=np.full(count, -1, dtype=np.int64),
        matched=np.zeros(count, dtype=np.int64),
    )
    everyone = np.arange(count)
    codes = None
    if filters is not None:
        wanted = np.asarray(filters, dtype=np.int64)
        codes = [(int(code), np.flatnonzero(wanted == code)) for code in np.unique(wanted)]
    rows = 0
    for block in blocks:
        rows += len(block.vectors)
        prepared, squares = _prepared(block.vectors, operator)
        for ids, positions in _groups(block, codes, filter_column):
            whole = ids is None
            ids = everyone if ids is None else ids
            selected = prepared if whole else prepared[positions]
            weights = squares if whole or squares is None else squares[positions]
            step = max(1, SCORES // len(positions))
            for start in range(0, len(ids), step):
                part = ids[start : start + step]
                scores = _scores(selected, weights, queries[part], operator)
                running.add(part, scores, block.start + positions)
    expected = np.minimum(running.matched, k)
    ordered = -np.sort(-running.top, axis=1)
    last = ordered[everyone, np.maximum(expected - 1, 0)]
    kth = np.where(expected > 0, _distance(last, queries, operator), np.inf)
    return Truth(kth, expected, running.nearest, rows)


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
