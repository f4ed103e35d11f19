"""HNSW builds: the memory and parallel workers to give them, and advice when a build had
too little.

pgvector says "hnsw graph no longer fits into maintenance_work_mem" only as a NOTICE, and
both a pg_dump script and pg_restore set client_min_messages = warning, so a client never
sees it. The graph's size is predictable instead: calibrated on pgvector 0.6.2 and 0.8.6
(384-d vectors; the notice came after 3,727 tuples at m=16 and 4,468 at m=4 with 8 MB),
an element costs about value bytes + 216 + 32 * m. A graph that spills builds several
times slower, so the builds pgcutover runs get the graph's size plus a quarter, within the
memory of the machine when the server runs on it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import psutil
import psycopg

from pgcutover.db import Endpoint, connection
from pgcutover.inventory import Inventory

ELEMENT_OVERHEAD = 216
BYTES_PER_NEIGHBOUR_SLOT = 32
DEFAULT_M = 16
MB = 1024 * 1024
#: PostgreSQL's own default maintenance_work_mem: never give a build less.
FLOOR_MB = 64
#: Share of this machine's available memory the HNSW builds may take together (the other
#: server, this process and the page cache need the rest).
MACHINE_SHARE = 0.5
#: For servers pgcutover does not run (it cannot see their memory): the settings a user's
#: option replaces, with the advice below when a graph did not fit.
REMOTE_MEMORY = "1GB"
REMOTE_WORKERS = 1
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


@dataclass(frozen=True)
class BuildSettings:
    """maintenance_work_mem and max_parallel_maintenance_workers for index build sessions,
    and how they were chosen (for the report)."""

    maintenance_work_mem: str
    workers: int
    reason: str

    def options(self) -> str:
        """The settings as `-c` options (PGOPTIONS, a connection's options)."""
        return (
            f"-c maintenance_work_mem={self.maintenance_work_mem} "
            f"-c max_parallel_maintenance_workers={self.workers}"
        )


def needed_mb(graph_bytes: int) -> int:
    """maintenance_work_mem in MB that holds a graph of `graph_bytes`, with a quarter to spare."""
    return max(FLOOR_MB, math.ceil(graph_bytes * 5 / 4 / MB))


def build_settings(
    graphs: list[int],
    *,
    memory: str | None,
    workers: int | None,
    local: bool,
    concurrent: int = 1,
) -> BuildSettings:
    """Settings for sessions that build HNSW graphs of `graphs` bytes, up to `concurrent` at
    once. On a server running on this machine (`local`): the largest graph plus a quarter,
    within MACHINE_SHARE of the available memory split between concurrent builds, and one
    parallel worker per core beyond the first. Elsewhere the remote defaults. The user's
    explicit `memory` or `workers` always win."""
    largest = max(graphs, default=0)
    wanted = needed_mb(largest)
    if local:
        cap = int(psutil.virtual_memory().available * MACHINE_SHARE / max(concurrent, 1) / MB)
        chosen = f"{max(min(wanted, cap), FLOOR_MB)}MB"
        reason = (
            f"the largest HNSW graph needs about {largest / MB:,.0f} MB"
            + (f"; capped at {cap:,} MB of this machine's memory" if cap < wanted else "")
            if largest
            else "no HNSW graph to build"
        )
        parallel = max((os.cpu_count() or 1) - 1, 0)
    else:
        chosen, parallel = REMOTE_MEMORY, REMOTE_WORKERS
        reason = "a server pgcutover does not run: its memory is unknown here"
    if memory is not None:
        chosen, reason = memory, "as configured (--maintenance-work-mem)"
    if workers is not None:
        parallel = workers
    return BuildSettings(chosen, parallel, reason)


def inventory_graphs(inventory: Inventory) -> list[GraphEstimate]:
    """Estimates for the source's HNSW indexes, from its inventory (rows as the planner
    estimates them, the column's dimension, the index's m)."""
    estimates = []
    for index in inventory.ann_indexes:
        table = inventory.table(f"{index.schema}.{index.table}")
        column = inventory.vector(f"{index.schema}.{index.table}.{index.column}")
        if index.method != "hnsw" or table is None or column is None or not column.dimensions:
            continue
        options = dict(option.partition("=")[::2] for option in index.options)
        m = int(options.get("m", DEFAULT_M))
        width = 2 if index.input_type == "halfvec" else 4
        size = estimate(table.estimated_rows, column.dimensions, m, width)
        estimates.append(
            GraphEstimate(index.name, table.estimated_rows, column.dimensions, m, size)
        )
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
        advice.append(
            f"{item.index}: the HNSW graph of {item.rows:,} x {item.dimensions} vectors "
            f"(m={item.m}) needs about {item.bytes / 2**20:,.0f} MB but the restore had "
            f"maintenance_work_mem={maintenance_work_mem}, so the build spilled to disk and ran "
            f"several times slower ({MEASURED}): rerun with "
            f"--maintenance-work-mem={needed_mb(item.bytes)}MB or more"
        )
    return advice
