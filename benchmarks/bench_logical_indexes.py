"""When should a logical cutover build the target's indexes: before the initial copy (every
copied and streamed row updates the HNSW graph) or after it (the copy fills bare tables, then
the indexes are built while the apply waits, then the target catches up)?

Both run the real --strategy=logical migration from an embedded PostgreSQL 16 source seeded
with the rehearsal workload (real MiniLM embeddings, cached after the first run) into a fresh
database on an embedded PostgreSQL 18 target, with the rehearsal's writer changing the source
throughout. Measured per run: the seconds from the schema to a target that is complete and
caught up (`ready_seconds`, the phases the timing choice changes), and the initial copy alone.
The two timings alternate over --repeat rounds on the same servers, and the medians and their
ratio are reported, so a shared machine's changing load hits both alike.

    python benchmarks/bench_logical_indexes.py [--rows 5000] [--repeat 3] [--json PATH]

Numbers depend on the machine and on whatever else runs on it: say which when you quote one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from psycopg import sql
from record import Record

from pgcutover.config import OPTIONS, build_settings
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import seed
from pgcutover.db import connect
from pgcutover.inventory import discover
from pgcutover.migrate.logical.cutover import INDEX_TIMINGS, Cutover, rehearsal_writer
from pgcutover.migrate.runner import migrate
from pgcutover.providers.embedded import start_embedded

SOURCE_DB = "bench_source"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write figures, ratios and machine facts here")
    args = parser.parse_args()
    record = Record("logical_indexes", {k: v for k, v in vars(args).items() if k != "json"})
    folder = Path(tempfile.mkdtemp(prefix="pgcutover-bench-logical-"))
    folder.chmod(0o711)
    try:
        timings = measure(folder, args.rows, args.repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    medians = {t: statistics.median(timings[t]["ready"]) for t in INDEX_TIMINGS}
    record.write(
        args.json,
        figures=timings,
        ratios={"before_to_after": medians["before"] / medians["after"]},
    )


def measure(folder: Path, rows: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Seconds to a ready target and of the initial copy, per index timing and round."""
    values = {option.name: option.default for option in OPTIONS}
    timings: dict[str, dict[str, list[float]]] = {
        timing: {"ready": [], "copy": []} for timing in INDEX_TIMINGS
    }
    source = start_embedded("pg16", folder / "source", "bench source (PostgreSQL 16)")
    target = start_embedded("pg18", folder / "target", "bench target (PostgreSQL 18)")
    try:
        plain = build_settings(values, migrate=None, allow_destructive=False, rootdir=folder)
        embedder = Embedder(plain.embedding_model, plain.cache_dir)
        try:
            seed(source.endpoint, SOURCE_DB, rows, embedder)
        finally:
            embedder.close()
        for round_number in range(repeat):
            for timing in INDEX_TIMINGS:
                run = f"{timing}_{round_number}"
                (folder / "targets.toml").write_text(f'[logical]\nindexes = "{timing}"\n')
                settings = build_settings(
                    {**values, "rows": rows, "strategy": "logical"},
                    migrate=None,
                    allow_destructive=False,
                    rootdir=folder,
                )
                with connect(source.endpoint, role="admin") as admin:
                    admin.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                            sql.Identifier(run), sql.Identifier(SOURCE_DB)
                        )
                    )
                with connect(target.endpoint, role="admin") as admin:
                    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(run)))
                copy = source.endpoint.with_dbname(run)
                with connect(copy, role="source") as conn:
                    inventory = discover(conn, settings)
                result = migrate(
                    copy,
                    target.endpoint.with_dbname(run),
                    settings,
                    inventory,
                    cutover=Cutover(record_dir=folder, writes=rehearsal_writer(copy, settings)),
                )
                if not result.ok:
                    raise SystemExit(f"{run}: the migration failed: {result.error}")
                evidence = result.logical or {}
                phases = {phase.name: phase.seconds for phase in result.phases}
                timings[timing]["ready"].append(evidence["ready_seconds"])
                timings[timing]["copy"].append(phases["initial copy"])
                print(
                    f"round {round_number + 1} {timing:>6}: "
                    f"ready {evidence['ready_seconds']:6.2f} s"
                    f" (initial copy {phases['initial copy']:.2f} s, index build "
                    f"{phases.get('index build', 0.0):.2f} s, catch up {phases['catch up']:.2f} s,"
                    f" {evidence['writes']['count']} writes)",
                    flush=True,
                )
    finally:
        source.stop()
        target.stop()
    medians = {t: statistics.median(timings[t]["ready"]) for t in INDEX_TIMINGS}
    print(f"\n{rows} rows, medians of {repeat} rounds:")
    for timing in INDEX_TIMINGS:
        print(
            f"  indexes {timing:>6} the copy: ready in {medians[timing]:6.2f} s "
            f"(initial copy {statistics.median(timings[timing]['copy']):.2f} s)"
        )
    print(f"  before / after = {medians['before'] / medians['after']:.2f}")
    return timings


if __name__ == "__main__":
    main()
