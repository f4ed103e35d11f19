"""What `pytest suites/` prints: live progress of long work while it runs, and at the end the
verdict, the blockers and where to read the report."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from pgcutover.progress import duration
from pgcutover.report.html import incomplete_line
from pgcutover.report.model import RunReport
from pgcutover.report.writer import latest_verdict

SHOWN = 10
WIDTH = 150
#: A live progress line is redrawn at most this often.
REDRAW_SECONDS = 0.25


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def _where(path: Path) -> str:
    """A path relative to the working folder when it lies inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.fspath(path)


def verdict_line(report: RunReport) -> str:
    counts = report.counts()
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no checks"
    return f"verdict: {report.verdict}  ({summary})"


def summary_lines(report: RunReport, html: Path) -> list[str]:
    """Blocking checks, the trend against the last run, and the report's path."""
    blocking = [c for c in report.ordered_checks() if c.status in ("fail", "unknown")]
    lines = [] if report.complete else [_short(f"  {incomplete_line(report)}")]
    lines += [_short(f"  [{c.status}] {c.id}: {c.message}") for c in blocking[:SHOWN]]
    if len(blocking) > SHOWN:
        lines.append(f"  ... and {len(blocking) - SHOWN} more (all in the report)")
    trend = report.since_last_run
    if trend:
        lines.append(
            f"since last run ({trend['previous_verdict']}): {len(trend['new_failures'])} new "
            f"failures, {len(trend['fixed'])} fixed, {len(trend['changed'])} numbers moved"
        )
    window = report.migration.get("window")
    if window:
        lines.append(
            f"cutover window for {window['basis']}: about {duration(window['projected_seconds'])}"
            f" ({duration(window['low_seconds'])} to {duration(window['high_seconds'])})"
        )
    lines.append(report_line(report, html))
    return lines


def report_line(report: RunReport, html: Path) -> str:
    """Where the sign-off is, and whether reports/latest holds a copy of it."""
    copied = report.complete or latest_verdict(html.parent.parent) == report.verdict
    latest = f"copy in {_where(html.parent.parent / 'latest')}" if copied else "reports/latest kept"
    return f"report: {_where(html)}  ({latest})"


class TerminalProgress:
    """progress.Display through pytest's terminal reporter: on a terminal one live line,
    redrawn at most every REDRAW_SECONDS; elsewhere (CI logs) one line per finished task."""

    def __init__(self, reporter: Any, capture: Any, *, live: bool) -> None:
        self.reporter = reporter
        self.capture = capture
        self.live = live
        self._lock = threading.Lock()
        self._drawn = 0.0
        self._open = False

    def _paused_capture(self) -> contextlib.AbstractContextManager[None]:
        """Output capturing off while drawing, as pytest's own live logging does."""
        if self.capture is None:
            return contextlib.nullcontext()
        return self.capture.global_and_fixture_disabled()  # type: ignore[no-any-return]

    def update(self, line: str) -> None:
        if not self.live:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._drawn < REDRAW_SECONDS:
                return
            self._drawn = now
            with self._paused_capture():
                if not self._open:
                    self.reporter.ensure_newline()
                    self._open = True
                self.reporter.rewrite(_fit(line), erase=True)

    def finish(self, line: str) -> None:
        with self._lock, self._paused_capture():
            if self._open:
                self.reporter.rewrite(_fit(line), erase=True)
                self.reporter.line("")
                self._open = False
            else:
                self.reporter.ensure_newline()
                self.reporter.line(line)
            # the next test result starts a fresh line with its file name
            self.reporter.currentfspath = None
            self._drawn = 0.0


def _fit(line: str) -> str:
    """The line cut to the terminal's width, so a redraw never wraps."""
    width = max(shutil.get_terminal_size().columns - 1, 20)
    return line if len(line) <= width else line[: width - 1] + "…"
