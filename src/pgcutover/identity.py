"""Who a server is, decided from what it says about itself, never from how its address is
spelled: `127.1`, `LOCALHOST`, a socket directory, `::ffff:127.0.0.1`, a DNS name and its IP,
a pooler or a TCP proxy in front of the same server all reach one database.

A session on the source is tagged with a random `application_name` and looked up in the
target's `pg_stat_activity` (any role sees other sessions' application_name there); where the
roles may read it, the system identifier together with the postmaster's start time says the
same. Two databases on one server are allowed, but the migration then leaves alone what the
server shares with the source (roles and their settings)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import psycopg

from pgcutover.db import Endpoint, connection
from pgcutover.errors import PgcutoverError

FACTS = "SELECT current_database(), pg_postmaster_start_time()::text"
SYSTEM_IDENTIFIER = "SELECT system_identifier::text FROM pg_control_system()"


class SameDatabase(PgcutoverError):
    """The target is the source: nothing may be written, nothing compared."""


@dataclass(frozen=True)
class Relation:
    """How the two sides relate, and the evidence for it."""

    same_server: bool
    same_database: bool
    evidence: str


def _system_identifier(conn: psycopg.Connection) -> str | None:
    """The cluster's system identifier, or None where the role may not read it."""
    try:
        row = conn.execute(SYSTEM_IDENTIFIER).fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def relation(source: Endpoint, target: Endpoint) -> Relation:
    """Connect to both sides and decide whether they are one server, or one database."""
    tag = f"pgcutover-identity-{secrets.token_hex(8)}"
    with (
        connection(source, role="source", application_name=tag) as src,
        connection(target, role="target") as dst,
    ):
        seen = [
            row[0]
            for row in dst.execute(
                "SELECT datname FROM pg_stat_activity WHERE application_name = %s", (tag,)
            ).fetchall()
        ]
        source_db, source_started = src.execute(FACTS).fetchone()  # type: ignore[misc]
        target_db, target_started = dst.execute(FACTS).fetchone()  # type: ignore[misc]
        source_id, target_id = _system_identifier(src), _system_identifier(dst)
    if seen:
        same_database = seen[0] == target_db
        evidence = (
            f"the target's pg_stat_activity shows pgcutover's session on the source "
            f"(database {seen[0]})"
        )
        return Relation(True, same_database, evidence)
    if source_id is not None and source_id == target_id and source_started == target_started:
        evidence = (
            f"both report system identifier {source_id} and a postmaster started at "
            f"{source_started}"
        )
        return Relation(True, source_db == target_db, evidence)
    return Relation(False, False, "different servers: neither sees the other's session")


def refuse_same_database(source: Endpoint, target: Endpoint) -> Relation:
    """The relation of the two sides; raises SameDatabase when the target is the source."""
    found = relation(source, target)
    if found.same_database:
        raise SameDatabase(
            f"the target {target.label} ({target.safe_dsn()}) is the source {source.label} "
            f"({source.safe_dsn()}) under another name: {found.evidence}; nothing was written",
            "point the target at a different database (another server, or another database "
            "on the same server)",
        )
    return found
