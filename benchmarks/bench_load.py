"""Is the load generator the bottleneck? The same query at the same concurrency with pgbench
(a custom script) and with pgcutover's locust user, against one embedded PostgreSQL 18
server seeded with real embeddings: locust's throughput as a fraction of pgbench's per query
shape (goals: >= 0.8 on the vector top-10, >= 0.6 on the primary-key lookup), and what one
extra load-generating process gives (locust alone against a master with two workers).

Two queries: a top-10 HNSW search (the server is the limit) and a primary-key lookup (so
cheap that the client is the limit). Both tools send each query unprepared over the
extended protocol (pgbench -M extended; pgcutover's user sends the same unnamed statement).
Each cell runs --repeats times, interleaved, and the medians are reported with the client
CPU each request cost (pgbench, locust and its workers, start-up included).

    python benchmarks/bench_load.py [--rows 5000] [--seconds 10] [--clients 4]
        [--repeats 3] [--json PATH]

Numbers depend on the machine and on whatever else runs on it: on a machine whose cores
the server needs, an extra worker process takes CPU from the server rather than adding
load. Say which machine (and the load average the JSON records) when you quote one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import psutil
from record import (
    Record,
    backends,
    client_cpu,
    load_average,
    server_cpu,
    server_versions,
    wait_reaped,
)

from pgcutover.config import FIXTURES_DIR, OPTIONS, build_settings
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import seed
from pgcutover.db import Endpoint, connection
from pgcutover.load.config import LoadConfig, parse_config
from pgcutover.load.runner import LoadPlan, LocustRun
from pgcutover.providers.embedded import NEWEST_FLAVOR, bin_dir, start_embedded

DATABASE = "bench"
GOALS = {"vector top-10": 0.8, "primary-key lookup": 0.6}
TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


@dataclass(frozen=True)
class Row:
    query: str
    client: str
    processes: int
    requests_per_second: float
    client_cpu_ms: float
    server_cpu_ms: float


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
) -> tuple[float, int, float]:
    """locust's requests per second and requests for the query (the ramp is one second),
    and the CPU seconds its processes had used once every user was running (start-up, left
    out of the cost per request)."""
    plan = LoadPlan(endpoint, locust_config(query, clients, seconds), source=True, workers=workers)
    run = LocustRun(plan, workdir, f"bench-{workers}")
    run.start()
    run.wait_until_running()
    startup = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in run.processes)
    stats = run.wait()
    entry = stats.entries.get("bench")
    if entry is None:
        raise RuntimeError(f"locust sent no request in {seconds} s: run longer (--seconds)")
    if entry.failures:
        raise RuntimeError(f"locust saw {entry.failures} failures: {stats.top_errors()}")
    return entry.requests_per_second, entry.requests, startup


#: (client, load-generating processes): pgbench, locust alone, locust master + 2 workers.
CLIENTS = (("pgbench", 1), ("locust", 1), ("locust", 2))


def run_once(
    endpoint: Endpoint,
    query: str,
    client: str,
    processes: int,
    args: argparse.Namespace,
    workdir: Path,
    postmaster: psutil.Process,
) -> tuple[float, float, float]:
    """Requests per second, and client and server CPU milliseconds per request (the
    client's start-up left out)."""
    running = backends([postmaster])
    client_before, server_before = client_cpu(), server_cpu([postmaster])
    if client == "pgbench":
        rate = pgbench(endpoint, query, args.clients, args.seconds, workdir)
        requests, startup = rate * args.seconds, 0.0
    else:
        workers = 0 if processes == 1 else processes
        rate, requests, startup = locust(
            endpoint, query, args.clients, args.seconds, workers, workdir
        )
    client = client_cpu() - client_before - startup
    wait_reaped([postmaster], running)
    server = server_cpu([postmaster]) - server_before
    return rate, client * 1000 / requests, server * 1000 / requests


def measure(
    endpoint: Endpoint, args: argparse.Namespace, workdir: Path, postmaster: psutil.Process
) -> list[Row]:
    """Every cell `repeats` times, interleaved so that a noisy neighbour hits all alike."""
    rows = []
    for name, query in queries(endpoint).items():
        runs: dict[tuple[str, int], list[tuple[float, float, float]]] = {
            cell: [] for cell in CLIENTS
        }
        for _ in range(args.repeats):
            for client, processes in CLIENTS:
                runs[client, processes].append(
                    run_once(endpoint, query, client, processes, args, workdir, postmaster)
                )
        for (client, processes), results in runs.items():
            rate, client_ms, server_ms = (
                statistics.median(column) for column in zip(*results, strict=True)
            )
            rows.append(Row(name, client, processes, rate, client_ms, server_ms))
    return rows


def summary(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Per query: locust / pgbench (one process, and master + workers), the gain of the extra
    worker process, and the goal."""
    rates = {(row.query, row.client, row.processes): row.requests_per_second for row in rows}
    ratios = {}
    for query in GOALS:
        pgbench_rate = rates[query, "pgbench", 1]
        ratios[query] = {
            "locust_to_pgbench": rates[query, "locust", 1] / pgbench_rate,
            "locust_workers_to_pgbench": rates[query, "locust", 2] / pgbench_rate,
            "extra_worker_gain": rates[query, "locust", 2] / rates[query, "locust", 1],
            "goal": GOALS[query],
        }
    return ratios


def print_table(
    rows: list[Row], ratios: dict[str, dict[str, float]], args: argparse.Namespace
) -> None:
    baseline = {row.query: row.requests_per_second for row in rows if row.client == "pgbench"}
    print(
        f"\n{args.clients} concurrent clients, {args.seconds} s runs, median of {args.repeats}; "
        f"{os.cpu_count()} CPUs shared by the server, the client and anything else running "
        f"(load average now {load_average()}).\n"
        "locust with 2 processes = a master and 2 worker processes. CPU per request: the "
        "load generator's (its start-up left out) and the server's."
    )
    print(
        f"{'query':<20} {'client':<8} {'processes':>9} {'req/s':>9} {'/ pgbench':>10} "
        f"{'client CPU ms/req':>18} {'server CPU ms/req':>18}"
    )
    for row in rows:
        ratio = row.requests_per_second / baseline[row.query]
        print(
            f"{row.query:<20} {row.client:<8} {row.processes:>9} "
            f"{row.requests_per_second:>9.0f} {ratio:>10.2f} {row.client_cpu_ms:>18.3f}"
            f" {row.server_cpu_ms:>18.3f}"
        )
    for query, ratio in ratios.items():
        print(
            f"{query}: locust / pgbench {ratio['locust_to_pgbench']:.2f} "
            f"(goal >= {ratio['goal']}), one extra worker process "
            f"x{ratio['extra_worker_gain']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="vector chunks to seed")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run")
    parser.add_argument("--clients", type=int, default=4, help="pgbench clients = locust users")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median taken)")
    parser.add_argument("--json", type=Path, help="write figures, ratios and machine facts here")
    args = parser.parse_args()
    record = Record("load", {k: v for k, v in vars(args).items() if k != "json"})
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
            endpoint = server.endpoint.with_dbname(DATABASE)
            rows = measure(endpoint, args, workdir, server.postmaster())  # type: ignore[arg-type]
            ratios = summary(rows)
            print_table(rows, ratios, args)
            with connection(endpoint, role="source") as conn:
                versions = server_versions(conn)
            record.write(
                args.json,
                servers={"server": versions},
                figures=[vars(row) for row in rows],
                ratios=ratios,
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
