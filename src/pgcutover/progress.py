"""Progress of long work: rows or bytes done, rate and time left.

Library code reports through `task` (it counts) or `polled` (a background thread reads a
server's progress view or a file's size). What is shown is up to the display the run
installed with `install`: the pytest plugin draws a live line through the terminal reporter
(report/terminal.py). Without a display nothing is shown and nothing is polled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

#: What a poll returns: (done, total or None, a note such as the current phase) or None when
#: there is nothing to say yet.
Reading = tuple[float, float | None, str] | None
POLL_SECONDS = 1.0
#: How long the end of a task waits for its polling thread.
JOIN_SECONDS = 5.0


class Display(Protocol):
    """Where progress goes: `update` while a task runs (often), `finish` once at its end."""

    def update(self, line: str) -> None: ...

    def finish(self, line: str) -> None: ...


_display: Display | None = None


def install(display: Display | None) -> Display | None:
    """Show progress on `display` from now on (None: show nothing); returns the one before."""
    global _display
    previous, _display = _display, display
    return previous


def shown() -> bool:
    """True when a display is installed (callers may skip work only a display needs)."""
    return _display is not None


def amount(value: float, unit: str) -> str:
    """'1,000,000 rows' or '1.2 GB'."""
    if unit != "bytes":
        return f"{value:,.0f} {unit}"
    for name in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or name == "TB":
            break
        value /= 1024
    return f"{value:.0f} {name}" if name == "B" else f"{value:.1f} {name}"


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s' or '1 h 02 min'."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


@dataclass
class Task:
    """One piece of long work; `done` and `total` count `unit` (rows, bytes, texts, ...)."""

    label: str
    unit: str
    total: float | None = None
    done: float = 0.0
    note: str = ""
    started: float = field(default_factory=time.monotonic)

    def advance(self, amount_done: float) -> None:
        """Count more work done and show it."""
        self.update(self.done + amount_done)

    def update(self, done: float, total: float | None = None, note: str | None = None) -> None:
        """Set the work done so far (and the total or the note when they are known now)."""
        self.done = done
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        if _display is not None:
            _display.update(self.line())

    def line(self) -> str:
        """'seeding: 420,000 of 1,000,000 rows (42%), 35,100 rows/s, 16 s left'."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        head = f"{self.label}{f' ({self.note})' if self.note else ''}: "
        if self.total:
            share = min(self.done / self.total, 1.0)
            done = amount(self.done, self.unit).removesuffix(f" {self.unit}")
            head += f"{done} of {amount(self.total, self.unit)} ({share:.0%})"
        else:
            head += amount(self.done, self.unit)
        if self.done <= 0:
            return f"{head}, {duration(elapsed)} so far"
        head += f", {amount(rate, self.unit)}/s"
        if self.total and self.total > self.done:
            head += f", {duration((self.total - self.done) / rate)} left"
        return head

    def summary(self) -> str:
        """The line shown once the task ended: what was done, in how long, how fast."""
        elapsed = time.monotonic() - self.started
        if self.done <= 0:
            return f"{self.label}: done in {duration(elapsed)}"
        rate = self.done / max(elapsed, 1e-6)
        return (
            f"{self.label}: {amount(self.done, self.unit)} in {duration(elapsed)} "
            f"({amount(rate, self.unit)}/s)"
        )


@contextmanager
def task(label: str, total: float | None = None, unit: str = "rows") -> Iterator[Task]:
    """A counted task: the block calls `advance`; its summary is shown when it ends."""
    current = Task(label, unit, total)
    try:
        yield current
    finally:
        if _display is not None:
            _display.finish(current.summary())


@contextmanager
def polled(
    label: str, readings: Callable[[], Generator[Reading]], unit: str = "rows"
) -> Iterator[Task]:
    """A task whose progress a background thread takes from `readings()`, a generator that
    yields one reading each time it is asked (every POLL_SECONDS while the block runs) and
    holds what it needs (a connection) until it is closed. Only polled when a display is
    installed; a failing poll ends the polling, never the work. When the block ends without
    an error, the whole total counts as done."""
    with task(label, unit=unit) as current:
        if _display is None:
            yield current
            return
        stop = threading.Event()

        def watch() -> None:
            try:
                source = readings()
                with closing(source):
                    while not stop.wait(POLL_SECONDS):
                        reading = next(source)
                        if reading is not None:
                            current.update(*reading)
            except Exception:  # progress is a courtesy: the work goes on without it
                return

        watcher = threading.Thread(target=watch, name=f"progress: {label}", daemon=True)
        watcher.start()
        try:
            yield current
        finally:
            stop.set()
            watcher.join(timeout=JOIN_SECONDS)  # a poll stuck on a paused server is left behind
        if current.total:  # the work ended well: all of it is done, whatever the last poll saw
            current.done = current.total
