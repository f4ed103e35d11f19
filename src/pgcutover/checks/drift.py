"""Drift: the rows the source gained, changed or lost after the migration's snapshot.

The target is a copy of the source as of one exported snapshot; whatever the application
wrote after it is the cutover gap the owner must freeze or sync. While the snapshot is held
(the exporting transaction is open), a second transaction imports it and is compared with
the source as it is now, table by table: per-bucket hashes first (cheap, in SQL), then row
keys and row hashes only for the buckets that differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgcutover.catalog import user_tables
from pgcutover.checks.base import UNKNOWN, CheckResult, outcome
from pgcutover.db import Endpoint
from pgcutover.migrate.tools import bounded

AREA = "parity"
BUCKETS = 256
PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY array_position(i.indkey, a.attnum)
"""


@dataclass(frozen=True)
class TableDrift:
    """One table's change since the snapshot; without a primary key only the count is known."""

    added: int
    changed: int
    deleted: int
    keyed: bool
    rows_at_snapshot: int
    rows_now: int

    @property
    def total(self) -> int:
        return self.added + self.changed + self.deleted


@contextmanager
def _view(source: Endpoint, snapshot: str | None, timeout: float) -> Iterator[psycopg.Connection]:
    """A read-only repeatable-read transaction on the source, at `snapshot` or at now."""
    with bounded(source, "source", "drift", timeout) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if snapshot is not None:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        yield conn
        conn.execute("ROLLBACK")


def _key(conn: psycopg.Connection, qualified: sql.Composable) -> sql.Composable | None:
    """ROW(primary key columns)::text as an SQL expression on alias t, or None."""
    name = qualified.as_string(conn)
    columns = [row[0] for row in conn.execute(PRIMARY_KEY, (name,)).fetchall()]
    if not columns:
        return None
    parts = sql.SQL(", ").join(sql.Identifier("t", column) for column in columns)
    return sql.SQL("ROW({})::text").format(parts)


def _buckets(
    conn: psycopg.Connection, table: sql.Composable, key: sql.Composable
) -> dict[int, tuple[int, int]]:
    """bucket -> (rows, sum of row hashes): equal buckets hold equal rows."""
    query = sql.SQL(
        "SELECT hashtext({key}) & {mask}, count(*),"
        " sum(('x' || left(md5(t::text), 15))::bit(60)::bigint)"
        " FROM {table} AS t GROUP BY 1"
    ).format(key=key, mask=sql.Literal(BUCKETS - 1), table=table)
    return {int(b): (int(n), int(h)) for b, n, h in conn.execute(query).fetchall()}


def _rows(
    conn: psycopg.Connection, table: sql.Composable, key: sql.Composable, buckets: list[int]
) -> dict[str, str]:
    """key text -> row hash, for the rows in `buckets`."""
    query = sql.SQL(
        "SELECT {key}, md5(t::text) FROM {table} AS t WHERE hashtext({key}) & {mask} = ANY(%s)"
    ).format(key=key, mask=sql.Literal(BUCKETS - 1), table=table)
    return dict(conn.execute(query, (buckets,)).fetchall())


def _count(conn: psycopg.Connection, table: sql.Composable) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(table)
    return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def _table_drift(
    then: psycopg.Connection, now: psycopg.Connection, table: sql.Composable
) -> TableDrift:
    before, after = _count(then, table), _count(now, table)
    key = _key(then, table)
    if key is None:
        return TableDrift(
            added=max(after - before, 0),
            changed=0,
            deleted=max(before - after, 0),
            keyed=False,
            rows_at_snapshot=before,
            rows_now=after,
        )
    old, new = _buckets(then, table, key), _buckets(now, table, key)
    differing = sorted(b for b in old.keys() | new.keys() if old.get(b) != new.get(b))
    old_rows = _rows(then, table, key, differing) if differing else {}
    new_rows = _rows(now, table, key, differing) if differing else {}
    return TableDrift(
        added=len(new_rows.keys() - old_rows.keys()),
        changed=sum(1 for k in old_rows.keys() & new_rows.keys() if old_rows[k] != new_rows[k]),
        deleted=len(old_rows.keys() - new_rows.keys()),
        keyed=True,
        rows_at_snapshot=before,
        rows_now=after,
    )


def measure(
    source: Endpoint, snapshot: str, ignored: tuple[str, ...], *, timeout: float = 600.0
) -> dict[str, TableDrift]:
    """Per table (`schema.table`), what changed on the source after `snapshot`.

    The snapshot must still be held by its exporting transaction. A table created after the
    snapshot counts all its rows as added; one dropped since, all as deleted.
    """
    with _view(source, snapshot, timeout) as then, _view(source, None, timeout) as now:
        old_tables = set(user_tables(then, ignored))
        new_tables = set(user_tables(now, ignored))
        drift = {}
        for schema, table in sorted(old_tables | new_tables):
            name = f"{schema}.{table}"
            qualified = sql.Identifier(schema, table)
            if (schema, table) not in new_tables:
                rows = _count(then, qualified)
                drift[name] = TableDrift(0, 0, rows, True, rows, 0)
            elif (schema, table) not in old_tables:
                rows = _count(now, qualified)
                drift[name] = TableDrift(rows, 0, 0, True, 0, rows)
            else:
                drift[name] = _table_drift(then, now, qualified)
    return drift


def summary(drift: dict[str, dict[str, Any]]) -> str:
    """'+3 ~2 -1 in public.documents; ...' for the tables that drifted."""
    parts = [
        f"+{d['added']} ~{d['changed']} -{d['deleted']} in {name}"
        + ("" if d["keyed"] else " (no primary key: counts only)")
        for name, d in sorted(drift.items())
        if d["added"] or d["changed"] or d["deleted"]
    ]
    return "; ".join(parts)


def report(drift: dict[str, dict[str, Any]] | None, snapshot: str | None) -> list[CheckResult]:
    """One result: the cutover gap since the snapshot. Drift does not block a GO (the
    target is checked against the snapshot); not knowing it does."""
    if drift is None:
        return [
            CheckResult(
                id="drift.source",
                area=AREA,
                status=UNKNOWN,
                message="the rows written on the source after the snapshot were not measured",
                remedy="see the migration notes; rerun once the source is reachable",
            )
        ]
    changed = summary(drift)
    tables = sorted(drift)
    bars = {
        "title": "Source rows changed after the snapshot",
        "y_label": "rows",
        "labels": tables,
        "groups": {
            kind: [drift[t][kind] for t in tables] for kind in ("added", "changed", "deleted")
        },
    }
    # A logical migration holds no snapshot: its target matches the source at the switchover.
    since = f"snapshot {snapshot}" if snapshot else "the switchover"
    if changed:
        message = (
            f"since {since} the source changed: {changed}. The target matches the source as "
            f"of {since}; these rows are the cutover gap: stop writes, or sync them before "
            "switching over"
        )
    else:
        message = (
            f"no rows changed on the source since {since}: the target is current (note: zero drift)"
        )
    return [
        outcome(
            "drift.source",
            AREA,
            True,
            message,
            actual=drift,
            details={"snapshot": snapshot, "bars": bars},
        )
    ]
