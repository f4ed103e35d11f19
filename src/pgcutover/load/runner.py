"""Run locust headless from pgcutover, in processes of its own.

Why a `locust` subprocess rather than locust's Environment API inside pytest: locust
monkey-patches the standard library with gevent when imported, and psycopg cooperates with
gevent only when it is imported after that patching. The pytest process has long imported
psycopg (and runs threads, the embedder, pg_dump pipes), so an in-process locust would
either block every simulated user on each query or patch the test runner underneath
everything else. A subprocess gets a clean interpreter, the same code path a person uses
from the README, and a master and workers for distributed runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pgcutover.config import FIXTURES_DIR
from pgcutover.db import Endpoint
from pgcutover.errors import ConfigError, PgcutoverError
from pgcutover.load.config import LoadConfig
from pgcutover.load.stats import SUMMARY_SUFFIX, LoadStats, read_stats
from pgcutover.providers.embedded import free_port

LOCUSTFILE = FIXTURES_DIR.parent / "loadtests" / "locustfile.py"
#: Seconds a run may take beyond its duration (start-up, workers joining, shutdown).
GRACE_SECONDS = 60.0
LOG_TAIL_LINES = 15
#: What locust logs once the ramp is over.
SPAWNED = "All users spawned"
POLL_SECONDS = 0.1


class LoadError(PgcutoverError):
    """A locust run did not produce statistics."""


@dataclass(frozen=True)
class LoadPlan:
    """One run: which database, with which configuration, how many worker processes.

    `source` marks a migration source: its sessions are read-only and write shapes never
    run there. `workers` = 0 runs one locust process; N runs a master and N workers.
    """

    endpoint: Endpoint
    config: LoadConfig
    source: bool
    writes: bool = False
    workers: int = 0

    def __post_init__(self) -> None:
        if self.source and self.writes:
            raise ConfigError(
                f"refusing write shapes against the source {self.endpoint.label}",
                "writes run against a target only; set [load] writes = false for sources",
            )


class LocustRun:
    """A headless locust run in the background: start, optionally interrupt, then wait."""

    def __init__(self, plan: LoadPlan, out_dir: Path, name: str, html: Path | None = None):
        self.plan = plan
        self.out_dir = out_dir
        self.prefix = out_dir / name
        self.html = html
        self.log_path = out_dir / f"{name}.log"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.duration = plan.config.duration
        self.started = 0.0

    def _base(self) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "INFO"]

    def _master(self, port: int) -> list[str]:
        plan, config = self.plan, self.plan.config
        command = [
            *self._base(),
            "--headless",
            "--users",
            str(config.users),
            "--spawn-rate",
            str(config.spawn_rate),
            "--run-time",
            f"{self.duration}s",
            "--csv",
            str(self.prefix),
            "--csv-full-history",
            "--only-summary",
            "--pg-dsn",
            plan.endpoint.safe_dsn(),
            "--pg-load-config",
            str(config.write(Path(f"{self.prefix}-config.json"))),
        ]
        if plan.source:
            command.append("--pg-source")
        if plan.writes:
            command.append("--pg-writes")
        if self.html is not None:
            command += ["--html", str(self.html)]
        if plan.workers:
            command += [
                "--master",
                "--master-bind-host=127.0.0.1",
                f"--master-bind-port={port}",
                f"--expect-workers={plan.workers}",
                "--expect-workers-max-wait=30",
            ]
        return command

    def start(self, duration: int | None = None) -> None:
        """Start the master (or the only process) and any workers; `duration` overrides
        the configured run time in seconds."""
        self.duration = duration or self.plan.config.duration
        self.out_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = self.plan.endpoint.libpq_env()
        worker = [*self._base(), "--worker", "--master-host=127.0.0.1", f"--master-port={port}"]
        commands = [self._master(port)] + [worker] * self.plan.workers
        log = self.log_path.open("wb")
        self.started = time.monotonic()
        for command in commands:
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=self.out_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        log.close()

    def wait_until_running(self, timeout: float = 60.0) -> float:
        """Block until every user is spawned (locust logs it); returns that moment as epoch
        seconds, comparable with the statistics history."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if SPAWNED in self.log_path.read_text(errors="replace"):
                return time.time()
            if self.processes[0].poll() is not None:
                break
            time.sleep(POLL_SECONDS)
        self.kill()
        raise LoadError(
            f"locust did not start its users within {timeout:.0f} s: {self._tail()}",
            f"run the same locust command by hand to see why (full log: {self.log_path})",
        )

    def interrupt(self) -> None:
        """End the run now, as Ctrl-C would: locust stops the users and writes its files."""
        self.processes[0].send_signal(signal.SIGINT)

    def wait(self) -> LoadStats:
        """Wait for every process; the statistics, or a LoadError with the log's tail."""
        deadline = self.started + self.duration + GRACE_SECONDS
        try:
            for process in self.processes:
                process.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            self.kill()
            raise LoadError(
                f"locust did not finish within {self.duration + GRACE_SECONDS:.0f} s "
                f"({self._tail()})",
                "see the log; a worker that never joined or a hung connection is the usual cause",
            ) from None
        if not Path(f"{self.prefix}{SUMMARY_SUFFIX}").exists():
            raise LoadError(
                f"locust exited {self.processes[0].returncode} without statistics: {self._tail()}",
                f"run the same locust command by hand to see why (full log: {self.log_path})",
            )
        return read_stats(self.prefix)

    def kill(self) -> None:
        """Stop every process of the run at once (no statistics)."""
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            process.wait()

    def _tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return self.plan.endpoint.redact("\n".join(lines)) or "no output"


def run_locust(plan: LoadPlan, out_dir: Path, name: str, html: Path | None = None) -> LoadStats:
    """Run locust headless for the configured duration and return its statistics."""
    run = LocustRun(plan, out_dir, name, html)
    run.start()
    return run.wait()
