"""A finished locust run's statistics, read from the files it leaves: the final summary the
locustfile writes (`<prefix>_pgcutover.json`) and locust's own `<prefix>_stats_history.csv`
(one row a second) for throughput and latency over time."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUMMARY_SUFFIX = "_pgcutover.json"
HISTORY_SUFFIX = "_stats_history.csv"
AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class EntryStats:
    """One request name (a query shape, or connect): counts and latency in milliseconds."""

    name: str
    requests: int
    failures: int
    average_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests_per_second: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Window:
    """Requests inside a time window, from the cumulative history rows at its edges."""

    seconds: float
    requests: int
    failures: int
    mean_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class History:
    """All requests together, sampled about once a second: cumulative counts and the
    cumulative average latency at each wall-clock second."""

    timestamps: list[float]
    requests: list[int]
    failures: list[int]
    average_ms: list[float]

    def throughput(self) -> tuple[list[float], list[float]]:
        """Seconds since the first sample, and requests per second in the interval before."""
        seconds, rates = [], []
        for i in range(1, len(self.timestamps)):
            elapsed = self.timestamps[i] - self.timestamps[i - 1]
            seconds.append(self.timestamps[i] - self.timestamps[0])
            rates.append(round((self.requests[i] - self.requests[i - 1]) / elapsed, 1))
        return seconds, rates

    def latency(self) -> tuple[list[float], list[float]]:
        """Seconds since the first sample, and the mean latency (ms) in the interval before."""
        seconds, means = [], []
        for i in range(1, len(self.timestamps)):
            window = self._between(i - 1, i)
            seconds.append(self.timestamps[i] - self.timestamps[0])
            means.append(round(window.mean_ms, 2))
        return seconds, means

    def window(self, start: float, end: float) -> Window | None:
        """Requests between two wall-clock times (epoch seconds); None with fewer than two
        samples inside."""
        inside = [i for i, t in enumerate(self.timestamps) if start <= t <= end]
        if len(inside) < 2:
            return None
        return self._between(inside[0], inside[-1])

    def _between(self, first: int, last: int) -> Window:
        count = self.requests[last] - self.requests[first]
        total_ms = (
            self.requests[last] * self.average_ms[last]
            - self.requests[first] * self.average_ms[first]
        )
        return Window(
            seconds=self.timestamps[last] - self.timestamps[first],
            requests=count,
            failures=self.failures[last] - self.failures[first],
            mean_ms=total_ms / count if count else 0.0,
        )


@dataclass(frozen=True)
class LoadStats:
    """What a load run measured, per request name and in total."""

    entries: dict[str, EntryStats]
    total: EntryStats
    errors: list[dict[str, Any]]
    history: History
    workers: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.total.error_rate

    def top_errors(self, limit: int = 5) -> list[dict[str, Any]]:
        """The most frequent errors, for a reader of the report."""
        return sorted(self.errors, key=lambda e: -int(e["occurrences"]))[:limit]


def _history(path: Path) -> History:
    by_second: dict[float, dict[str, str]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == AGGREGATED:
                by_second[float(row["Timestamp"])] = row
    seconds = sorted(by_second)
    rows = [by_second[t] for t in seconds]
    return History(
        timestamps=seconds,
        requests=[int(row["Total Request Count"]) for row in rows],
        failures=[int(row["Total Failure Count"]) for row in rows],
        average_ms=[float(row["Total Average Response Time"]) for row in rows],
    )


def read_stats(prefix: Path) -> LoadStats:
    """Statistics of the run whose `--csv` prefix was `prefix`."""
    summary = json.loads(Path(f"{prefix}{SUMMARY_SUFFIX}").read_text())
    entries = {entry["name"]: EntryStats(**entry) for entry in summary["entries"]}
    return LoadStats(
        entries=entries,
        total=EntryStats(**summary["total"]),
        errors=summary["errors"],
        history=_history(Path(f"{prefix}{HISTORY_SUFFIX}")),
        workers=summary["workers"],
    )
