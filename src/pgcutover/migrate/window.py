"""The cutover window, projected (the guide's "Plan downtime"): how long the dump, the
restore, the index builds and ANALYZE would take at production size, from the phases this
rehearsal measured and the sizes the catalog reports.

Each phase grows with what it works on: the dump and the data restore with the bytes of the
tables (COPY streams them), the index builds with n log n of the vectors each HNSW graph
holds (every insertion searches a graph that deepens with log n; B-tree sorts grow alike),
ANALYZE with the rows it samples (at most 30,000 a table at the default statistics target),
everything else not at all. "Production size" is the source itself unless --project-rows
names the chunk count to plan for; then every table grows with the largest vector table.
The uncertainty grows with the distance projected: UNCERTAINTY at the rehearsal's own size
(run-to-run noise on a shared machine), PER_DECADE more per tenfold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pgcutover.inventory import Inventory
from pgcutover.migrate.advice import inventory_graphs, needed_mb

#: Rows ANALYZE samples per table at default_statistics_target = 100.
ANALYZE_SAMPLE = 30_000
#: Relative uncertainty of a projection to the rehearsal's own size: the spread between runs
#: on a shared 2-core machine (two 200,000-chunk rehearsals: dump + restore + index build
#: 174 s and 274 s, load average 8 and 11).
UNCERTAINTY = 0.25
#: Further relative uncertainty per tenfold projected. Validated by predicting the
#: 1,000,000-chunk rehearsal from a 100,000-chunk one on the same machine (load 3-10): 669 s
#: predicted, 666 s and 548 s measured in two runs (+0.5%, +22%); per phase against their
#: mean: dump +44%, data -31%, index build +21%.
PER_DECADE = 0.25
#: Phases that are pgcutover's own measurements, not part of a cutover.
NOT_CUTOVER = ("drift",)
#: How each phase grows; phases not named here take the same time at any size.
GROWTH = {
    "dump": "table bytes",
    "data": "table bytes",
    "index build": "n log n of the indexed vectors",
    "analyze": "rows ANALYZE samples",
}


@dataclass(frozen=True)
class Size:
    """What a database holds, as the catalog estimates it: rows per table, the tables'
    bytes, and each HNSW graph's vectors and in-memory bytes."""

    tables: dict[str, int]
    table_bytes: int
    graphs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def vectors(self) -> int:
        """Rows of the largest HNSW-indexed table, else of the largest table: the chunks
        --project-rows counts."""
        counts = [rows for rows, _ in self.graphs] or list(self.tables.values())
        return max(counts, default=0)

    def scaled(self, factor: float) -> Size:
        """The same database with every table `factor` times as large."""
        return Size(
            tables={name: round(rows * factor) for name, rows in self.tables.items()},
            table_bytes=round(self.table_bytes * factor),
            graphs=[(round(rows * factor), round(size * factor)) for rows, size in self.graphs],
        )

    def facts(self) -> dict[str, Any]:
        """The figures the report shows."""
        return {
            "rows": sum(self.tables.values()),
            "table_bytes": self.table_bytes,
            "vectors": self.vectors,
            "hnsw_graph_bytes": sum(size for _, size in self.graphs),
        }


def size_of(inventory: Inventory) -> Size:
    """The size of the source, from its inventory."""
    return Size(
        tables={table.qualified: table.estimated_rows for table in inventory.tables},
        table_bytes=sum(table.bytes for table in inventory.tables),
        graphs=[(item.rows, item.bytes) for item in inventory_graphs(inventory)],
    )


def _n_log_n(size: Size) -> float:
    counts = [rows for rows, _ in size.graphs] or [sum(size.tables.values())]
    return sum(n * math.log(max(n, 2)) for n in counts)


def _sampled(size: Size) -> float:
    return float(sum(min(rows, ANALYZE_SAMPLE) for rows in size.tables.values()))


def _growth(kind: str, rehearsal: Size, production: Size) -> float:
    """How many times longer a phase growing with `kind` takes at production size."""
    measures = {
        "table bytes": lambda size: float(size.table_bytes),
        "n log n of the indexed vectors": _n_log_n,
        "rows ANALYZE samples": _sampled,
    }
    before, after = measures[kind](rehearsal), measures[kind](production)
    return after / before if before > 0 else 1.0


@dataclass(frozen=True)
class Window:
    """The projected cutover window: per phase the measured and projected seconds, the
    total with its low and high bounds, and the assumptions behind them."""

    basis: str
    rehearsal: dict[str, Any]
    production: dict[str, Any]
    phases: list[dict[str, Any]]
    measured_seconds: float
    projected_seconds: float
    low_seconds: float
    high_seconds: float
    uncertainty: float
    assumptions: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def project(
    phases: list[tuple[str, float]], rehearsal: Size, production: Size, basis: str
) -> Window:
    """Project the measured (phase, seconds) of a rehearsal of `rehearsal` to `production`."""
    rows = []
    for name, seconds in phases:
        if name in NOT_CUTOVER:
            continue
        kind = GROWTH.get(name, "nothing")
        factor = _growth(kind, rehearsal, production) if name in GROWTH else 1.0
        rows.append(
            {
                "name": name,
                "measured_seconds": round(seconds, 2),
                "projected_seconds": round(seconds * factor, 2),
                "grows_with": kind,
                "factor": round(factor, 3),
            }
        )
    measured = sum(row["measured_seconds"] for row in rows)
    projected = sum(row["projected_seconds"] for row in rows)
    scale = production.vectors / rehearsal.vectors if rehearsal.vectors else 1.0
    uncertainty = UNCERTAINTY + PER_DECADE * abs(math.log10(scale)) if scale > 0 else UNCERTAINTY
    largest = max((size for _, size in production.graphs), default=0)
    assumptions = [
        "the production servers, network and disks are as fast as this rehearsal's",
        "the dump and the data restore grow with the bytes of the tables, the index builds "
        "with n log n of the vectors each HNSW graph holds, ANALYZE with the rows it samples",
        "the cutover runs the same strategy with the same parallel jobs",
    ]
    if largest:
        assumptions.append(
            f"each HNSW build gets at least {needed_mb(largest):,} MB of maintenance_work_mem "
            "(a graph that spills builds several times slower)"
        )
    if basis != "the source itself":
        assumptions.append("every table grows in proportion to the largest vector table")
    return Window(
        basis=basis,
        rehearsal=rehearsal.facts(),
        production=production.facts(),
        phases=rows,
        measured_seconds=round(measured, 1),
        projected_seconds=round(projected, 1),
        low_seconds=round(projected / (1 + uncertainty), 1),
        high_seconds=round(projected * (1 + uncertainty), 1),
        uncertainty=round(uncertainty, 3),
        assumptions=assumptions,
    )


def production_size(rehearsal: Size, project_rows: int | None) -> tuple[Size, str]:
    """The size to plan for and how it was chosen: the source itself, or --project-rows
    chunks with every table grown alike."""
    if project_rows is None or not rehearsal.vectors:
        return rehearsal, "the source itself"
    return (
        rehearsal.scaled(project_rows / rehearsal.vectors),
        f"--project-rows={project_rows:,} chunks",
    )
