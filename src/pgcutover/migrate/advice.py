"""Advice on the restore's HNSW builds: would the graph fit in maintenance_work_mem?

pgvector says "hnsw graph no longer fits into maintenance_work_mem" only as a NOTICE, and
both a pg_dump script and pg_restore set client_min_messages = warning, so a client never
sees it. The graph's size is predictable instead: calibrated on pgvector 0.6.2 and 0.8.6
(384-d vectors; the notice came after 3,727 tuples at m=16 and 4,468 at m=4 with 8 MB),
an element costs about value bytes + 216 + 32 * m.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pgcutover.db import Endpoint, connection

ELEMENT_OVERHEAD = 216
BYTES_PER_NEIGHBOUR_SLOT = 32
DEFAULT_M = 16
#: The issue's measurement on 200,000 x 384 vectors (PostgreSQL 18), quoted in the advice.
MEASURED = (
    "measured on 200,000 x 384 vectors: 718 s at 64MB (spilled), 185 s at 1GB, "
    "109 s at 1GB with one parallel worker"
)

HNSW_INDEXES = """
SELECT n.nspname || '.' || i.relname, t.reltuples::bigint, a.atttypmod, ty.typname,
       coalesce((SELECT option_value::int FROM pg_options_to_table(i.reloptions)
                 WHERE option_name = 'm'), %s)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
JOIN pg_am am ON am.oid = i.relam
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
JOIN pg_type ty ON ty.oid = a.atttypid
WHERE am.amname = 'hnsw'
"""


@dataclass(frozen=True)
class GraphEstimate:
    """The in-memory size of one HNSW build."""

    index: str
    rows: int
    dimensions: int
    m: int
    bytes: int


def estimate(rows: int, dimensions: int, m: int, bytes_per_dimension: int = 4) -> int:
    """Bytes pgvector's in-memory HNSW graph needs for `rows` vectors."""
    value = 8 + bytes_per_dimension * dimensions
    return rows * (value + ELEMENT_OVERHEAD + BYTES_PER_NEIGHBOUR_SLOT * m)


def graph_estimates(conn: psycopg.Connection) -> list[GraphEstimate]:
    """Estimates for every HNSW index of the connected database."""
    rows = conn.execute(HNSW_INDEXES, (DEFAULT_M,)).fetchall()
    estimates = []
    for name, tuples, typmod, type_name, m in rows:
        if typmod <= 0 or tuples <= 0:
            continue
        width = 2 if type_name == "halfvec" else 4
        estimates.append(GraphEstimate(name, tuples, typmod, m, estimate(tuples, typmod, m, width)))
    return estimates


def spill_advice(target: Endpoint, maintenance_work_mem: str) -> list[str]:
    """One line per HNSW index whose graph outgrew the restore's maintenance_work_mem."""
    with connection(target, role="target") as conn:
        estimates = graph_estimates(conn)
        budget = int(
            conn.execute(  # type: ignore[index]
                "SELECT pg_size_bytes(%s)", (maintenance_work_mem,)
            ).fetchone()[0]
        )
    advice = []
    for item in estimates:
        if item.bytes <= budget:
            continue
        needed_mb = -(-item.bytes * 5 // 4 // (1024 * 1024))
        advice.append(
            f"{item.index}: the HNSW graph of {item.rows:,} x {item.dimensions} vectors "
            f"(m={item.m}) needs about {item.bytes / 2**20:,.0f} MB but the restore had "
            f"maintenance_work_mem={maintenance_work_mem}, so the build spilled to disk and ran "
            f"several times slower ({MEASURED}): rerun with --maintenance-work-mem={needed_mb}MB "
            "or more"
        )
    return advice
