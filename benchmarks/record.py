"""What every benchmark writes with `--json PATH`: its figures and ratios beside the facts of
the machine that produced them (cores, memory, CPU, versions, load average before and
after), so that a nightly job can track the ratios and a reader can judge the numbers."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")
#: Seconds to wait for a method's server backends to exit before reading its CPU time.
REAP_SECONDS = 10.0
PACKAGES = ("numpy", "psycopg", "psycopg-binary", "xxhash", "locust", "reladiff", "pgvector")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _plain(value: Any) -> Any:
    """JSON for what json does not know: NumPy scalars as numbers, paths as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    """Cores, memory, CPU, operating system, Python and package versions, git commit."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": _cpu_model(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES if _version(name)},
        "commit": _commit(),
    }


class Record:
    """One benchmark run: started now (load average noted), written by `write`."""

    def __init__(self, benchmark: str, parameters: dict[str, Any]) -> None:
        self.data: dict[str, Any] = {
            "benchmark": benchmark,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": parameters,
            "machine": machine(),
            "load_average": {"before": load_average()},
        }

    def write(self, path: Path | None, **sections: Any) -> None:
        """Add `sections` (figures, ratios, servers ...) and the load average now; write the
        JSON to `path` when one was given."""
        self.data.update(sections)
        self.data["load_average"]["after"] = load_average()
        self.data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.data, indent=2, default=_plain) + "\n")
            print(f"\nwrote {path}")


def server_versions(conn: Any) -> dict[str, str | None]:
    """A server's PostgreSQL and pgvector versions (from an open psycopg connection)."""
    row = conn.execute(
        "SELECT current_setting('server_version'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
    ).fetchone()
    return {"postgresql": row[0], "pgvector": row[1]}


def client_cpu() -> float:
    """CPU seconds used by this process and its finished children (pgbench, locust)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def server_cpu(postmasters: list[psutil.Process]) -> float:
    """CPU seconds used so far by servers: each postmaster, its live backends, and the
    backends it has reaped (counted in its children's times)."""
    total = 0.0
    for postmaster in postmasters:
        times = postmaster.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children():
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
    return total


def backends(postmasters: list[psutil.Process]) -> int:
    """How many processes the servers run now."""
    return sum(len(postmaster.children()) for postmaster in postmasters)


def wait_reaped(postmasters: list[psutil.Process], running: int) -> None:
    """Wait until the servers are back to `running` processes: backends that exited have
    been reaped and their CPU time is in the postmasters' children's times."""
    deadline = time.monotonic() + REAP_SECONDS
    while backends(postmasters) > running and time.monotonic() < deadline:
        time.sleep(0.05)


class Timings:
    """Wall seconds and CPU seconds (this process, its children and the servers) of each
    method, one entry per round; medians are what the benchmarks compare."""

    def __init__(self, postmasters: list[psutil.Process]) -> None:
        self.postmasters = postmasters
        self.wall: dict[str, list[float]] = {}
        self.client: dict[str, list[float]] = {}
        self.server: dict[str, list[float]] = {}

    def time(self, name: str, job: Callable[[], T]) -> T:
        """Run `job` once as method `name`; its result. CPU is read once the job's backends
        have exited and been reaped, so that it is counted for this method, not the next."""
        running = backends(self.postmasters)
        client, server = client_cpu(), server_cpu(self.postmasters)
        started = time.perf_counter()
        result = job()
        self.wall.setdefault(name, []).append(time.perf_counter() - started)
        wait_reaped(self.postmasters, running)
        self.client.setdefault(name, []).append(client_cpu() - client)
        self.server.setdefault(name, []).append(server_cpu(self.postmasters) - server)
        return result

    def cpu(self, name: str) -> list[float]:
        """CPU seconds of every round: client and servers together."""
        return [c + s for c, s in zip(self.client[name], self.server[name], strict=True)]

    def median(self, name: str) -> float:
        return statistics.median(self.wall[name])

    def median_cpu(self, name: str) -> float:
        return statistics.median(self.cpu(name))

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per method: median and every round, wall time and CPU time (client, servers)."""
        return {
            name: {
                "median_s": self.median(name),
                "runs_s": self.wall[name],
                "median_cpu_s": self.median_cpu(name),
                "median_client_cpu_s": statistics.median(self.client[name]),
                "median_server_cpu_s": statistics.median(self.server[name]),
                "runs_client_cpu_s": self.client[name],
                "runs_server_cpu_s": self.server[name],
            }
            for name in self.wall
        }
