"""Roles: pg_dump of one database does not carry them, so the migration recreates the ones
the schema references, as a careful operator would: same attributes, never SUPERUSER, never
a copied password (login roles must get theirs from the owner)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

REFERENCED_ROLES = """
WITH ns AS (
    SELECT oid, nspname, nspowner, nspacl FROM pg_namespace
    WHERE nspname <> ALL(%(ignored)s) AND nspname !~ '^pg_(temp|toast_temp)_'
), referenced AS (
    SELECT nspowner AS oid FROM ns
    UNION SELECT (aclexplode(nspacl)).grantee FROM ns WHERE nspacl IS NOT NULL
    UNION SELECT c.relowner FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
    UNION SELECT (aclexplode(c.relacl)).grantee FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
          WHERE c.relacl IS NOT NULL
    UNION SELECT p.proowner FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
    UNION SELECT (aclexplode(p.proacl)).grantee FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
          WHERE p.proacl IS NOT NULL
    UNION SELECT unnest(pol.polroles) FROM pg_policy pol
          JOIN pg_class c ON c.oid = pol.polrelid JOIN ns ON ns.oid = c.relnamespace
)
SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolbypassrls, r.rolcreatedb, r.rolcreaterole,
       r.rolsuper
FROM pg_roles r JOIN referenced ON referenced.oid = r.oid
ORDER BY r.rolname
"""


@dataclass(frozen=True)
class RoleSpec:
    """A role as the source has it, minus anything that must not be copied."""

    name: str
    login: bool
    inherit: bool
    bypassrls: bool
    createdb: bool
    createrole: bool
    superuser: bool

    def create_statement(self) -> sql.Composed:
        """CREATE ROLE with the same attributes, never SUPERUSER, no password."""
        flags = [
            "LOGIN" if self.login else "NOLOGIN",
            "INHERIT" if self.inherit else "NOINHERIT",
            "BYPASSRLS" if self.bypassrls else "NOBYPASSRLS",
            "CREATEDB" if self.createdb else "NOCREATEDB",
            "CREATEROLE" if self.createrole else "NOCREATEROLE",
        ]
        return sql.SQL("CREATE ROLE {} {}").format(
            sql.Identifier(self.name), sql.SQL(" ".join(flags))
        )


def referenced_roles(conn: psycopg.Connection, ignored: Sequence[str]) -> list[RoleSpec]:
    """Roles that own or are granted something in the migrated schemas, or name a policy."""
    rows = conn.execute(REFERENCED_ROLES, {"ignored": list(ignored)}).fetchall()
    return [RoleSpec(*row) for row in rows]


def missing_roles(conn: psycopg.Connection, wanted: Sequence[RoleSpec]) -> list[RoleSpec]:
    """The wanted roles the target server lacks."""
    present = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    return [role for role in wanted if role.name not in present]


def create_roles(conn: psycopg.Connection, roles: Sequence[RoleSpec]) -> list[str]:
    """Create roles on the target; returns notes for the report (login roles need passwords)."""
    notes = []
    for role in roles:
        conn.execute(role.create_statement())
        if role.superuser:
            notes.append(f"role {role.name} is a superuser on the source; created without it")
        if role.login:
            notes.append(f"login role {role.name} was created without a password: set one")
    return notes
