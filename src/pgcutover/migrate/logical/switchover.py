"""The switchover as an operator does it: stop the writes, wait until the target has applied
everything the source wrote, move the sequences past their columns' values (logical
replication does not carry sequences), drop the subscription. From the writes stopping to
the subscription gone is the write pause the application sees."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from psycopg import sql

from pgcutover.catalog import user_schemas
from pgcutover.checks.schema.common import snapshot
from pgcutover.checks.schema.sequences import column_extremes, read_sequences
from pgcutover.config import Settings
from pgcutover.db import Endpoint
from pgcutover.migrate.logical.objects import Replication, drop_subscription
from pgcutover.migrate.logical.progress import wait_applied, written
from pgcutover.migrate.tools import bounded

PHASE = "switchover"


def move_sequences(
    source: Endpoint, target: Endpoint, settings: Settings
) -> dict[str, dict[str, int]]:
    """Set every target sequence to hand out next the greater of the source's next value and
    one step past the largest value its columns hold on the target (least, descending)."""
    with bounded(source, "source", PHASE, settings.phase_timeout) as conn:
        schemas = user_schemas(conn, settings.ignored_schemas)
    with snapshot(source, "source", schemas) as side:
        on_source = read_sequences(side)
    with snapshot(target, "target", schemas) as side:
        on_target, users = read_sequences(side), column_extremes(side)
    moved = {}
    with bounded(target, "target", PHASE, settings.phase_timeout) as conn:
        for name, spec in sorted(on_target.items()):
            if name not in on_source:
                continue
            step = spec["increment"]
            wanted = [on_source[name]["_next"]]
            wanted += [value + step for _, value, _ in users.get(name, []) if value is not None]
            position = max(wanted) if step > 0 else min(wanted)
            if position == spec["_next"]:
                continue
            conn.execute(
                sql.SQL("SELECT setval({}::regclass, {}, false)").format(
                    sql.Literal(spec["_sql"]), sql.Literal(position)
                )
            )
            moved[name] = {"from": spec["_next"], "to": position}
    return moved


def switch_over(
    replication: Replication,
    settings: Settings,
    stop_writes: Callable[[], None],
    *,
    move: bool = True,
) -> dict[str, Any]:
    """Run the switchover; returns its evidence (the write pause in seconds first)."""
    stop_writes()
    stopped = time.monotonic()
    until = written(replication.source, PHASE)
    timeout = settings.phase_timeout
    caught_up = wait_applied(replication.source, replication.name, until, timeout, PHASE)
    moved = move_sequences(replication.source, replication.target, settings) if move else None
    drop_subscription(replication, timeout, PHASE)
    return {
        "write_pause_seconds": round(time.monotonic() - stopped, 3),
        "catch_up_seconds": caught_up,
        "writes_stopped_at_lsn": f"{until >> 32:X}/{until & 0xFFFFFFFF:X}",
        "sequences_moved": moved,
    }
