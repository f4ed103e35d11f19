"""Is the load generator the bottleneck? The same query at the same concurrency with pgbench
(a custom script) and with pgcutover's locust user, against one embedded PostgreSQL 18
server seeded with real embeddings: locust's throughput as a fraction of pgbench's (goal:
>= 0.8), and locust with one process against a master with two worker processes.

Two queries: a top-10 HNSW search (the server is the limit) and a primary-key lookup (so
cheap that the client is the limit). Both tools send each query unprepared over the
extended protocol (pgbench -M extended; psycopg with prepare_threshold=None).

    python benchmarks/bench_load.py [--rows 5000] [--seconds 10] [--clients 4]

Numbers depend on the machine and on whatever else runs on it: say which when you quote one.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pgcutover.config import FIXTURES_DIR, OPTIONS, build_settings
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import seed
from pgcutover.db import Endpoint, connection
from pgcutover.load.config import LoadConfig, parse_config
from pgcutover.load.runner import LoadPlan, run_locust
from pgcutover.providers.embedded import NEWEST_FLAVOR, bin_dir, start_embedded

DATABASE = "bench"
TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


@dataclass(frozen=True)
class Row:
    query: str
    client: str
    processes: int
    requests_per_second: float
    client_cpu_ms: float


def queries(endpoint: Endpoint) -> dict[str, str]:
    """The two benchmark queries with literal values taken from the seeded data."""
    with connection(endpoint, role="source") as conn:
        vector, document = conn.execute(
            "SELECT v.embedding::text, v.document_id FROM public.vector_embeddings v "
            "ORDER BY v.id LIMIT 1 OFFSET 7"
        ).fetchone()  # type: ignore[misc]
    return {
        "vector top-10": "SELECT id FROM public.vector_embeddings "
        f"ORDER BY embedding <=> '{vector}'::vector LIMIT 10",
        "primary-key lookup": f"SELECT id, title FROM public.documents WHERE id = '{document}'",
    }


def pgbench(endpoint: Endpoint, query: str, clients: int, seconds: int, workdir: Path) -> float:
    """pgbench's transactions per second for one query per transaction."""
    script = workdir / "query.sql"
    script.write_text(query + ";\n")
    command = [
        str(bin_dir(NEWEST_FLAVOR) / "pgbench"),
        "--no-vacuum",
        f"--client={clients}",
        "--jobs=2",
        f"--time={seconds}",
        "--protocol=extended",
        f"--file={script}",
    ]
    done = subprocess.run(
        command, env=endpoint.libpq_env(), capture_output=True, text=True, timeout=seconds + 60
    )
    match = TPS.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(endpoint.redact(f"pgbench failed: {done.stdout}\n{done.stderr}"))
    return float(match.group(1))


def locust_config(query: str, clients: int, seconds: int) -> LoadConfig:
    """fixtures/load.toml with one shape: the benchmark query, at `clients` users."""
    data = tomllib.loads((FIXTURES_DIR / "load.toml").read_text())
    data.update(
        weights={"bench": 1},
        shapes={"bench": {"sql": query}},
        parameters={"sql": "SELECT 1 AS unused"},
        users=clients,
        spawn_rate=clients,
        duration=seconds,
    )
    return parse_config(data)


def locust(
    endpoint: Endpoint, query: str, clients: int, seconds: int, workers: int, workdir: Path
) -> float:
    """locust's requests per second for the query (the ramp is one second)."""
    plan = LoadPlan(endpoint, locust_config(query, clients, seconds), source=True, workers=workers)
    stats = run_locust(plan, workdir, f"bench-{workers}")
    entry = stats.entries["bench"]
    if entry.failures:
        raise RuntimeError(f"locust saw {entry.failures} failures: {stats.top_errors()}")
    return entry.requests_per_second


#: (client, load-generating processes): pgbench, locust alone, locust master + 2 workers.
CLIENTS = (("pgbench", 1), ("locust", 1), ("locust", 2))


def children_cpu() -> float:
    """CPU seconds used so far by finished child processes (pgbench, locust and workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    endpoint: Endpoint,
    query: str,
    client: str,
    processes: int,
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[float, float]:
    """Requests per second, and client CPU milliseconds per request."""
    before = children_cpu()
    if client == "pgbench":
        rate = pgbench(endpoint, query, args.clients, args.seconds, workdir)
    else:
        workers = 0 if processes == 1 else processes
        rate = locust(endpoint, query, args.clients, args.seconds, workers, workdir)
    return rate, (children_cpu() - before) * 1000 / (rate * args.seconds)


def measure(endpoint: Endpoint, args: argparse.Namespace, workdir: Path) -> list[Row]:
    """Every cell `repeats` times, interleaved so that a noisy neighbour hits all alike."""
    rows = []
    for name, query in queries(endpoint).items():
        runs: dict[tuple[str, int], list[tuple[float, float]]] = {cell: [] for cell in CLIENTS}
        for _ in range(args.repeats):
            for client, processes in CLIENTS:
                runs[client, processes].append(
                    run_once(endpoint, query, client, processes, args, workdir)
                )
        for (client, processes), results in runs.items():
            rate = statistics.median(r for r, _ in results)
            cpu = statistics.median(c for _, c in results)
            rows.append(Row(name, client, processes, rate, cpu))
    return rows


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    baseline = {row.query: row.requests_per_second for row in rows if row.client == "pgbench"}
    print(
        f"\n{args.clients} concurrent clients, {args.seconds} s runs, median of {args.repeats}; "
        f"{os.cpu_count()} CPUs shared by the server, the client and anything else running.\n"
        "locust with 2 processes = a master and 2 worker processes. Client CPU includes "
        "start-up (about 1 s of CPU for a locust process)."
    )
    print(
        f"{'query':<20} {'client':<8} {'processes':>9} {'req/s':>9} {'/ pgbench':>10} "
        f"{'client CPU ms/req':>18}"
    )
    for row in rows:
        ratio = row.requests_per_second / baseline[row.query]
        print(
            f"{row.query:<20} {row.client:<8} {row.processes:>9} "
            f"{row.requests_per_second:>9.0f} {ratio:>10.2f} {row.client_cpu_ms:>18.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="vector chunks to seed")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run")
    parser.add_argument("--clients", type=int, default=4, help="pgbench clients = locust users")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell (median taken)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgcutover-bench-load-") as folder:
        workdir = Path(folder)
        workdir.chmod(0o711)
        server = start_embedded(NEWEST_FLAVOR, workdir / "server", "benchmark (PG18)")
        try:
            settings = build_settings(
                {option.name: option.default for option in OPTIONS},
                migrate=None,
                allow_destructive=False,
                rootdir=Path.cwd(),
            )
            embedder = Embedder(settings.embedding_model, settings.cache_dir)
            try:
                seed(server.endpoint, DATABASE, args.rows, embedder)
            finally:
                embedder.close()
            print_table(measure(server.endpoint.with_dbname(DATABASE), args, workdir), args)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
