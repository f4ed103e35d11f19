"""Bisect mode: each server summarises key ranges itself and only summaries travel; a range
whose summaries differ is split again until it is small enough to compare row hashes by key
(the bisection data-diff and reladiff use). For a target reached over a slow link.

Tables without a usable key get one whole-table summary per side in both modes (see
hashing.py): a difference is detected and counted, never located.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from pgcutover.checks.content import hashing
from pgcutover.checks.content.diff import TableDiff
from pgcutover.checks.content.options import ContentOptions
from pgcutover.checks.content.segments import Segment, between
from pgcutover.checks.content.tables import TablePlan

SUMMARY, ROWS, SPLIT, MULTISET = "summary", "rows", "split", "multiset"
WHOLE = Segment()
#: A range split this many times is compared row by row whatever its size.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Probe:
    """One question asked of both sides about a range of a table."""

    plan: TablePlan
    kind: str
    segment: Segment = WHOLE
    depth: int = 0
    step: int = 0
    lead: str = "source"


def ask(conn: psycopg.Connection, side: str, probe: Probe) -> object:
    """Answer a probe on one side (a split is asked of the side with more rows only)."""
    if probe.kind == SUMMARY:
        return hashing.summary(conn, probe.plan, side, probe.segment)
    if probe.kind == MULTISET:
        return hashing.summary(conn, probe.plan, side, None)
    if probe.kind == ROWS:
        return hashing.hashes(conn, probe.plan, side, probe.segment)
    if side != probe.lead:
        return []
    return hashing.split_points(conn, probe.plan, side, probe.segment, probe.step)


@dataclass
class Bisection:
    """Settles probes into per-table differences, asking follow-up probes where they differ."""

    options: ContentOptions
    diffs: dict[str, TableDiff]
    multisets: dict[str, tuple[hashing.Summary, hashing.Summary]]

    def settle(self, probe: Probe, source: object, target: object) -> Iterable[Probe]:
        name = probe.plan.qualified
        if probe.kind == MULTISET:
            self.multisets[name] = (source, target)  # type: ignore[assignment]
            return ()
        diff = self.diffs.get(name)
        if diff is None:  # the table failed; its remaining probes are skipped
            return ()
        if probe.kind == ROWS:
            diff.rows(source, target)  # type: ignore[arg-type]
            return ()
        if probe.kind == SPLIT:
            bounds = source if probe.lead == "source" else target
            bounds = [b for b in bounds if b != probe.segment.lo]  # type: ignore[union-attr]
            if not bounds:
                return [Probe(probe.plan, ROWS, probe.segment, probe.depth)]
            return [
                Probe(probe.plan, SUMMARY, part, probe.depth + 1)
                for part in between(bounds, probe.segment.lo, probe.segment.hi)
            ]
        return self._summaries(diff, probe, source, target)  # type: ignore[arg-type]

    def _summaries(
        self, diff: TableDiff, probe: Probe, source: hashing.Summary, target: hashing.Summary
    ) -> Iterable[Probe]:
        if source == target:
            diff.equal(source[0], target[0])
            return ()
        largest = max(source[0], target[0])
        if largest <= self.options.bisect_rows or probe.depth >= MAX_DEPTH:
            return [Probe(probe.plan, ROWS, probe.segment, probe.depth)]
        return [
            Probe(
                probe.plan,
                SPLIT,
                probe.segment,
                probe.depth,
                step=math.ceil(largest / self.options.bisect_factor),
                lead="source" if source[0] >= target[0] else "target",
            )
        ]
