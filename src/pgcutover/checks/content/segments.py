"""Key ranges: the unit of parallel reading and of locating a difference.

Bounds are key values taken from the source (as text, or decoded from a binary row) and cast
on each side to that side's column type, so one range selects the same keys on both servers.
Every row falls in exactly one range of a table: [lo, hi), the first open below, the last open
above.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgcutover.checks.content.tables import TablePlan

#: Table pages sampled per range to place the range bounds: rows on one page are neighbours,
#: so evenly sized ranges need keys from many pages.
SAMPLE_PAGES_PER_SEGMENT = 16
#: Up to this many rows, bounds come from every key rather than from a page sample.
EXACT_SPLIT_ROWS = 50_000

#: A key's values: text from the server (bounds it sampled), or values psycopg decoded from
#: a binary row; either becomes a literal cast to the column's type.
Key = tuple[object, ...]


@dataclass(frozen=True)
class Segment:
    """Keys from `lo` (included) to `hi` (excluded); None is unbounded."""

    lo: Key | None = None
    hi: Key | None = None


def key_list(plan: TablePlan, table: str | None = None) -> sql.Composable:
    """`k1, k2` for ORDER BY and SELECT, qualified by `table` where an output column of
    the same name (a key cast to text) would otherwise be sorted instead."""
    return sql.SQL(", ").join(
        sql.Identifier(*([table] if table else []), name) for name in plan.key
    )


def key_text(plan: TablePlan) -> sql.Composable:
    """`k1::text, k2::text`: keys as they travel to this machine for bounds and reports."""
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(n)) for n in plan.key)


def _bound(plan: TablePlan, side: str, values: Key) -> sql.Composable:
    """A key value as a literal of the side's own column types."""
    columns = plan.key_columns()
    return sql.SQL(", ").join(
        sql.SQL("{}::{}").format(
            sql.Literal(value),
            sql.SQL(getattr(column, side).type_name),
        )
        for value, column in zip(values, columns, strict=True)
    )


def predicate(plan: TablePlan, side: str, segment: Segment) -> sql.Composable:
    """The WHERE condition selecting one range on one side (a btree range scan)."""
    keys = sql.SQL("({})").format(key_list(plan))
    parts = []
    if segment.lo is not None:
        parts.append(sql.SQL("{} >= ({})").format(keys, _bound(plan, side, segment.lo)))
    if segment.hi is not None:
        parts.append(sql.SQL("{} < ({})").format(keys, _bound(plan, side, segment.hi)))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def between(bounds: list[Key], lo: Key | None = None, hi: Key | None = None) -> list[Segment]:
    """Ranges cut at `bounds` (ascending, as the server ordered them) inside [lo, hi)."""
    edges: list[Key | None] = [lo, *bounds, hi]
    return [Segment(a, b) for a, b in itertools.pairwise(edges)]


def estimated_rows(conn: psycopg.Connection, plan: TablePlan) -> int:
    """pg_class's estimate, or an exact count for a table never analysed."""
    if plan.estimated_rows >= 0:
        return int(plan.estimated_rows)
    query = sql.SQL("SELECT count(*) FROM ONLY {}").format(plan.identifier)
    return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def initial_segments(
    conn: psycopg.Connection, plan: TablePlan, segments: int, min_rows: int
) -> list[Segment]:
    """Up to `segments` ranges of about equal size and at least `min_rows` rows, bounds
    sampled from the source.

    Large tables are sampled by page (TABLESAMPLE SYSTEM): cheap, and bounds need only be
    roughly even; any bounds give a correct comparison.
    """
    rows = estimated_rows(conn, plan)
    count = max(1, min(segments, rows // min_rows))
    if count == 1:
        return [Segment()]
    if rows <= EXACT_SPLIT_ROWS:
        sample = sql.SQL("")
    else:
        percent = min(100.0, 100.0 * count * SAMPLE_PAGES_PER_SEGMENT / max(plan.pages, 1))
        sample = sql.SQL("TABLESAMPLE SYSTEM ({})").format(sql.Literal(percent))
    query = sql.SQL("SELECT {} FROM ONLY {} AS t {} ORDER BY {}").format(
        key_text(plan), plan.identifier, sample, key_list(plan, "t")
    )
    keys = [tuple(row) for row in conn.execute(query).fetchall()]
    step = len(keys) / count
    bounds: list[Key] = []
    for index in range(1, count):
        bound = keys[math.floor(index * step)] if keys else None
        if bound is not None and (not bounds or bounds[-1] != bound):
            bounds.append(bound)
    return between(bounds)
