"""How far the target is behind the source, measured on the source from the subscription's
slot: bytes of WAL the target has not applied yet, and for how long (the age of the oldest
change still waiting); the initial copy table by table; and waiting until the target has
applied everything up to a position.

Every reading opens its own short connection that is cut when it does not answer, so a
stalled network, a paused or restarting server shows up as a gap in the samples (and, past
the phase timeout, as a named stall), never as a hung migration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgcutover.db import DataRole, Endpoint
from pgcutover.errors import MigrationError, PgcutoverError
from pgcutover.migrate.tools import bounded

#: Seconds one reading may take before its connection is cut.
READ_TIMEOUT = 5.0
POLL_SECONDS = 0.1
#: XLOG_BLCKSZ (8192 on every common build) and the longest WAL page header.
WAL_PAGE = 8192
PAGE_HEADER = 40
#: What the target has applied: the WAL sender's reported apply position, else the slot's
#: confirmed position (while no WAL sender runs, e.g. during a fault).
POSITION = """
SELECT pg_current_wal_insert_lsn()::text,
       greatest(r.replay_lsn, s.confirmed_flush_lsn)::text,
       s.active_pid
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = %s
"""
TABLE_STATES = """
SELECT format('%%I.%%I', n.nspname, c.relname), r.srsubstate
FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE r.srsubid = %s
"""
ERRORS = """
SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats WHERE subid = %s
"""
#: pg_subscription_rel states: i(nit), d(ata copy), f(inished copy), s(ync), r(eady).
COPIED = {"s", "r"}
STATE_NAMES = {"i": "waiting", "d": "copying", "f": "copied", "s": "syncing", "r": "ready"}


def lsn(text: str) -> int:
    """'16/B374D848' as a byte position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def read(
    endpoint: Endpoint, role: DataRole, query: str, params: tuple[Any, ...]
) -> list[tuple[Any, ...]] | None:
    """One query on a fresh connection; None when the server does not answer in time."""
    try:
        with bounded(endpoint, role, "replication", READ_TIMEOUT) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]
    except (PgcutoverError, psycopg.Error):
        return None


@dataclass(frozen=True)
class Position:
    """Where the source's WAL ends and how far the target has applied it."""

    written: int
    applied: int
    streaming: bool

    @property
    def behind(self) -> int:
        return max(self.written - self.applied, 0)


def position(source: Endpoint, slot: str) -> Position | None:
    """The slot's position now, or None when the source cannot tell (slot gone, no answer)."""
    rows = read(source, "source", POSITION, (slot,))
    if not rows or rows[0][1] is None:
        return None
    written, applied, pid = rows[0]
    return Position(lsn(written), lsn(applied), pid is not None)


@dataclass
class LagSampler:
    """Samples the lag every `interval` seconds in a thread, from start() to stop().

    Seconds behind = now minus the time of the first sample whose WAL end lay beyond what
    the target has applied now (resolution: the interval)."""

    source: Endpoint
    slot: str
    interval: float
    clock: Callable[[], float]
    samples: list[dict[str, Any]] = field(default_factory=list)
    _written: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        """Take one sample (a gap when the source does not answer)."""
        now = self.clock()
        found = position(self.source, self.slot)
        if found is None:
            self.samples.append({"t": now, "bytes": None, "seconds": None, "streaming": False})
            return
        self._written.append((now, found.written))
        waiting = [moment for moment, written in self._written if written > found.applied]
        seconds = round(now - waiting[0], 3) if waiting and found.behind else 0.0
        self.samples.append(
            {"t": now, "bytes": found.behind, "seconds": seconds, "streaming": found.streaming}
        )


@dataclass
class TableCopy:
    """One table's initial copy as seen from the target (resolution: the poll interval)."""

    last_waiting: float
    done: float | None = None
    state: str = "i"

    @property
    def seconds(self) -> float | None:
        return None if self.done is None else round(self.done - self.last_waiting, 3)


def _copy_failure(
    target: Endpoint, subscription_oid: int, tables: dict[str, TableCopy], timeout: float
) -> MigrationError:
    pending = [
        f"{name} ({STATE_NAMES.get(t.state, t.state)})"
        for name, t in tables.items()
        if t.done is None
    ]
    errors = read(target, "target", ERRORS, (subscription_oid,))
    counted = ""
    if errors:
        counted = f"; the target counted {errors[0][1]} copy and {errors[0][0]} apply errors"
    return MigrationError(
        f"phase 'initial copy' stalled: not every table was copied within {timeout:.0f} s: "
        f"{', '.join(pending) or 'the target did not answer'}{counted}",
        "read the target's server log for the copy workers' errors, and check the path from "
        "the target server to the source (network, the source's max_wal_senders); raise "
        "--phase-timeout if the tables are simply that large",
        phase="initial copy",
    )


def wait_for_copy(
    target: Endpoint, subscription_oid: int, timeout: float, clock: Callable[[], float]
) -> dict[str, dict[str, Any]]:
    """Poll the target until every table is copied and in sync; per table, its seconds."""
    deadline = time.monotonic() + timeout
    tables: dict[str, TableCopy] = {}
    while time.monotonic() < deadline:
        now = clock()
        rows = read(target, "target", TABLE_STATES, (subscription_oid,))
        if rows == [] and tables:
            raise MigrationError(
                "phase 'initial copy' failed: the subscription is gone from the target",
                "something dropped it, or a crash lost it: rerun the migration",
                phase="initial copy",
            )
        for name, state in rows or []:
            table = tables.setdefault(name, TableCopy(now))
            table.state = state
            if state == "i":
                table.last_waiting = now
            elif state in COPIED and table.done is None:
                table.done = now
        if tables and all(table.done is not None for table in tables.values()):
            return {name: {"seconds": table.seconds} for name, table in sorted(tables.items())}
        time.sleep(POLL_SECONDS)
    raise _copy_failure(target, subscription_oid, tables, timeout)


def written(source: Endpoint, phase: str) -> int:
    """Where the source's WAL ends now (everything committed so far lies before it)."""
    rows = read(source, "source", "SELECT pg_current_wal_insert_lsn()::text", ())
    if not rows:
        raise MigrationError(
            f"phase {phase!r} stalled: the source did not answer, so what the target must have "
            "applied is unknown",
            "check the source and the network path to it, then rerun",
            phase=phase,
        )
    return lsn(rows[0][0])


def wait_applied(source: Endpoint, slot: str, until: int, timeout: float, phase: str) -> float:
    """Wait until the target has applied the source's WAL up to `until`; returns seconds.

    A WAL position read right after a record that filled a page points past the next page's
    header, where no record ends: `until` is moved back to the page start then."""
    started = time.monotonic()
    offset = until % WAL_PAGE
    if 0 < offset <= PAGE_HEADER:
        until -= offset
    last: Position | None = None
    while time.monotonic() - started < timeout:
        last = position(source, slot) or last
        if last is not None and last.applied >= until:
            return round(time.monotonic() - started, 3)
        time.sleep(POLL_SECONDS)
    behind = f"{until - last.applied:,} bytes behind" if last else "its position unknown"
    streaming = "streaming" if last and last.streaming else "no replication connection"
    raise MigrationError(
        f"phase {phase!r} stalled: the target had not applied everything the source wrote "
        f"within {timeout:.0f} s ({behind}, {streaming})",
        "check the replication path from the target server to the source and the target's "
        "server log (apply errors); raise --phase-timeout if the target is simply slow",
        phase=phase,
    )


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak and final lag, and how many readings failed."""
    seen = [sample for sample in samples if sample["bytes"] is not None]
    return {
        "readings": len(samples),
        "unanswered": len(samples) - len(seen),
        "max_bytes": max((s["bytes"] for s in seen), default=None),
        "max_seconds": max((s["seconds"] for s in seen), default=None),
    }
