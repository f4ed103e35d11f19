"""Progress of long work, the pytest way: a line per finished task in a log, a live line on
a terminal, nothing under -q; polled progress from a background reader that can fail without
harming the work."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator

import pytest

from pgcutover import progress
from pgcutover.report.terminal import TerminalProgress

WORK = """
from pgcutover import progress

def test_long_work():
    with progress.task("seeding public.chunks", total=3_000) as task:
        task.advance(1_000)
        task.advance(2_000)
"""


class Collected:
    """A display that keeps what it was given."""

    def __init__(self) -> None:
        self.updates: list[str] = []
        self.finished: list[str] = []

    def update(self, line: str) -> None:
        self.updates.append(line)

    def finish(self, line: str) -> None:
        self.finished.append(line)


@pytest.fixture
def shown() -> Iterator[Collected]:
    display = Collected()
    previous = progress.install(display)
    yield display
    progress.install(previous)


def test_a_log_gets_one_line_per_task_and_quiet_gets_none(pytester):
    pytester.makepyfile(test_work=WORK)
    logged = pytester.runpytest("-p", "no:cacheprovider")
    lines = [line for line in logged.outlines if line.startswith("seeding public.chunks")]
    assert len(lines) == 1 and "3,000 rows in" in lines[0], logged.outlines
    quiet = pytester.runpytest("-p", "no:cacheprovider", "-q")
    assert not [line for line in quiet.outlines if "seeding" in line]


def test_counted_work_shows_its_share_rate_and_time_left(shown):
    with progress.task("dump", total=4 * 2**30, unit="bytes") as task:
        task.started -= 10
        task.advance(2**30)
    assert shown.updates[-1].startswith("dump: 1.0 GB of 4.0 GB (25%), 102.4 MB/s, 30 s left")
    assert shown.finished[0].startswith("dump: 1.0 GB in 10 s")


def test_polled_work_reads_in_the_background_and_counts_whole_when_it_ends(shown, monkeypatch):
    monkeypatch.setattr(progress, "POLL_SECONDS", 0.01)
    closed = []

    def readings() -> Generator[progress.Reading, None, None]:
        try:
            done = 0.0
            while True:
                done += 1
                yield done, 100.0, "public.chunks"
        finally:
            closed.append(True)

    with progress.polled("restore data", readings):
        time.sleep(0.2)
    assert shown.updates and "(public.chunks)" in shown.updates[0]
    assert shown.finished == [shown.finished[0]] and "100 rows in" in shown.finished[0]
    assert closed, "the reader's connection would stay open"


def test_a_failing_reader_never_harms_the_work(shown, monkeypatch):
    monkeypatch.setattr(progress, "POLL_SECONDS", 0.01)

    def broken() -> Generator[progress.Reading, None, None]:
        raise ConnectionError("the progress view went away")
        yield None

    with progress.polled("index build", broken, unit="blocks"):
        time.sleep(0.05)
    assert shown.finished == ["index build: done in 0 s"]


class Reporter:
    """What TerminalProgress uses of pytest's TerminalReporter, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.currentfspath: object = "suites/test_x.py"

    def ensure_newline(self) -> None:
        self.calls.append(("newline", ""))

    def rewrite(self, line: str, **markup: bool) -> None:
        self.calls.append(("rewrite", line))

    def line(self, line: str) -> None:
        self.calls.append(("line", line))


def test_a_terminal_gets_one_live_line_redrawn_at_a_bounded_rate():
    reporter = Reporter()
    live = TerminalProgress(reporter, None, live=True)
    for n in range(50):
        live.update(f"seeding: {n}")
    live.finish("seeding: 50 rows in 1 s")
    kinds = [kind for kind, _ in reporter.calls]
    assert kinds[0] == "newline" and kinds.count("rewrite") == 2, "redrawn at most every 0.25 s"
    assert reporter.calls[-2:] == [("rewrite", "seeding: 50 rows in 1 s"), ("line", "")]
    assert reporter.currentfspath is None, "the next result must start a fresh line"
    log = Reporter()
    logged = TerminalProgress(log, None, live=False)
    logged.update("seeding: 1")
    logged.finish("seeding: 1 rows in 0 s")
    assert log.calls == [("newline", ""), ("line", "seeding: 1 rows in 0 s")]
