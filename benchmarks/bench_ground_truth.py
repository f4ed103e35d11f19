"""How much cheaper is ground truth from one COPY BINARY stream + NumPy than exact SQL?
Exact top-k for Q queries over N vectors (384 dimensions, cosine), on one embedded
PostgreSQL 18 server (pgvector 0.8):

    exact SQL    one `ORDER BY embedding <=> $q LIMIT k` per query with
                 enable_indexscan = off (a sequential scan + top-N sort each)
    NumPy        what the recall check does: the vectors streamed once with
                 COPY ... TO STDOUT (FORMAT BINARY), parsed in place, then exact top-k in
                 blocks of queries (groundtruth.stream + groundtruth.exact)

The vectors are synthesised around real MiniLM embeddings of pgcutover's corpus (cached after
the first run), never random uniform ones; queries are stored vectors with small noise. The
SQL side can run on a subset of the queries (--sql-queries) and be extrapolated by its
per-query rate, which the output says. Both answers are compared on the queries SQL ran.
The two methods alternate over --repeat rounds (the SQL queries split between them) and
the medians are reported, so a shared machine's changing load hits both alike.

    python benchmarks/bench_ground_truth.py [--vectors 200000] [--queries 1000]
        [--sql-queries 100] [--repeat 3]

Numbers depend on the machine and on whatever else runs on it: say which when you quote one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from pgvector.psycopg import register_vector

from pgcutover.checks.search import groundtruth
from pgcutover.checks.search.shapes import Shape
from pgcutover.config import DEFAULT_MODEL
from pgcutover.dataset.corpus import chunk, documents
from pgcutover.dataset.embedder import Embedder
from pgcutover.db import Endpoint, connect
from pgcutover.providers.embedded import start_embedded

K = 10
BASE_CHUNKS = 5000
SHAPE = Shape(name="bench", schema="public", table="bench", column="embedding", operator="<=>", k=K)


def real_embeddings(cache_dir: Path) -> np.ndarray:
    """MiniLM embeddings of the corpus's first chunks (from the on-disk cache when present)."""
    passages = (p for document in documents() for p in chunk(document.text))
    embedder = Embedder(DEFAULT_MODEL, cache_dir)
    try:
        return embedder.embed(list(islice(passages, BASE_CHUNKS)))
    finally:
        embedder.close()


def build(endpoint: Endpoint, base: np.ndarray, count: int) -> np.ndarray:
    """Table `bench` of `count` unit vectors around the real ones; returns them."""
    rng = np.random.default_rng(11)
    vectors = base[np.arange(count) % len(base)] + rng.normal(0, 0.02, (count, base.shape[1]))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    with connect(endpoint, role="admin") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE bench (id bigint PRIMARY KEY, embedding vector(384) NOT NULL)")
        register_vector(conn)
        with conn.cursor().copy("COPY bench FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for i, vector in enumerate(vectors):
                copy.write_row((i, vector))
        conn.execute("VACUUM ANALYZE bench")
    return vectors


def exact_sql(endpoint: Endpoint, queries: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Seconds and returned distances, one exact SQL query per query vector."""
    found = []
    with connect(endpoint, role="source") as conn:
        register_vector(conn)
        conn.execute("SET enable_indexscan = off")
        started = time.perf_counter()
        for query in queries:
            rows = conn.execute(
                "SELECT embedding <=> %(q)s FROM bench ORDER BY embedding <=> %(q)s LIMIT %(k)s",
                {"q": query, "k": K},
            ).fetchall()
            found.append(np.array([row[0] for row in rows]))
        return time.perf_counter() - started, found


def numpy_truth(
    endpoint: Endpoint, queries: np.ndarray
) -> tuple[dict[str, float], groundtruth.Truth]:
    """Seconds per phase (fingerprint, stream, top-k) and the ground truth."""
    seconds = {}
    with connect(endpoint, role="source") as conn:
        started = time.perf_counter()
        digest = groundtruth.fingerprint(conn, SHAPE, ())
        seconds["fingerprint"] = time.perf_counter() - started
        started = time.perf_counter()
        corpus = groundtruth.stream(conn, SHAPE, (), digest)
        seconds["stream"] = time.perf_counter() - started
    started = time.perf_counter()
    truth = groundtruth.exact(corpus, queries, K, "<=>")
    seconds["top-k"] = time.perf_counter() - started
    return seconds, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--sql-queries", type=int, default=100, help="SQL runs this many")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds, median kept")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "pgcutover")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pgcutover-bench-gt-"))
    workdir.chmod(0o711)
    server = start_embedded("pg18", workdir / "server", "ground-truth benchmark")
    try:
        endpoint = server.endpoint
        started = time.perf_counter()
        vectors = build(endpoint, real_embeddings(args.cache_dir), args.vectors)
        print(f"built {args.vectors} vectors in {time.perf_counter() - started:.1f} s")
        rng = np.random.default_rng(5)
        picked = vectors[rng.choice(len(vectors), args.queries, replace=False)]
        noisy = picked + rng.normal(0, 0.01, picked.shape)
        queries = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
        ran = min(args.sql_queries, args.queries)
        per_round = np.array_split(np.arange(ran), args.repeat)
        sql_rates, rounds, sql_found = [], [], []
        for part in per_round:
            seconds, found = exact_sql(endpoint, queries[part])
            sql_rates.append(seconds / len(part))
            sql_found.extend(found)
            phases, truth = numpy_truth(endpoint, queries)
            rounds.append(phases)
        median = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]}
        report(args, ran, float(np.median(sql_rates)) * ran, sql_found, median, truth)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    ran: int,
    sql_seconds: float,
    sql_found: list[np.ndarray],
    phases: dict[str, float],
    truth: groundtruth.Truth,
) -> None:
    """The table: SQL extrapolated by its per-query rate when it ran on a subset."""
    per_query = sql_seconds / ran
    sql_total = per_query * args.queries
    numpy_total = phases["stream"] + phases["top-k"]
    agree = groundtruth.recall(truth, sql_found, 1e-6)
    same_kth = np.abs(truth.kth[:ran] - np.array([d[-1] for d in sql_found])) < 1e-5
    print(f"\nground truth: {args.queries} queries x {args.vectors} vectors, 384 dims, top-{K}")
    print(f"{'method':<44}{'seconds':>10}{'queries/s':>12}")
    note = "" if ran == args.queries else f" ({ran} run, extrapolated)"
    print(f"{'exact SQL, enable_indexscan=off' + note:<44}{sql_total:>10.1f}{1 / per_query:>12.1f}")
    print(f"{'  NumPy: COPY BINARY stream, parsed':<44}{phases['stream']:>10.2f}")
    print(f"{'  NumPy: exact top-k':<44}{phases['top-k']:>10.2f}")
    rate = args.queries / numpy_total
    print(f"{'NumPy total':<44}{numpy_total:>10.2f}{rate:>12.1f}")
    print(f"{'content fingerprint (per side, not in total)':<44}{phases['fingerprint']:>10.2f}")
    print(f"\nratio exact SQL / NumPy: {sql_total / numpy_total:.0f}x (goal 50x)")
    print(
        f"agreement on the {ran} queries SQL ran: recall {np.nanmean(agree):.4f}, "
        f"k-th distance equal in {int(same_kth.sum())}/{ran}"
    )


if __name__ == "__main__":
    main()
