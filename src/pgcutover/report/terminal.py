"""The few lines printed at the end of `pytest suites/`: verdict, blockers, where to read."""

from __future__ import annotations

import os
from pathlib import Path

from pgcutover.report.html import incomplete_line
from pgcutover.report.model import RunReport
from pgcutover.report.writer import latest_verdict

SHOWN = 10
WIDTH = 150


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
    lines.append(report_line(report, html))
    return lines


def report_line(report: RunReport, html: Path) -> str:
    """Where the sign-off is, and whether reports/latest holds a copy of it."""
    copied = report.complete or latest_verdict(html.parent.parent) == report.verdict
    latest = f"copy in {_where(html.parent.parent / 'latest')}" if copied else "reports/latest kept"
    return f"report: {_where(html)}  ({latest})"
