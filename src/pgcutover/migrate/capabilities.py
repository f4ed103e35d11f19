"""What the role a migration restores as may do on the target: a managed server never hands
out a superuser, so what it refuses must be known before the restore (the plan) and judged
after it (the platform findings), not discovered as a crash."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

ROLE = """
SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,
       r.rolreplication, has_database_privilege(current_database(), 'CREATE'),
       current_setting('server_version_num')::int, current_setting('wal_level')
FROM pg_roles r WHERE r.rolname = current_user
"""

#: Role attributes a managed server keeps to itself; the migration creates roles without
#: the ones the restoring role may not give.
PRIVILEGED_ATTRIBUTES = ("superuser", "bypassrls", "replication")


@dataclass(frozen=True)
class Capabilities:
    """The restoring role's attributes on the target server."""

    role: str
    superuser: bool
    createrole: bool
    createdb: bool
    bypassrls: bool
    replication: bool
    create_on_database: bool
    server_version: int
    wal_level: str

    def grantable(self, attribute: str) -> bool:
        """May this role create a role with `attribute`? Never SUPERUSER (pgcutover does not
        make superusers); BYPASSRLS and REPLICATION need a superuser, or from PostgreSQL 16 a
        CREATEROLE role that has the attribute itself."""
        if attribute == "superuser":
            return False
        if self.superuser:
            return True
        return self.createrole and self.server_version >= 160000 and bool(getattr(self, attribute))

    def describe(self) -> str:
        """`postgres (not a superuser; CREATEROLE, CREATEDB)` for plans and notes."""
        granted = [
            name.upper()
            for name in ("createrole", "createdb", "bypassrls", "replication")
            if getattr(self, name)
        ]
        kind = "superuser" if self.superuser else "not a superuser"
        return f"{self.role} ({kind}; {', '.join(granted) or 'no role attributes'})"

    def to_json(self) -> dict[str, Any]:
        """For the plan and signoff.json."""
        return asdict(self)


def capabilities(conn: psycopg.Connection) -> Capabilities:
    """The connected role's capabilities (read-only catalog queries)."""
    return Capabilities(*conn.execute(ROLE).fetchone())  # type: ignore[misc]
