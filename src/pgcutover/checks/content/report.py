"""Turn one table's comparison into a check result that names what differs."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from pgcutover.checks.base import UNKNOWN, CheckResult, outcome
from pgcutover.checks.content.diff import TableDiff
from pgcutover.checks.content.hashing import Summary
from pgcutover.checks.content.tables import TablePlan

AREA = "parity"
REMEDY = (
    "the target does not hold the source's rows: find why for the keys named (a write after "
    "the dump's snapshot, a failed COPY, a trigger or default that rewrote values on restore), "
    "then migrate again into an empty database"
)
COLUMNS_REMEDY = (
    "a column exists on one side only, so its values were not carried: fix the target's "
    "table definition and migrate again"
)
KEYLESS_NOTE = (
    "no primary key or unique NOT NULL key: the table is compared as a multiset (row count "
    "and order-independent 128-bit hash sums), so a difference is detected and counted but "
    "the rows cannot be located; add a primary key to locate differences"
)

#: What a mode compares whole before reading rows again: key-hashed buckets or key ranges.
UNITS = {"stream": "buckets", "bisect": "ranges"}


def check_id(qualified: str) -> str:
    return f"content.{qualified}"


def _named(keys: list[dict[str, str]]) -> str:
    return ", ".join(" ".join(f"{k}={v}" for k, v in key.items()) for key in keys)


def _columns(plan: TablePlan) -> dict[str, Any]:
    return {
        "compared": [c.name for c in plan.columns],
        "compared_as_text": [c.name for c in plan.columns if c.as_text],
        "only_on_source": list(plan.only_on_source),
        "only_on_target": list(plan.only_on_target),
    }


def keyed(
    plan: TablePlan,
    diff: TableDiff,
    mode: str,
    limit: int,
    decode: Callable[[Hashable], tuple[str, ...]],
) -> CheckResult:
    """A table compared by key: pass only when every row and every column matches."""

    def listed(keys: list[Hashable]) -> list[dict[str, str]]:
        shown = sorted(decode(key) for key in keys[:limit])
        return [dict(zip(plan.key, values, strict=True)) for values in shown]

    kinds = {
        "only_on_source": listed(list(diff.only_source)),
        "only_on_target": listed(list(diff.only_target)),
        "changed": listed(diff.changed),
    }
    counts = {
        "only_on_source": len(diff.only_source),
        "only_on_target": len(diff.only_target),
        "changed": len(diff.changed),
    }
    name = plan.qualified
    parts = [
        f"{counts[kind]} {kind.replace('_', ' ')} ({_named(kinds[kind])}"
        f"{', ...' if counts[kind] > len(kinds[kind]) else ''})"
        for kind in kinds
        if counts[kind]
    ]
    if plan.only_on_source or plan.only_on_target:
        parts.append(
            f"columns on one side only: source {list(plan.only_on_source)}, "
            f"target {list(plan.only_on_target)}"
        )
    unit = UNITS[mode]
    ok = not parts
    if ok:
        message = f"{name}: all {diff.rows_source} rows identical (key {', '.join(plan.key)})"
    else:
        message = f"{name}: {'; '.join(parts)}"
    return outcome(
        check_id(name),
        AREA,
        ok,
        message,
        remedy=REMEDY if diff.differences else COLUMNS_REMEDY,
        expected={"rows": diff.rows_source},
        actual={"rows": diff.rows_target, "differing_rows": diff.differences},
        details={
            "mode": mode,
            "key": list(plan.key),
            "rows": {"source": diff.rows_source, "target": diff.rows_target},
            "counts": counts,
            "keys": kinds,
            "keys_listed_per_kind": limit,
            unit: diff.segments,
            f"differing_{unit}": diff.differing_segments,
            "columns": _columns(plan),
        },
    )


def keyless(plan: TablePlan, source: Summary, target: Summary) -> CheckResult:
    """A table without a key: counts and multiset hashes must agree."""
    name = plan.qualified
    rows_source, rows_target = source[0], target[0]
    if rows_source != rows_target:
        problem = f"{rows_source} rows on the source, {rows_target} on the target"
    elif source != target:
        problem = f"{rows_source} rows on both sides, but at least one row differs"
    elif plan.only_on_source or plan.only_on_target:
        problem = (
            f"columns on one side only: source {list(plan.only_on_source)}, "
            f"target {list(plan.only_on_target)}"
        )
    else:
        problem = ""
    return outcome(
        check_id(name),
        AREA,
        not problem,
        f"{name}: {problem or f'all {rows_source} rows identical as a multiset'} "
        "(no key: differences are counted, not located)",
        remedy=REMEDY if source != target else COLUMNS_REMEDY,
        expected={"rows": rows_source},
        actual={"rows": rows_target},
        details={
            "mode": "multiset",
            "note": KEYLESS_NOTE,
            "rows": {"source": rows_source, "target": rows_target},
            "at_least_differing_rows": abs(rows_source - rows_target)
            or (1 if source != target else 0),
            "columns": _columns(plan),
        },
    )


def missing(qualified: str, on: str, rows: float) -> CheckResult:
    """A table on one side only."""
    other = "target" if on == "source" else "source"
    return outcome(
        check_id(qualified),
        AREA,
        False,
        f"{qualified} exists on the {on} only (about {max(int(rows), 0)} rows there)",
        remedy=f"the {other} lacks the table: migrate again into an empty database"
        if on == "source"
        else "the target holds a table the source lacks: migrate into an empty database",
        expected=qualified if on == "source" else None,
        actual=None if on == "source" else qualified,
    )


def failed(qualified: str, error: BaseException, redact: Callable[[str], str]) -> CheckResult:
    """A table that could not be compared: unknown, never a pass."""
    return CheckResult(
        id=check_id(qualified),
        area=AREA,
        status=UNKNOWN,
        message=f"{qualified} could not be compared: "
        f"{redact(f'{type(error).__name__}: {error}'.strip())}",
        remedy=getattr(error, "remedy", "")
        or "fix the cause above and run again (tables with row-level security need a role that "
        "owns them or has BYPASSRLS); until then the content of this table is unverified",
    )
