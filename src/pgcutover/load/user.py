"""The locust side: a PostgreSQL user class running the configured query mix, its --pg-*
options, and per-worker request counts for distributed runs.

Imported only inside a locust process. locust is imported first on purpose: its gevent
monkey-patching of `select` must happen before psycopg loads, or one slow query blocks
every simulated user (ENVIRONMENT.md).

A request is cheap for the client (measured against pgbench in benchmarks/bench_load.py):
it is sent pre-bound (workload.py), its socket is waited on through two gevent watchers the
user keeps for its connection (psycopg's own wait builds a poll object, its watchers and a
timeout on every wait), and only its row count comes back into Python.
"""

from __future__ import annotations

import locust  # noqa: F401  (must precede psycopg, see above)

# isort: split
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
import psycopg
from locust import User, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import StatsEntry

from pgcutover.db import connect
from pgcutover.errors import PgcutoverError
from pgcutover.load import options as load_options
from pgcutover.load.options import LoadTarget
from pgcutover.load.stats import SUMMARY_SUFFIX
from pgcutover.load.workload import Workload, build_workload, execute

REQUEST_TYPE = "pg"
#: libev's event masks for a socket watcher.
READ, WRITE = 1, 2
#: Without think time, a task sends requests back to back for this long: locust's task
#: bookkeeping and its sleep(0) between tasks are paid once per burst, not per request.
BURST_SECONDS = 0.05
#: Seconds a user waits after a failed connection attempt before trying again.
RETRY_SECONDS = 1.0

_log = logging.getLogger("pgcutover.load")
_setup_lock = gevent.lock.Semaphore()
_process: dict[str, Any] = {}
_counts = {"requests": 0, "failures": 0}
_workers: dict[str, dict[str, int]] = {}


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    load_options.add_arguments(parser)


@events.init.add_listener
def _validate(environment: Environment, **_: Any) -> None:
    """Fail fast on bad options where they were typed (workers get them from the master)."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    try:
        target = load_options.resolve(environment.parsed_options)
        target.config.mix(writes=target.writes)
    except PgcutoverError as error:
        _log.error("pgcutover: %s", error)
        raise SystemExit(2) from None


def _target(environment: Environment) -> LoadTarget:
    """This process's LoadTarget, resolved once (on a worker, after the master's options)."""
    if "target" not in _process:
        _process["target"] = load_options.resolve(environment.parsed_options)
    return _process["target"]  # type: ignore[no-any-return]


class PostgresUser(User):
    """One simulated app user: one connection, opened on start and closed on stop, running
    the weighted query mix. Every query is a locust request (type "pg", named after its
    shape); a failed query is a failure in the statistics and the user carries on."""

    abstract = True

    def on_start(self) -> None:
        """Resolve where to connect; a configuration error (say, the password variable
        missing on a worker machine) is reported as a failed `setup` and ends this user."""
        self.rng = random.Random()
        self.conn: psycopg.Connection | None = None
        self.watchers: tuple[Any, Any] | None = None
        self.fire = self.environment.events.request.fire
        if not self._request("setup", self._resolve):
            raise StopUser()

    def _resolve(self) -> int:
        self.target = _target(self.environment)
        return 0

    def on_stop(self) -> None:
        if self.watchers is not None:
            for watcher in self.watchers:
                watcher.close()
            self.watchers = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def wait_time(self) -> float:
        return self.target.config.wait_seconds

    @task
    def query(self) -> None:
        """One request of the mix; waits and retries when the database is unreachable."""
        workload = self._workload()
        if workload is None:
            gevent.sleep(RETRY_SECONDS)
            return
        burst = self.target.config.wait_seconds == 0
        deadline = time.perf_counter() + BURST_SECONDS
        while self.conn is not None:
            shape, request = workload.pick(self.rng)
            pgconn = self.conn.pgconn
            self._request(shape.name, execute, pgconn, request, self._wait, self.encoding)
            if not burst or time.perf_counter() >= deadline:
                break

    def _workload(self) -> Workload | None:
        """Connect if needed; the first user of a process also samples the parameters."""
        if self.conn is None:
            self._request("connect", self._connect)
            if self.conn is None:
                return None
        if "workload" not in _process:
            with _setup_lock:
                if "workload" not in _process and not self._request("parameters", self._sample):
                    return None
        return _process["workload"]  # type: ignore[no-any-return]

    def _connect(self) -> int:
        self.conn = connect(
            self.target.endpoint, role=self.target.role, options=self.target.session_options
        )
        self.encoding = self.conn.info.encoding
        loop = gevent.get_hub().loop
        socket = self.conn.pgconn.socket
        self.watchers = (loop.io(socket, READ), loop.io(socket, WRITE))
        return 0

    def _wait(self, writing: bool) -> None:
        """Block this user (not the process) until its socket is writable or readable."""
        gevent.get_hub().wait(self.watchers[writing])  # type: ignore[index]

    def _sample(self) -> int:
        workload = build_workload(self.target.config, self.conn, writes=self.target.writes)  # type: ignore[arg-type]
        _process["workload"] = workload
        return sum(len(requests) for requests in workload.requests)

    def _request(self, name: str, run: Callable[..., int], *args: Any) -> bool:
        """Time `run(*args)`, report it to locust's statistics with its real error; a broken
        connection is dropped so the next request reconnects."""
        started = time.perf_counter()
        error: Exception | None = None
        rows = 0
        try:
            rows = run(*args)
        except (psycopg.Error, PgcutoverError) as caught:
            error = caught
            if self.conn is not None and (self.conn.closed or self.conn.broken):
                self.on_stop()
        self.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=rows,
            exception=error,
            context={},
        )
        return error is None


@events.request.add_listener
def _count(request_type: str, exception: Exception | None, **_: Any) -> None:
    if request_type == REQUEST_TYPE:
        _counts["requests"] += 1
        _counts["failures"] += exception is not None


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    data["pgcutover_counts"] = dict(_counts)


@events.worker_report.add_listener
def _collect(client_id: str, data: dict[str, Any]) -> None:
    if "pgcutover_counts" in data:
        _workers[client_id] = data["pgcutover_counts"]


def _entry(entry: StatsEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "average_ms": entry.avg_response_time,
        "p50_ms": entry.get_response_time_percentile(0.5),
        "p95_ms": entry.get_response_time_percentile(0.95),
        "p99_ms": entry.get_response_time_percentile(0.99),
        "max_ms": entry.max_response_time,
        "requests_per_second": entry.total_rps,
    }


@events.quitting.add_listener
def _write_summary(environment: Environment, **_: Any) -> None:
    """With --csv, on the process that holds the totals: the final statistics (locust's
    CSV files are rewritten only once a second and miss the last moments), the errors, and
    on a master which worker sent how many requests (proof every machine generated load)."""
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or not (options and options.csv_prefix):
        return
    stats = environment.stats
    summary = {
        "entries": [_entry(entry) for entry in stats.entries.values() if entry.num_requests],
        "total": _entry(stats.total),
        "errors": [
            {"name": e.name, "error": str(e.error), "occurrences": e.occurrences}
            for e in stats.errors.values()
        ],
        "workers": _workers if isinstance(environment.runner, MasterRunner) else {},
    }
    Path(options.csv_prefix + SUMMARY_SUFFIX).write_text(json.dumps(summary, indent=2))
