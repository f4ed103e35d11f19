"""The logical cutover (--strategy=logical) judged from its evidence: the replication (initial
copy per table, lag in bytes and seconds, drawn), the switchover (write pause, sequences),
the downtime beside the dump/restore window of the same database, the way back, and nothing
of the migration left on the source (read there, now)."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import FAIL, SKIP, UNKNOWN, CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.migrate.logical.cutover import STRATEGY
from pgcutover.migrate.logical.objects import left_on_source
from pgcutover.migrate.runner import MigrationResult

AREA = "migration"


def _not_judged(check_id: str, migration: MigrationResult) -> CheckResult:
    return CheckResult(
        id=check_id,
        area=AREA,
        status=SKIP,
        message=f"not judged: the migration failed in phase {migration.failed_phase}",
    )


def _kb(value: int | None) -> float | None:
    return None if value is None else round(value / 1024, 1)


def replication(migration: MigrationResult) -> CheckResult:
    """The initial copy per table and the lag through the run, as charts."""
    evidence = migration.logical or {}
    copied = evidence.get("initial_copy")
    if copied is None:
        return _not_judged("cutover.replication", migration)
    lag = evidence.get("lag") or {}
    samples = lag.get("samples") or []
    times = [sample["t"] for sample in samples]
    slowest = max(copied.items(), key=lambda item: item[1]["seconds"] or 0.0)
    message = (
        f"initial copy of {len(copied)} tables (slowest {slowest[0]}: "
        f"{slowest[1]['seconds']} s, polled every 0.1 s), indexes built {evidence['indexes']} "
        f"the copy, target complete and caught up {evidence.get('ready_seconds')} s after the "
        f"schema began; lag peaked at {_kb(lag.get('max_bytes'))} kB and "
        f"{lag.get('max_seconds')} s over {lag.get('readings')} readings "
        f"({lag.get('unanswered')} unanswered)"
    )
    return outcome(
        "cutover.replication",
        AREA,
        True,
        message,
        actual={"initial_copy": copied, "ready_seconds": evidence.get("ready_seconds")},
        details={
            "series": [
                {
                    "title": "Replication lag: WAL the target had not applied (kB)",
                    "x_label": "seconds from the start of the migration",
                    "y_label": "kB behind",
                    "x": times,
                    "lines": {"kB behind": [_kb(s["bytes"]) for s in samples]},
                },
                {
                    "title": "Replication lag: age of the oldest change not applied (s)",
                    "x_label": "seconds from the start of the migration",
                    "y_label": "seconds behind",
                    "x": times,
                    "lines": {"seconds behind": [s["seconds"] for s in samples]},
                },
            ],
            "bars": {
                "title": "Initial copy per table (seconds)",
                "y_label": "seconds",
                "labels": list(copied),
                "groups": {"seconds": [copied[table]["seconds"] for table in copied]},
            },
            "timeline": evidence.get("timeline") or [],
        },
    )


def switchover(migration: MigrationResult) -> CheckResult:
    """Writes stopped, everything applied, sequences moved, subscription dropped."""
    evidence = migration.logical or {}
    done = evidence.get("switchover")
    writes = evidence.get("writes") or {}
    if writes.get("error"):
        return CheckResult(
            id="cutover.switchover",
            area=AREA,
            status=UNKNOWN,
            message=f"the rehearsal's writer failed, so the writes were not rehearsed: "
            f"{writes['error']}",
            remedy="read the error; the rehearsal source must accept writes",
        )
    if done is None:
        return _not_judged("cutover.switchover", migration)
    moved = done["sequences_moved"]
    wrote = f"after {writes['count']} rehearsal writes, " if writes else ""
    sequences = (
        "the sequences were NOT moved (step skipped): the app's next insert may hit a duplicate key"
        if moved is None
        else f"{len(moved)} sequence(s) moved past their columns' values"
    )
    return outcome(
        "cutover.switchover",
        AREA,
        moved is not None,
        f"{wrote}writes stopped; the target applied everything up to "
        f"{done['writes_stopped_at_lsn']} in {done['catch_up_seconds']} s; {sequences}; "
        f"subscription dropped: write pause {done['write_pause_seconds']} s",
        actual=done,
        remedy="move each sequence past its column's largest value: SELECT setval(...)",
    )


def downtime_line(numbers: dict[str, Any]) -> str:
    """'write pause P s ..., against a dump/restore window of W s ...' (also in the HTML)."""
    pause, window = numbers["write_pause_seconds"], numbers["dump_restore_seconds"]
    if window is None:
        return f"write pause {pause} s; the dump/restore window was not measured (no restore)"
    return (
        f"write pause {pause} s with logical replication, against a dump/restore window of "
        f"{window} s for the same database (pg_dump -Fc {numbers['dump_seconds']} s + "
        f"pg_restore {numbers['restore_seconds']} s)"
    )


def downtime(migration: MigrationResult) -> CheckResult:
    """The switchover's write pause beside the dump/restore window (evidence, never blocks)."""
    numbers = (migration.logical or {}).get("downtime")
    if not numbers or numbers.get("write_pause_seconds") is None:
        return _not_judged("cutover.downtime", migration)
    pause, window = numbers["write_pause_seconds"], numbers["dump_restore_seconds"]
    details = {}
    if window is not None:
        details["bars"] = {
            "title": "Writes stopped for (seconds)",
            "y_label": "seconds",
            "labels": ["logical switchover", "dump + restore"],
            "groups": {"seconds": [pause, window]},
        }
    return outcome(
        "cutover.downtime", AREA, True, downtime_line(numbers), actual=numbers, details=details
    )


def rollback_line(proof: dict[str, Any]) -> str:
    """'rollback: proved by <method> in <seconds> s ...' or why not (also in the HTML)."""
    if not proof.get("proved"):
        return f"rollback: not proved: {proof.get('reason')}"
    return (
        f"rollback: proved by {proof['method']} in {proof['seconds']} s (restore "
        f"{proof['restore_seconds']} s, then {proof['tables']} tables compared with the source "
        f"as of the backup in {proof['parity_seconds']} s)"
    )


def rollback(migration: MigrationResult) -> CheckResult:
    """The way back: proved, not proved (a failure), or not attempted (a skip, saying why)."""
    proof = (migration.logical or {}).get("rollback")
    if proof is None:
        return _not_judged("cutover.rollback", migration)
    if proof.get("proved"):
        return outcome("cutover.rollback", AREA, True, rollback_line(proof), actual=proof)
    status = FAIL if proof.get("attempted") else SKIP
    return CheckResult(
        id="cutover.rollback",
        area=AREA,
        status=status,
        message=rollback_line(proof),
        actual=proof,
        remedy="the backup does not restore to the source's content: fix the backup before "
        "cutting over"
        if status == FAIL
        else "",
    )


def _source_left(pair: Pair, migration: MigrationResult, settings: Settings) -> CheckResult:
    evidence = migration.logical or {}
    created = evidence.get("objects")
    removed = (evidence.get("clean_up") or {}).get("removed", [])
    left = left_on_source(pair.source, created, settings.phase_timeout) if created else []
    if left:
        drops = "; ".join(
            f"SELECT pg_drop_replication_slot('{item.split(' ', 1)[1]}')"
            if item.startswith("slot ")
            else f"DROP PUBLICATION {item.split(' ', 1)[1]}"
            for item in left
        )
        return outcome(
            "cutover.source_left_clean",
            AREA,
            False,
            f"left on the source: {', '.join(left)}; a slot keeps WAL there until the disk fills",
            actual=left,
            remedy=f"on the source: {drops}",
        )
    return outcome(
        "cutover.source_left_clean",
        AREA,
        True,
        "nothing of the migration is left on the source (removed: "
        f"{', '.join(removed) or 'nothing was created'})",
        actual=removed,
    )


def check(pair: Pair, settings: Settings, migration: MigrationResult) -> list[CheckResult]:
    """Every cutover result; one skip for the dump/restore strategies."""
    if migration.strategy != STRATEGY:
        return [
            CheckResult(
                "cutover",
                AREA,
                SKIP,
                f"no replication cutover in this run (strategy {migration.strategy}): "
                "--strategy=logical rehearses one",
            )
        ]
    return [
        replication(migration),
        switchover(migration),
        downtime(migration),
        rollback(migration),
        *guarded(
            "cutover.source_left_clean",
            AREA,
            lambda: [_source_left(pair, migration, settings)],
            pair,
        ),
    ]
