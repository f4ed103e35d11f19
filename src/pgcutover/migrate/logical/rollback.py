"""The way back, proved instead of promised: the backup the guide takes before migrating
(`pg_dump -Fc` of the source) is restored into a scratch server and compared, row by row,
with the source as of the backup's snapshot. Its restore time plus the backup's dump time is
also the dump/restore window the same database needs, the downtime logical replication
avoids."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import psycopg

from pgcutover.catalog import server_version
from pgcutover.checks import content
from pgcutover.checks.base import Pair, failures
from pgcutover.config import Settings
from pgcutover.db import Endpoint
from pgcutover.errors import PgcutoverError
from pgcutover.inventory import Inventory
from pgcutover.migrate.archive import restore
from pgcutover.migrate.roles import create_roles, missing_roles, referenced_roles
from pgcutover.migrate.tools import bounded

PHASE = "rollback proof"
#: A server the proof may restore into, created for it and removed after it.
Scratch = Callable[[], AbstractContextManager[Endpoint]]


def _restore_backup(
    source: Endpoint, scratch: Endpoint, archive: Path, settings: Settings, flavor: str
) -> str:
    """Roles the dump names, then the whole archive with the tools that made it; returns
    the scratch server's version."""
    timeout = settings.phase_timeout
    with bounded(source, "source", PHASE, timeout) as conn:
        wanted = referenced_roles(conn, settings.ignored_schemas)
    with bounded(scratch, "target", PHASE, timeout) as conn:
        create_roles(conn, missing_roles(conn, wanted))
        version = server_version(conn)
    restore(scratch, archive, settings, PHASE, [f"--jobs={settings.jobs}"], flavor)
    return version


def prove(
    source: Endpoint,
    inventory: Inventory,
    snapshot: str,
    archive: Path,
    settings: Settings,
    scratch: Scratch,
    flavor: str,
) -> dict[str, Any]:
    """Restore the backup (made by `flavor`'s pg_dump) into a scratch server and compare it
    with the source at `snapshot` (still held by the caller); `inventory` is the source's."""
    method = "restoring the pre-migration pg_dump -Fc backup into a scratch server"
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            server = stack.enter_context(scratch())
        except PgcutoverError as error:
            reason = f"no scratch server to restore into: {error.problem}"
            return {"proved": False, "attempted": False, "method": method, "reason": reason}
        began = time.monotonic()
        try:
            version = _restore_backup(source, server, archive, settings, flavor)
            restored = time.monotonic()
            pair = Pair(source, server, inventory)
            results = content.compare(pair, settings, source_snapshot=snapshot)
        except (PgcutoverError, psycopg.Error) as error:
            reason = getattr(error, "problem", None) or source.redact(str(error).strip())
            return {"proved": False, "attempted": True, "method": method, "reason": reason}
    finished = time.monotonic()
    differing = [f"{result.id}: {result.message}" for result in failures(results)]
    return {
        "proved": not differing,
        "attempted": True,
        "method": f"{method} (PostgreSQL {version})",
        "seconds": round(finished - started, 3),
        "restore_seconds": round(restored - began, 3),
        "parity_seconds": round(finished - restored, 3),
        "tables": len(results),
        "differences": differing[:10],
        "reason": "" if not differing else f"{len(differing)} table(s) differ from the source",
    }
