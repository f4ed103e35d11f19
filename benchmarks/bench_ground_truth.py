"""How close to its floor is recall ground truth, and how much cheaper than exact SQL?
Exact top-k for Q queries over N vectors (384 dimensions, cosine), on one embedded
PostgreSQL 18 server (pgvector 0.8), timed in the same run:

    floor        read the vectors once (COPY ... TO STDOUT (FORMAT BINARY), pgcutover's COPY
                 reader, discarded) + one float32 matrix product, all queries x all vectors
    streamed     groundtruth.exact over groundtruth.blocks: the vectors streamed once, parsed
                 and scored block by block, nothing held but each query's k best (how the
                 target side is computed when its content differs from the source's)
    in memory    groundtruth.stream (the corpus the query set is drawn from, filled block by
                 block) + groundtruth.exact over its blocks (how the source side is computed)
    exact SQL    one `ORDER BY embedding <=> $q LIMIT k` per query with enable_indexscan =
                 off (a sequential scan + top-N sort each), on --sql-queries of the queries,
                 extrapolated by its per-query rate

The vectors are synthesised around real MiniLM embeddings of pgcutover's corpus (cached after
the first run), never random uniform ones; queries are stored vectors with small noise. The
methods alternate over --repeat rounds and medians are reported, so a shared machine's
changing load hits all alike; the answers of NumPy and SQL are compared on the queries SQL
ran. Goal: streamed and in memory <= 1.2x the floor.

    python benchmarks/bench_ground_truth.py [--vectors 200000] [--queries 1000]
        [--sql-queries 100] [--repeat 5] [--json PATH]

Numbers depend on the machine and on whatever else runs on it: say which (and the load
average the JSON records) when you quote one.
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
from psycopg import sql
from record import Record, Timings, load_average, server_versions

from pgcutover.checks.content.copyout import CopyOut
from pgcutover.checks.search import groundtruth
from pgcutover.checks.search.shapes import Shape
from pgcutover.config import DEFAULT_MODEL
from pgcutover.dataset.corpus import chunk, documents
from pgcutover.dataset.embedder import Embedder
from pgcutover.db import Endpoint, connect
from pgcutover.providers.embedded import start_embedded

K = 10
BASE_CHUNKS = 5000
GOAL = 1.2
SHAPE = Shape(name="bench", schema="public", table="bench", column="embedding", operator="<=>", k=K)
COPY = sql.SQL(
    "COPY (SELECT embedding FROM bench WHERE embedding IS NOT NULL) TO STDOUT (FORMAT BINARY)"
)


def real_embeddings(cache_dir: Path) -> np.ndarray:
    """MiniLM embeddings of the corpus's first chunks (from the on-disk cache when present)."""
    passages = (p for document in documents() for p in chunk(document.text))
    embedder = Embedder(DEFAULT_MODEL, cache_dir)
    try:
        return embedder.embed(list(islice(passages, BASE_CHUNKS)))
    finally:
        embedder.close()


def build(endpoint: Endpoint, base: np.ndarray, count: int) -> None:
    """Table `bench` of `count` unit vectors around the real ones."""
    rng = np.random.default_rng(11)
    with connect(endpoint, role="admin") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE bench (id bigint PRIMARY KEY, embedding vector(384) NOT NULL)")
        register_vector(conn)
        with conn.cursor().copy("COPY bench FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for start in range(0, count, 10_000):
                rows = np.arange(start, min(start + 10_000, count))
                vectors = base[rows % len(base)] + rng.normal(0, 0.02, (len(rows), base.shape[1]))
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for i, vector in zip(rows, vectors.astype(np.float32), strict=True):
                    copy.write_row((int(i), vector))
        conn.execute("VACUUM ANALYZE bench")


def exact_sql(endpoint: Endpoint, queries: np.ndarray) -> list[np.ndarray]:
    """The distances one exact SQL query per query vector returns."""
    found = []
    with connect(endpoint, role="source") as conn:
        register_vector(conn)
        conn.execute("SET enable_indexscan = off")
        for query in queries:
            rows = conn.execute(
                "SELECT embedding <=> %(q)s FROM bench ORDER BY embedding <=> %(q)s LIMIT %(k)s",
                {"q": query, "k": K},
            ).fetchall()
            found.append(np.array([row[0] for row in rows]))
    return found


def read_once(endpoint: Endpoint) -> None:
    """The floor's read: every vector once over COPY BINARY, discarded."""
    with connect(endpoint, role="source") as conn:
        for _ in CopyOut(conn, COPY):
            pass


def streamed(endpoint: Endpoint, queries: np.ndarray) -> groundtruth.Truth:
    with connect(endpoint, role="source") as conn:
        return groundtruth.exact(groundtruth.blocks(conn, SHAPE, ()), queries, K, "<=>")


def in_memory(endpoint: Endpoint, queries: np.ndarray) -> groundtruth.Truth:
    with connect(endpoint, role="source") as conn:
        corpus = groundtruth.stream(conn, SHAPE, ())
    return groundtruth.exact(corpus.blocks(), queries, K, "<=>")


def measure(
    endpoint: Endpoint,
    vectors: np.ndarray,
    queries: np.ndarray,
    args: argparse.Namespace,
    timings: Timings,
) -> tuple[list[np.ndarray], groundtruth.Truth]:
    """Every method once per round; SQL runs its share of --sql-queries each round."""
    sql_found: list[np.ndarray] = []
    ran = min(args.sql_queries, args.queries)
    truth = None
    for part in np.array_split(np.arange(ran), args.repeat):
        timings.time("floor: COPY read", lambda: read_once(endpoint))
        timings.time("floor: product", lambda: queries @ vectors.T)
        truth = timings.time("streamed", lambda: streamed(endpoint, queries))
        timings.time("in memory", lambda: in_memory(endpoint, queries))
        found = timings.time("exact SQL", lambda q=queries[part]: exact_sql(endpoint, q))
        for series in (timings.wall, timings.client, timings.server):
            series["exact SQL"][-1] /= max(len(part), 1)
        sql_found.extend(found)
    return sql_found, truth  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--sql-queries", type=int, default=100, help="SQL runs this many")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds, medians kept")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "pgcutover")
    parser.add_argument("--json", type=Path, help="write figures, ratios and machine facts here")
    args = parser.parse_args()
    record = Record("ground_truth", {k: v for k, v in vars(args).items() if k != "json"})
    workdir = Path(tempfile.mkdtemp(prefix="pgcutover-bench-gt-"))
    workdir.chmod(0o711)
    server = start_embedded("pg18", workdir / "server", "ground-truth benchmark")
    try:
        endpoint = server.endpoint
        started = time.perf_counter()
        build(endpoint, real_embeddings(args.cache_dir), args.vectors)
        print(f"built {args.vectors} vectors in {time.perf_counter() - started:.1f} s")
        with connect(endpoint, role="source") as conn:
            vectors = groundtruth.stream(conn, SHAPE, ()).vectors
            versions = server_versions(conn)
        rng = np.random.default_rng(5)
        picked = vectors[rng.choice(len(vectors), args.queries, replace=False)]
        noisy = picked + rng.normal(0, 0.01, picked.shape)
        queries = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
        timings = Timings([server.postmaster()])  # type: ignore[list-item]
        sql_found, truth = measure(endpoint, vectors, queries, args, timings)
        ratios = report(args, timings, sql_found, truth)
        record.write(
            args.json,
            servers={"server": versions},
            figures=timings.figures(),
            ratios=ratios,
            goals={"streamed_to_floor": GOAL, "in_memory_to_floor": GOAL},
        )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    timings: Timings,
    sql_found: list[np.ndarray],
    truth: groundtruth.Truth,
) -> dict[str, float]:
    """The table (medians, fastest, ratio to the floor, CPU); SQL per query extrapolated to
    every query."""
    floor = timings.median("floor: COPY read") + timings.median("floor: product")
    floor_cpu = timings.median_cpu("floor: COPY read") + timings.median_cpu("floor: product")
    sql_total = timings.median("exact SQL") * args.queries
    ratios = {
        "streamed_to_floor": timings.median("streamed") / floor,
        "in_memory_to_floor": timings.median("in memory") / floor,
        "exact_sql_to_streamed": sql_total / timings.median("streamed"),
        "cpu_streamed_to_floor": timings.median_cpu("streamed") / floor_cpu,
        "cpu_in_memory_to_floor": timings.median_cpu("in memory") / floor_cpu,
        "floor_s": floor,
    }
    print(f"\nground truth: {args.queries} queries x {args.vectors} vectors, 384 dims, top-{K}")
    print(f"median of {args.repeat} interleaved rounds; load average now {load_average()}")
    print(f"{'method':<34}{'median s':>10}{'best s':>9}{'/ floor':>9}{'CPU s':>8}")
    for name, times in timings.wall.items():
        if name != "exact SQL":
            median, cpu = timings.median(name), timings.median_cpu(name)
            print(f"{name:<34}{median:>10.2f}{min(times):>9.2f}{median / floor:>9.2f}{cpu:>8.2f}")
    print(f"{'floor (COPY read + product)':<34}{floor:>10.2f}{'':>9}{1:>9.2f}{floor_cpu:>8.2f}")
    name = f"exact SQL ({len(sql_found)} run, extrapolated)"
    print(f"{name:<34}{sql_total:>10.1f}{'':>9}{sql_total / floor:>9.1f}")
    print(
        f"\nstreamed / floor {ratios['streamed_to_floor']:.2f}, in memory / floor "
        f"{ratios['in_memory_to_floor']:.2f} (goal <= {GOAL}); exact SQL / streamed "
        f"{ratios['exact_sql_to_streamed']:.0f}x"
    )
    ran = len(sql_found)
    agree = groundtruth.recall(truth, sql_found, 1e-6)
    same_kth = np.abs(truth.kth[:ran] - np.array([d[-1] for d in sql_found])) < 1e-5
    print(
        f"agreement on the {ran} queries SQL ran: recall {np.nanmean(agree):.4f}, "
        f"k-th distance equal in {int(same_kth.sum())}/{ran}"
    )
    ratios["sql_agreement_recall"] = float(np.nanmean(agree))
    return ratios


if __name__ == "__main__":
    main()
