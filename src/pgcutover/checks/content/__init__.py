"""Content parity: every row of every table of the migrated schemas, source against target,
with the differing keys named (only on the source, only on the target, changed).

    check(pair, settings)                      -> one result per table, `content.<schema>.<table>`
    compare(pair, settings, source_snapshot)   -> the same, reading the source as of a snapshot

`source_snapshot` is an id from `pg_export_snapshot()` on the source, for instance the one the
migration gave pg_dump; the transaction that exported it must stay open until `compare`
returns. The target is then compared with the source as it was at that instant, whatever was
written since. Without it, each side is read at one snapshot taken when the comparison starts.

Two modes (fixtures/content.toml `mode`, or --content-mode): `stream` moves every row to this
machine in physical order and compares key-hashed buckets there (stream.py), `bisect` moves
only range checksums computed by each server (bisect.py). A difference always fails its
table's check; a table that cannot be compared is `unknown`, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from pgcutover import progress
from pgcutover.checks.base import CheckResult, Pair, guarded
from pgcutover.checks.content import generated, report, stream
from pgcutover.checks.content.bisect import MULTISET, SUMMARY, Bisection, Probe, ask
from pgcutover.checks.content.diff import TableDiff
from pgcutover.checks.content.hashing import Summary
from pgcutover.checks.content.options import ContentOptions
from pgcutover.checks.content.segments import estimated_rows, initial_segments
from pgcutover.checks.content.sessions import Pairs, Side
from pgcutover.checks.content.tables import Shape, TablePlan, plan, shapes
from pgcutover.config import Settings
from pgcutover.migrate import watch

__all__ = ["check", "compare"]

Task = TypeVar("Task")


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """One result per table of the migrated schemas; see the module docstring. Progress:
    the rows the source has streamed, of the rows the inventory estimates."""
    rows = sum(table.estimated_rows for table in pair.inventory.tables)
    with progress.polled(
        "content parity", lambda: watch.streamed_rows(pair.source, "source", rows)
    ):
        return guarded("content", report.AREA, lambda: compare(pair, settings), pair)


def compare(
    pair: Pair, settings: Settings, source_snapshot: str | None = None
) -> list[CheckResult]:
    """Compare every table's content; the source is read at `source_snapshot` when given."""
    options = ContentOptions.from_settings(settings)
    errors: dict[str, BaseException] = {}
    with (
        Side("source", pair.source, options.connections, source_snapshot) as source,
        Side("target", pair.target, options.connections) as target,
    ):
        on_source = shapes(source.anchor, settings.ignored_schemas)  # type: ignore[arg-type]
        on_target = shapes(target.anchor, settings.ignored_schemas)  # type: ignore[arg-type]
        plans = [plan(on_source[name], on_target[name]) for name in on_source if name in on_target]
        keyed = [p for p in plans if p.key]
        diffs = {p.qualified: TableDiff() for p in keyed}
        multisets: dict[str, tuple[Summary, Summary]] = {}
        bisection = Bisection(options, diffs, multisets)

        def failed(task: stream.Scan | stream.Reread | Probe, error: BaseException) -> None:
            errors.setdefault(task.plan.qualified, error)
            diffs.pop(task.plan.qualified, None)

        window = 2 * options.connections
        Pairs(source, target, ask, bisection.settle, failed, window).run(
            Probe(p, MULTISET) for p in plans if not p.key
        )
        if options.mode == "stream":

            def scans(table: TablePlan) -> list[stream.Scan]:
                rows = estimated_rows(source.anchor, table)  # type: ignore[arg-type]
                return [stream.Scan(table, stream.bucket_count(rows, options.rows_per_bucket))]

            Pairs(source, target, stream.read, stream.Buckets(diffs).settle, failed, window).run(
                _first_tasks(keyed, scans, errors, diffs)
            )
        else:

            def ranges(table: TablePlan) -> list[Probe]:
                segments = initial_segments(
                    source.anchor,  # type: ignore[arg-type]
                    table,
                    options.segments,
                    options.min_segment_rows,
                )
                return [Probe(table, SUMMARY, segment) for segment in segments]

            Pairs(source, target, ask, bisection.settle, failed, window).run(
                _first_tasks(keyed, ranges, errors, diffs)
            )
    results = _results(pair, options, on_source, on_target, plans, diffs, multisets, errors)
    return results + generated.compare(pair, plans)


def _first_tasks(
    keyed: list[TablePlan],
    make: Callable[[TablePlan], list[Task]],
    errors: dict[str, BaseException],
    diffs: dict[str, TableDiff],
) -> list[Task]:
    """Every keyed table's first tasks; a table whose tasks cannot be planned is reported
    as unknown."""
    tasks: list[Task] = []
    for table in keyed:
        try:
            tasks.extend(make(table))
        except Exception as error:  # reported as this table's unknown result
            errors[table.qualified] = error
            diffs.pop(table.qualified, None)
    return tasks


def _results(
    pair: Pair,
    options: ContentOptions,
    on_source: dict[str, Shape],
    on_target: dict[str, Shape],
    plans: list[TablePlan],
    diffs: dict[str, TableDiff],
    multisets: dict[str, tuple[Summary, Summary]],
    errors: dict[str, BaseException],
) -> list[CheckResult]:
    results = [
        report.missing(name, "source", shape.estimated_rows)
        for name, shape in on_source.items()
        if name not in on_target
    ]
    results += [
        report.missing(name, "target", shape.estimated_rows)
        for name, shape in on_target.items()
        if name not in on_source
    ]
    for table in plans:
        name = table.qualified
        if name in errors:
            results.append(report.failed(name, errors[name], pair.redact))
        elif table.key:
            diff = diffs[name]
            diff.settle()
            decode = partial(stream.key_values, table) if options.mode == "stream" else tuple
            results.append(
                report.keyed(table, diff, options.mode, options.max_keys_reported, decode)
            )
        else:
            results.append(report.keyless(table, *multisets[name]))
    return sorted(results, key=lambda result: result.id)
