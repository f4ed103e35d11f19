"""Drift: the rows the source gained, changed or lost after the migration's snapshot.

The target is a copy of the source as of one exported snapshot; whatever the application
wrote after it is the cutover gap the owner must freeze or sync. While the snapshot is held
(the exporting transaction is open), a second transaction imports it ("then") and a third
reads the source as it is now, table by table.

Every row version PostgreSQL stores carries the transaction that wrote it (xmin). A row the
snapshot could see unchanged was written before the snapshot's xmin, so only rows whose
xmin is at or after it can be new or changed: "now" returns just those (their key and a
row hash), in batches, and each batch is looked up by key in "then". Found with the same
hash: untouched; with another: changed; not found: added. Deleted rows follow from the two
counts. Untouched rows are never hashed nor rendered, and memory is bounded by the batch
however much the source changed. xmin is compared modulo 2**32; a row so old that its xmin
wrapped around is looked up like a candidate and found untouched, so the counts stay exact.
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
#: Candidate rows read and looked up at a time: bounds memory whatever the source wrote.
BATCH = 5000
PRIMARY_KEY = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY array_position(i.indkey, a.attnum)
"""
#: The snapshot's xmin as a 32-bit transaction id, comparable with a row's xmin.
SNAPSHOT_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296"
#: True for a row written at or after transaction %(xmin)s (modulo 2**32).
WRITTEN_SINCE = sql.SQL("(t.xmin::text::bigint - %(xmin)s + 4294967296) %% 4294967296 < 2147483648")


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


@dataclass(frozen=True)
class _Key:
    """A table's primary key: its columns and their types."""

    columns: list[str]
    types: list[str]

    def select(self) -> sql.Composable:
        """The key columns as text, on alias t."""
        return sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier("t", column)) for column in self.columns
        )

    def among(self) -> sql.Composable:
        """`(key) IN (the text arrays %s, ... cast to the key's types)`, on alias t."""
        arrays = sql.SQL(", ").join(
            sql.SQL("%s::text[]::{}[]").format(sql.SQL(kind)) for kind in self.types
        )
        columns = sql.SQL(", ").join(sql.Identifier("t", column) for column in self.columns)
        return sql.SQL("({}) IN (SELECT * FROM unnest({}))").format(columns, arrays)


def _key(conn: psycopg.Connection, qualified: sql.Composable) -> _Key | None:
    """The table's primary key, or None."""
    rows = conn.execute(PRIMARY_KEY, (qualified.as_string(conn),)).fetchall()
    if not rows:
        return None
    return _Key([row[0] for row in rows], [row[1] for row in rows])


def _count(conn: psycopg.Connection, table: sql.Composable) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(table)
    return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def _candidates(
    now: psycopg.Connection, table: sql.Composable, key: _Key, xmin: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of (key texts..., row hash) for rows written at or after `xmin`."""
    query = sql.SQL("SELECT {key}, md5(t::text) FROM {table} AS t WHERE {since}").format(
        key=key.select(), table=table, since=WRITTEN_SINCE
    )
    with now.cursor(name="pgcutover_drift") as cursor:
        cursor.execute(query, {"xmin": xmin})
        while batch := cursor.fetchmany(BATCH):
            yield batch


def _hashes_then(
    then: psycopg.Connection, table: sql.Composable, key: _Key, batch: list[tuple[Any, ...]]
) -> dict[tuple[str, ...], str]:
    """key texts -> row hash in the snapshot, for the keys of `batch` that existed then."""
    width = len(key.columns)
    query = sql.SQL("SELECT {key}, md5(t::text) FROM {table} AS t WHERE {among}").format(
        key=key.select(), table=table, among=key.among()
    )
    arrays = [[row[i] for row in batch] for i in range(width)]
    rows = then.execute(query, arrays).fetchall()
    return {tuple(row[:width]): row[width] for row in rows}


def _table_drift(
    then: psycopg.Connection, now: psycopg.Connection, table: sql.Composable, xmin: int
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
    added = changed = 0
    width = len(key.columns)
    for batch in _candidates(now, table, key, xmin):
        existed = _hashes_then(then, table, key, batch)
        for row in batch:
            old = existed.get(tuple(row[:width]))
            added += old is None
            changed += old is not None and old != row[width]
    return TableDrift(
        added=added,
        changed=changed,
        deleted=before - (after - added),
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
        xmin = int(then.execute(SNAPSHOT_XMIN).fetchone()[0])  # type: ignore[index]
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
                drift[name] = _table_drift(then, now, qualified, xmin)
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
