"""EXPLAIN each query shape on both sides: the target must be able to use the vector index
where the source can, and never be left with a sequential scan + sort; the btree indexes
the guide lists must serve their lookups (the guide's "Slow queries after migration").

"Able to use" is judged with sequential scans discouraged (enable_seqscan = off): on a small
table the planner rightly prefers a sequential scan, which is no finding, while a missing,
invalid or mismatched index still leaves only the sequential scan. The planner's own choice
on each side is reported alongside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.checks.search import shapes
from pgcutover.checks.search.shapes import AREA, Lookup, SearchConfig, Shape
from pgcutover.config import Settings
from pgcutover.db import connection

GUIDE_REMEDY = (
    "CREATE INDEX IF NOT EXISTS idx_embedding_hnsw ON vector_embeddings USING hnsw "
    "(embedding vector_cosine_ops); ANALYZE vector_embeddings; (the guide's 'Slow queries "
    "after migration')"
)


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


def _sample(conn: psycopg.Connection, shape: Shape) -> tuple[Any, str | None] | None:
    """One stored vector (and its filter value) to explain the shape with."""
    label = (
        sql.SQL("{}::text").format(sql.Identifier(shape.filter_column))
        if shape.filter_column
        else sql.SQL("NULL")
    )
    register_vector(conn)
    return conn.execute(  # type: ignore[return-value]
        sql.SQL("SELECT {c}, {f} FROM {t} WHERE {c} IS NOT NULL LIMIT 1").format(
            c=sql.Identifier(shape.column), f=label, t=sql.Identifier(shape.schema, shape.table)
        )
    ).fetchone()


def _shape_plan(
    pair: Pair, settings: Settings, config: SearchConfig, shape: Shape
) -> list[CheckResult]:
    plans: dict[str, list[dict[str, Any]]] = {}
    natural: dict[str, list[str]] = {}
    ann: dict[str, set[str]] = {}
    with connection(pair.source, role="source") as conn:
        sample = _sample(conn, shape)
        if sample is None:
            return [
                CheckResult(
                    f"search.plan.{shape.name}",
                    AREA,
                    "skip",
                    f"{shape.qualified} holds no vectors on the source: nothing to explain",
                )
            ]
        indexes = shapes.ann_indexes(conn, settings.ignored_schemas)
        source_index = shapes.index_for(shape, indexes)
        ann["source"] = {index.name for index in indexes}
    params = {"q": sample[0], "f": sample[1], "k": shape.k}
    for side, endpoint in (("source", pair.source), ("target", pair.target)):
        with connection(endpoint, role=side) as conn:  # type: ignore[arg-type]
            register_vector(conn)
            if side == "target":
                ann["target"] = {i.name for i in shapes.ann_indexes(conn, settings.ignored_schemas)}
            natural[side] = summary(explain(conn, shape.query(), params))
            conn.execute("SET enable_seqscan = off")
            plans[side] = explain(conn, shape.query(), params)
    used = {side: _indexes_used(plans[side]) & ann[side] for side in plans}
    seq = _seq_scan(plans["target"], shape.table)
    lines = {side: summary(plans[side]) for side in plans}
    shown = {side: " > ".join(natural[side]) for side in plans}
    source_uses = ", ".join(sorted(used["source"]))
    lost_index = bool(used["source"]) and not used["target"] and shape.filter_column is None
    ok = not seq and not lost_index
    if seq:
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
        served = ", ".join(sorted(_indexes_used(plans["target"])))
        message = (
            f"{shape.name}: the target can serve it from {served}; the planner's choice is "
            f"{shown['target']} on the target, {shown['source']} on the source"
        )
    remedy = GUIDE_REMEDY
    if source_index is not None:
        remedy = (
            f"recreate the source's index on the target: {source_index.definition}; then "
            f"ANALYZE {shape.schema}.{shape.table} (the guide's 'Slow queries after migration')"
        )
    return [
        outcome(
            f"search.plan.{shape.name}",
            AREA,
            ok,
            message,
            expected=sorted(used["source"]) or lines["source"],
            actual=sorted(used["target"]) or lines["target"],
            details={"plans": natural, "plans_without_seqscan": lines},
            remedy=remedy,
        )
    ]


def _lookup_plan(pair: Pair, lookup: Lookup) -> list[CheckResult]:
    """With sequential scans discouraged, does an index serve the lookup? (Tiny tables are
    read sequentially by choice; that is no finding, a missing index is.)"""
    table = sql.Identifier(lookup.schema, lookup.table)
    column = sql.Identifier(lookup.column)
    check_id = f"search.plan.{lookup.name}"
    qualified = f"{lookup.schema}.{lookup.table}"
    query = sql.SQL("SELECT * FROM {t} WHERE {c} = %(v)s").format(t=table, c=column)
    plans: dict[str, list[dict[str, Any]]] = {}
    for side, endpoint in (("source", pair.source), ("target", pair.target)):
        with connection(endpoint, role=side) as conn:  # type: ignore[arg-type]
            exists = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f'"{lookup.schema}"."{lookup.table}"',)
            ).fetchone()[0]  # type: ignore[index]
            if not exists:
                if side == "source":
                    return [
                        CheckResult(
                            check_id, AREA, "skip", f"{qualified} is not in the source database"
                        )
                    ]
                return [
                    outcome(
                        check_id,
                        AREA,
                        False,
                        f"{qualified} is missing on the target",
                        remedy="rerun the migration",
                    )
                ]
            if side == "source":
                row = conn.execute(
                    sql.SQL("SELECT {c}::text FROM {t} WHERE {c} IS NOT NULL LIMIT 1").format(
                        c=column, t=table
                    )
                ).fetchone()
                value = row[0] if row else ""
            conn.execute("SET enable_seqscan = off")
            plans[side] = explain(conn, query, {"v": value})
    served = {side: not _seq_scan(plans[side], lookup.table) for side in plans}
    used = {side: sorted(_indexes_used(plans[side])) for side in plans}
    message = (
        f"{lookup.name}: {qualified}.{lookup.column} lookups use "
        f"{', '.join(used['target']) or 'no index'} on the target "
        f"({', '.join(used['source']) or 'no index'} on the source)"
    )
    return [
        outcome(
            check_id,
            AREA,
            served["target"],
            message,
            expected=used["source"],
            actual=used["target"],
            details={"plans": {side: summary(plans[side]) for side in plans}},
            remedy=(
                f"CREATE INDEX ON {qualified} ({lookup.column}); ANALYZE {qualified}; (the "
                "guide's 'Slow queries after migration')"
            ),
        )
    ]


def _run(pair: Pair, settings: Settings) -> list[CheckResult]:
    results = shapes.per_shape(pair, settings, "search.plan", _shape_plan)
    for lookup in shapes.load(settings).lookups:
        check_id = f"search.plan.{lookup.name}"
        results.extend(guarded(check_id, AREA, lambda lk=lookup: _lookup_plan(pair, lk), pair))
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.plan.<shape> for every query shape, search.plan.<lookup> for every lookup."""
    return guarded("search.plan", AREA, lambda: _run(pair, settings), pair)
