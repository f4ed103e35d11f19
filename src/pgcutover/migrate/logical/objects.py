"""The replication objects a logical migration creates, recorded before each one exists so
any process can remove them later from the record alone: the publication and the slot on the
source (made through the one writable source connection, `source-admin`), the subscription on
the target, and the slots the subscription's table-copy workers open on the source
(`pg_<subscription oid>_sync_<table oid>_<system id>`).

A slot left on the source keeps WAL there until the disk fills: `clean_up` runs at the end of
every migration, after a failure, and from the run's work folder at the end of the session or
on a signal (`clean_up_folder`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgcutover.db import Endpoint
from pgcutover.errors import MigrationError, PgcutoverError
from pgcutover.migrate.tools import bounded
from pgcutover.private import write_json

RECORD_GLOB = "replication-*.json"
#: Seconds a slot may stay in use by its (ending) WAL sender before that sender is stopped.
RELEASE_SECONDS = 10.0
#: Seconds each clean-up step may take: DROP SUBSCRIPTION during the initial copy connects
#: to the source to drop the copy workers' slots (10 s connect timeout when it cannot).
CLEAN_UP_SECONDS = 30.0

#: Where a subscription points just before it is dropped: with tables still copying, DROP
#: SUBSCRIPTION connects to the source to drop their slots, and on a stalled network it
#: would wait without limit; a missing socket fails at once, and pgcutover drops those
#: slots on the source itself. (The password only satisfies password_required.)
NOWHERE = sql.Literal("host=/nonexistent-pgcutover-socket-dir password=unused")

SLOTS = """
SELECT slot_name, active_pid FROM pg_replication_slots
WHERE database = current_database() AND (slot_name = %s OR starts_with(slot_name, %s))
ORDER BY 1
"""


@dataclass
class Replication:
    """One migration's publication, slot and subscription (they share `name`), the two
    endpoints they live on, and the file that records them (readable by this user only:
    the endpoints carry passwords)."""

    name: str
    source: Endpoint
    target: Endpoint
    path: Path
    subscription_oid: int | None = None
    created: list[str] = field(default_factory=list)

    @property
    def sync_prefix(self) -> str:
        """How the names of the table-copy workers' slots start; until the subscription's
        oid is known, the slot's own name (which then matches only itself)."""
        return f"pg_{self.subscription_oid}_sync_" if self.subscription_oid else self.name

    def objects(self) -> dict[str, Any]:
        """The names the report shows and the leftover check looks for."""
        return {
            "publication": self.name,
            "slot": self.name,
            "subscription": self.name,
            "sync_slot_prefix": self.sync_prefix,
        }

    def intend(self, what: str) -> None:
        """Record an object before creating it, so a crash right after still names it."""
        self.created.append(what)
        self.save()

    def save(self) -> None:
        data = {
            "name": self.name,
            "source": asdict(self.source),
            "target": asdict(self.target),
            "subscription_oid": self.subscription_oid,
            "created": self.created,
        }
        write_json(self.path, data)

    @classmethod
    def load(cls, path: Path) -> Replication:
        data = json.loads(path.read_text())
        return cls(
            name=data["name"],
            source=Endpoint.from_json(data["source"]),
            target=Endpoint.from_json(data["target"]),
            path=path,
            subscription_oid=data["subscription_oid"],
            created=list(data["created"]),
        )


def create_publication(
    replication: Replication, tables: Sequence[tuple[str, str]], timeout: float
) -> None:
    """The publication for the app's tables and a logical slot on the source: the only
    writes pgcutover makes there (through `source-admin`, once they are allowed)."""
    name = sql.Identifier(replication.name)
    listed = sql.SQL(", ").join(sql.Identifier(schema, table) for schema, table in tables)
    with bounded(replication.source, "source-admin", "publication", timeout) as conn:
        replication.intend("publication")
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(name, listed))
        replication.intend("slot")
        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (replication.name,)
        )


def subscription_conninfo(source: Endpoint) -> str:
    """How the target server reaches the source (stored in the target's pg_subscription,
    readable by superusers only, and dropped with the subscription at the switchover), with
    the DSN's further parameters (files they name must exist on the target's server)."""
    return psycopg.conninfo.make_conninfo(
        **dict(source.params),
        host=source.host,
        port=str(source.port),
        dbname=source.dbname,
        user=source.user,
        password=source.password,
        sslmode=source.sslmode,
        connect_timeout="10",
    )


def create_subscription(replication: Replication, timeout: float) -> None:
    """A subscription on the target that streams from the slot and copies every table."""
    statement = sql.SQL(
        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
        "WITH (create_slot = false, slot_name = {}, copy_data = true, streaming = on)"
    ).format(
        sql.Identifier(replication.name),
        sql.Literal(subscription_conninfo(replication.source)),
        sql.Identifier(replication.name),
        sql.Literal(replication.name),
    )
    with bounded(replication.target, "target", "subscription", timeout) as conn:
        replication.intend("subscription")
        # Durable at once whatever the server's default: a crash right after must not lose
        # it (what the subscription applies is re-sent after a crash; the subscription not).
        conn.execute("SET synchronous_commit = on")
        try:
            conn.execute(statement)
        except psycopg.Error as error:
            raise MigrationError(
                "CREATE SUBSCRIPTION failed on the target: "
                + replication.source.redact(str(error).strip()),
                f"the target server itself must reach the source at {replication.source.host}:"
                f"{replication.source.port} (network, pg_hba.conf, the user's REPLICATION "
                "privilege, certificate files the DSN names)",
                phase="subscription",
            ) from None
        row = conn.execute(
            "SELECT oid FROM pg_subscription WHERE subname = %s", (replication.name,)
        ).fetchone()
    replication.subscription_oid = int(row[0])  # type: ignore[index]
    replication.save()


def drop_subscription(replication: Replication, timeout: float, phase: str) -> bool:
    """Stop and drop the subscription, detached from its slot (ours to drop on the source);
    False when there was none."""
    with bounded(replication.target, "target", phase, timeout) as conn:
        row = conn.execute(
            "SELECT oid FROM pg_subscription WHERE subname = %s", (replication.name,)
        ).fetchone()
        if row is None:
            return False
        replication.subscription_oid = replication.subscription_oid or int(row[0])
        name = sql.Identifier(replication.name)
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(name))
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name))
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(name, NOWHERE))
        conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))
    return True


def _release(conn: psycopg.Connection, slot: str, pid: int | None) -> None:
    """Wait for the WAL sender using `slot` to end (its subscription is gone); stop it
    when it lingers (a stalled network keeps it waiting)."""
    deadline = time.monotonic() + RELEASE_SECONDS
    while pid is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        pid = row[0] if row else None
    if pid is not None:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)


def drop_source_objects(replication: Replication, timeout: float) -> list[str]:
    """Drop the slot, any table-copy slot and the publication; returns what was dropped."""
    dropped = []
    with bounded(replication.source, "source-admin", "clean-up", timeout) as conn:
        for slot, pid in conn.execute(
            SLOTS, (replication.name, replication.sync_prefix)
        ).fetchall():
            _release(conn, slot, pid)
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            dropped.append(f"slot {slot}")
        exists = conn.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", (replication.name,)
        ).fetchone()
        if exists:
            conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(replication.name)))
            dropped.append(f"publication {replication.name}")
    return dropped


@dataclass(frozen=True)
class CleanUp:
    """What a clean-up found and removed, and what it could not remove (with why)."""

    removed: list[str]
    failed: list[str]

    def to_json(self) -> dict[str, list[str]]:
        return {"removed": self.removed, "failed": self.failed}


def clean_up(replication: Replication, timeout: float = CLEAN_UP_SECONDS) -> CleanUp:
    """Remove whatever the record names that still exists: the subscription first (it holds
    the slot), then the source's slots and publication. The record is deleted once nothing
    is left; otherwise it stays for the next attempt."""
    removed, failed = [], []
    if "subscription" in replication.created:
        try:
            if drop_subscription(replication, timeout, "clean-up"):
                removed.append(f"subscription {replication.name}")
        except (PgcutoverError, psycopg.Error) as error:
            failed.append(f"subscription {replication.name} on the target: {_reason(error)}")
    if {"publication", "slot"} & set(replication.created):
        try:
            removed += drop_source_objects(replication, timeout)
        except (PgcutoverError, psycopg.Error) as error:
            failed.append(
                f"slot and publication {replication.name} on the source: {_reason(error)}"
            )
    if not failed:
        with contextlib.suppress(FileNotFoundError):
            replication.path.unlink()
    return CleanUp(removed, failed)


def _reason(error: Exception) -> str:
    return getattr(error, "problem", None) or str(error).strip()


def clean_up_folder(folder: Path, timeout: float = CLEAN_UP_SECONDS) -> list[CleanUp]:
    """Clean up every migration recorded in `folder` (a run's work folder)."""
    return [clean_up(Replication.load(path), timeout) for path in sorted(folder.glob(RECORD_GLOB))]


def left_on_source(source: Endpoint, objects: dict[str, Any], timeout: float) -> list[str]:
    """The slots and publication named by `objects` that still exist (read-only)."""
    names = (objects["slot"], objects["sync_slot_prefix"])
    with bounded(source, "source", "clean-up", timeout) as conn:
        slots = [row[0] for row in conn.execute(SLOTS, names).fetchall()]
        publication = conn.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", (objects["publication"],)
        ).fetchone()
    return [f"slot {slot}" for slot in slots] + (
        [f"publication {objects['publication']}"] if publication else []
    )
