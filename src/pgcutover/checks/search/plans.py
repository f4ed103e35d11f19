"""EXPLAIN each of the inventory's query shapes on both sides: where the source can use its
vector index, its text-search index (hybrid search) or a btree for a lookup, the target must
be able to as well, and never be left with a sequential scan the source avoids (the guide's
"Slow queries after migration"). A shape no index serves on either side is a finding, not a
failed migration.

"Able to use" is judged with sequential scans discouraged (enable_seqscan = off): on a small
table the planner rightly prefers a sequential scan, which is no finding, while a missing,
invalid or mismatched index still leaves only the sequential scan. The planner's own choice
on each side is reported alongside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from pgcutover.checks.base import DIFFERS, SHARED, CheckResult, Pair, finding, guarded, outcome
from pgcutover.checks.search import shapes
from pgcutover.checks.search.shapes import AREA, SearchConfig, Shape
from pgcutover.checks.vector_indexes import create_index_advice
from pgcutover.config import Settings
from pgcutover.db import DataRole, connection
from pgcutover.inventory import Lookup, TextShape


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def explain(conn: psycopg.Connection, query: sql.Composable, params: Any) -> list[dict[str, Any]]:
    """The plan's nodes, depth first (EXPLAIN without ANALYZE: nothing runs)."""
    row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params).fetchone()
    document = row[0] if row else []
    return list(_nodes(document[0]["Plan"])) if document else []


def summary(nodes: list[dict[str, Any]]) -> list[str]:
    """Readable plan lines without the query's vector literal."""
    lines = []
    for node in nodes:
        text = node["Node Type"]
        if "Index Name" in node:
            text += f" using {node['Index Name']}"
        if "Relation Name" in node:
            text += f" on {node['Relation Name']}"
        lines.append(text)
    return lines


def _seq_scan(nodes: list[dict[str, Any]], table: str) -> bool:
    return any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") == table for n in nodes)


def _indexes_used(nodes: list[dict[str, Any]]) -> set[str]:
    return {node["Index Name"] for node in nodes if "Index Name" in node}


def _sample(conn: psycopg.Connection, shape: Shape) -> tuple[str, str | None] | None:
    """One stored vector (as text) and its filter value, to explain the shape with."""
    label = (
        sql.SQL("{}::text").format(sql.Identifier(shape.filter_column))
        if shape.filter_column
        else sql.SQL("NULL")
    )
    return conn.execute(  # type: ignore[return-value]
        sql.SQL("SELECT {c}::text, {f} FROM {t} WHERE {c} IS NOT NULL LIMIT 1").format(
            c=sql.Identifier(shape.column), f=label, t=sql.Identifier(shape.schema, shape.table)
        )
    ).fetchone()


def _both(
    pair: Pair, query: sql.Composable, params: dict[str, Any]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    """Each side's plan with sequential scans discouraged, and the planner's own choice."""
    plans: dict[str, list[dict[str, Any]]] = {}
    natural: dict[str, list[str]] = {}
    sides: tuple[tuple[DataRole, Any], ...] = (("source", pair.source), ("target", pair.target))
    for side, endpoint in sides:
        with connection(endpoint, role=side) as conn:
            natural[side] = summary(explain(conn, query, params))
            conn.execute("SET enable_seqscan = off")
            plans[side] = explain(conn, query, params)
    return plans, natural


def _shape_plan(
    pair: Pair, settings: Settings, config: SearchConfig, shape: Shape
) -> list[CheckResult]:
    check_id = f"search.plan.{shape.name}"
    with connection(pair.source, role="source") as conn:
        sample = _sample(conn, shape)
    if sample is None:
        return [
            CheckResult(
                check_id,
                AREA,
                "skip",
                f"{shape.qualified} holds no vectors on the source: nothing to explain",
            )
        ]
    source_index = shapes.index_for(shape, pair.inventory.ann_indexes)
    with connection(pair.target, role="target") as conn:
        target_indexes = shapes.ann_indexes(conn, settings.ignored_schemas)
    ann = {
        "source": {index.name for index in pair.inventory.ann_indexes},
        "target": {index.name for index in target_indexes},
    }
    params = {"q": sample[0], "f": sample[1], "k": shape.k}
    plans, natural = _both(pair, shape.query(), params)
    used = {side: _indexes_used(plans[side]) & ann[side] for side in plans}
    seq = {side: _seq_scan(plans[side], shape.table) for side in plans}
    lines = {side: summary(plans[side]) for side in plans}
    shown = {side: " > ".join(natural[side]) for side in plans}
    source_uses = ", ".join(sorted(used["source"]))
    lost_index = bool(used["source"]) and not used["target"] and shape.filter_column is None
    regressed = seq["target"] and not seq["source"]
    details = {"plans": natural, "plans_without_seqscan": lines}
    remedy = (
        f"recreate the source's index on the target: {source_index.definition}; then "
        f"ANALYZE {shape.schema}.{shape.table} (the guide's 'Slow queries after migration')"
        if source_index is not None
        else "compare the target's indexes on "
        f"{shape.schema}.{shape.table} with the source's (schema.index checks), then ANALYZE"
    )
    if not used["source"] and not used["target"] and seq["source"]:
        column = pair.inventory.vector(shape.qualified)
        return [
            finding(
                check_id,
                AREA,
                f"{shape.name}: no index serves it on either side (a sequential scan + sort "
                "on both): the copy is faithful; the search reads the whole table",
                kind=SHARED,
                remedy=create_index_advice(column) if column else "",
                expected=lines["source"],
                actual=lines["target"],
                details=details,
            )
        ]
    if regressed:
        message = (
            f"{shape.name}: the target can only read {shape.qualified} with a sequential scan "
            f"+ sort ({' > '.join(lines['target'])}); the source can use "
            f"{source_uses or ' > '.join(lines['source'])}"
        )
    elif lost_index:
        message = (
            f"{shape.name}: the source can use the vector index {source_uses}, the target "
            f"cannot ({' > '.join(lines['target'])})"
        )
    else:
        served = ", ".join(sorted(_indexes_used(plans["target"]))) or "a sequential scan"
        message = (
            f"{shape.name}: the target can serve it from {served}; the planner's choice is "
            f"{shown['target']} on the target, {shown['source']} on the source"
        )
        chosen = {side: any(i in line for i in ann[side] for line in natural[side]) for side in ann}
        if chosen["source"] and not chosen["target"]:
            return [
                finding(
                    check_id,
                    AREA,
                    f"{message}: the target's planner prefers a sequential scan where the "
                    "source's uses its vector index (a newer planner's costs, typically on a "
                    "small table whose vectors live out of line); the index is there and usable",
                    kind=DIFFERS,
                    remedy="compare search.latency; on a table this small it costs "
                    "milliseconds, and the planner turns to the index as the table grows",
                    expected=sorted(used["source"]),
                    actual=sorted(used["target"]),
                    details=details,
                )
            ]
    return [
        outcome(
            check_id,
            AREA,
            not regressed and not lost_index,
            message,
            expected=sorted(used["source"]) or lines["source"],
            actual=sorted(used["target"]) or lines["target"],
            details=details,
            remedy=remedy,
        )
    ]


def _served(
    check_id: str,
    what: str,
    table: str,
    plans: dict[str, list[dict[str, Any]]],
    remedy: str,
) -> CheckResult:
    """Judge a plan pair: an index on the source must be one on the target as well."""
    served = {side: not _seq_scan(plans[side], table) for side in plans}
    used = {side: sorted(_indexes_used(plans[side])) for side in plans}
    details = {"plans": {side: summary(plans[side]) for side in plans}}
    if not served["source"] and not served["target"]:
        return finding(
            check_id,
            AREA,
            f"{what}: no index serves it on either side: the copy is faithful",
            kind=SHARED,
            remedy=remedy,
            details=details,
        )
    return outcome(
        check_id,
        AREA,
        served["target"] or not served["source"],
        f"{what}: {', '.join(used['target']) or 'no index'} on the target "
        f"({', '.join(used['source']) or 'no index'} on the source)",
        expected=used["source"],
        actual=used["target"],
        details=details,
        remedy=remedy,
    )


def _text_plan(pair: Pair, shape: TextShape) -> list[CheckResult]:
    """A text search (trigram or full text) must use its index on the target where it does
    on the source."""
    check_id = f"search.plan.{shape.name}"
    with connection(pair.source, role="source") as conn:
        row = conn.execute(shape.term_query()).fetchone()
    if row is None or row[0] is None:
        return [CheckResult(check_id, AREA, "skip", f"{shape.schema}.{shape.table} holds no text")]
    plans, _ = _both(pair, shape.query(), {"t": row[0]})
    kind = "trigram (LIKE/ILIKE)" if shape.kind == "trigram" else "full-text (@@)"
    return [
        _served(
            check_id,
            f"{kind} search on {shape.schema}.{shape.table} through {shape.index}",
            shape.table,
            plans,
            f"recreate {shape.index} on the target as on the source (schema.index checks show "
            f"its definition); then ANALYZE {shape.schema}.{shape.table}",
        )
    ]


def _lookup_plan(pair: Pair, lookup: Lookup) -> list[CheckResult]:
    """With sequential scans discouraged, does an index serve the lookup on the target where
    one does on the source? (Tiny tables are read sequentially by choice; that is no finding.)"""
    table = sql.Identifier(lookup.schema, lookup.table)
    column = sql.Identifier(lookup.column)
    query = sql.SQL("SELECT * FROM {t} WHERE {c} = %(v)s").format(t=table, c=column)
    with connection(pair.source, role="source") as conn:
        row = conn.execute(
            sql.SQL("SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT 1").format(
                c=column, t=table
            )
        ).fetchone()
    plans, _ = _both(pair, query, {"v": row[0] if row else ""})
    return [
        _served(
            f"search.plan.{lookup.name}",
            f"{lookup.qualified}.{lookup.column} lookups",
            lookup.table,
            plans,
            f"CREATE INDEX ON {lookup.qualified} ({lookup.column}); ANALYZE {lookup.qualified}; "
            "(the guide's 'Slow queries after migration')",
        )
    ]


def _run(pair: Pair, settings: Settings) -> list[CheckResult]:
    results = shapes.per_shape(
        pair, settings, "search.plan", _shape_plan, absent=shapes.NO_VECTOR_SHAPE
    )
    for text in pair.inventory.text_shapes:
        check_id = f"search.plan.{text.name}"
        results.extend(guarded(check_id, AREA, lambda t=text: _text_plan(pair, t), pair))
    for lookup in pair.inventory.lookups:
        check_id = f"search.plan.{lookup.name}"
        results.extend(guarded(check_id, AREA, lambda lk=lookup: _lookup_plan(pair, lk), pair))
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.plan.<shape> for every query shape, search.plan.<lookup> for every lookup."""
    return guarded("search.plan", AREA, lambda: _run(pair, settings), pair)
