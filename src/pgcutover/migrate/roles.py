"""Roles: pg_dump of one database does not carry them, so the migration recreates the ones
the schema references, as a careful operator would: same attributes, connection limit,
per-role settings (Supabase sets statement_timeout on anon/authenticated) and memberships
among them (PostgREST logs in as `authenticator`, a member of anon/authenticated/
service_role), never SUPERUSER, never a copied password (login roles get theirs from the
owner). BYPASSRLS and REPLICATION are given only where the restoring role may give them (a
managed server's owner may not): the platform check reports each one left out with its
consequence. Roles the target already has are left untouched; the schema checks report any
difference in their attributes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgcutover.migrate.capabilities import PRIVILEGED_ATTRIBUTES, Capabilities, capabilities

#: Every role the dump's objects name: owners, grantees (tables, columns, sequences,
#: functions, types, schemas, large objects, default privileges), policy roles, event
#: trigger owners; then the direct members of those roles (the login roles that act as them).
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
    UNION SELECT (aclexplode(a.attacl)).grantee FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
          WHERE a.attacl IS NOT NULL
    UNION SELECT p.proowner FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
    UNION SELECT (aclexplode(p.proacl)).grantee FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
          WHERE p.proacl IS NOT NULL
    UNION SELECT t.typowner FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
    UNION SELECT (aclexplode(t.typacl)).grantee FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
          WHERE t.typacl IS NOT NULL
    UNION SELECT unnest(pol.polroles) FROM pg_policy pol
          JOIN pg_class c ON c.oid = pol.polrelid JOIN ns ON ns.oid = c.relnamespace
    UNION SELECT d.defaclrole FROM pg_default_acl d
          WHERE d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM ns)
    UNION SELECT (aclexplode(d.defaclacl)).grantee FROM pg_default_acl d
          WHERE d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM ns)
    UNION SELECT lomowner FROM pg_largeobject_metadata
    UNION SELECT (aclexplode(lomacl)).grantee FROM pg_largeobject_metadata
          WHERE lomacl IS NOT NULL
    UNION SELECT evtowner FROM pg_event_trigger
), carried AS (
    SELECT oid FROM referenced
    UNION SELECT m.member FROM pg_auth_members m JOIN referenced ON referenced.oid = m.roleid
)
SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolbypassrls, r.rolcreatedb, r.rolcreaterole,
       r.rolsuper, r.rolreplication, r.rolconnlimit
FROM pg_roles r JOIN carried ON carried.oid = r.oid
ORDER BY r.rolname
"""

#: Per-role settings: for every database (setdatabase = 0) and for this one.
ROLE_SETTINGS = """
SELECT r.rolname, s.setdatabase = 0, s.setconfig
FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
WHERE r.rolname = ANY(%(names)s)
  AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
"""

#: Memberships among the given roles; INHERIT / SET options exist from PostgreSQL 16, and so
#: do the grants PostgreSQL makes itself when a CREATEROLE role creates a role: ADMIN from the
#: bootstrap superuser (oid 10) and createrole_self_grant's grants from the creator.
MEMBERSHIPS = """
SELECT g.rolname, m.rolname, bool_or(am.admin_option), {inherit}, {set}, {implicit}
FROM pg_auth_members am
JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
WHERE g.rolname = ANY(%(names)s) AND m.rolname = ANY(%(names)s)
GROUP BY 1, 2
ORDER BY 1, 2
"""

#: Settings whose value is a list of quoted names (pg_dumpall quotes each element).
LIST_SETTINGS = frozenset(
    {
        "local_preload_libraries",
        "search_path",
        "session_preload_libraries",
        "shared_preload_libraries",
        "temp_tablespaces",
        "unix_socket_directories",
    }
)


@dataclass(frozen=True)
class Membership:
    """`role` granted to `member`; inherit/set are None before PostgreSQL 16."""

    role: str
    member: str
    admin: bool
    inherit: bool | None
    set: bool | None
    #: Granted by PostgreSQL itself because `member` created `role` (CREATEROLE).
    implicit: bool = False


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
    replication: bool
    connection_limit: int = -1
    #: `name=value` settings for every database, and for the migrated database only.
    config: tuple[str, ...] = ()
    database_config: tuple[str, ...] = ()
    #: Memberships with the other carried roles, in either direction.
    memberships: tuple[Membership, ...] = ()

    def withheld(self, may: Capabilities) -> list[str]:
        """The source's SUPERUSER / BYPASSRLS / REPLICATION the restoring role cannot give."""
        return [
            name
            for name in PRIVILEGED_ATTRIBUTES
            if getattr(self, name) and not may.grantable(name)
        ]

    def create_statement(self, may: Capabilities) -> sql.Composed:
        """CREATE ROLE with the same attributes, less those `may` cannot give (never
        SUPERUSER), no password."""
        withheld = self.withheld(may)
        flags = [
            "LOGIN" if self.login else "NOLOGIN",
            "INHERIT" if self.inherit else "NOINHERIT",
            "BYPASSRLS" if self.bypassrls and "bypassrls" not in withheld else "NOBYPASSRLS",
            "REPLICATION"
            if self.replication and "replication" not in withheld
            else "NOREPLICATION",
            "CREATEDB" if self.createdb else "NOCREATEDB",
            "CREATEROLE" if self.createrole else "NOCREATEROLE",
        ]
        return sql.SQL("CREATE ROLE {} {} CONNECTION LIMIT {}").format(
            sql.Identifier(self.name), sql.SQL(" ".join(flags)), sql.Literal(self.connection_limit)
        )


def _membership_query(conn: psycopg.Connection) -> str:
    if conn.info.server_version >= 160000:
        return MEMBERSHIPS.format(
            inherit="bool_or(am.inherit_option)",
            set="bool_or(am.set_option)",
            implicit="bool_and(am.grantor = am.member OR (am.grantor = 10 AND am.admin_option"
            " AND NOT m.rolsuper AND m.rolcreaterole))",
        )
    return MEMBERSHIPS.format(inherit="NULL::boolean", set="NULL::boolean", implicit="false")


def role_memberships(conn: psycopg.Connection, names: Sequence[str]) -> list[Membership]:
    """Memberships between the named roles on this server."""
    rows = conn.execute(_membership_query(conn), {"names": list(names)}).fetchall()  # type: ignore[arg-type]
    return [Membership(*row) for row in rows]


def role_settings(
    conn: psycopg.Connection, names: Sequence[str]
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """name -> (settings for every database, settings for this database)."""
    found: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for name, everywhere, config in conn.execute(ROLE_SETTINGS, {"names": list(names)}):
        general, local = found.get(name, ((), ()))
        if everywhere:
            general = tuple(sorted(config))
        else:
            local = tuple(sorted(config))
        found[name] = (general, local)
    return found


def referenced_roles(conn: psycopg.Connection, ignored: Sequence[str]) -> list[RoleSpec]:
    """Roles that own or are granted something in the migrated schemas, name a policy, or
    are direct members of such a role; with their settings and memberships."""
    rows = conn.execute(REFERENCED_ROLES, {"ignored": list(ignored)}).fetchall()
    names = [row[0] for row in rows]
    settings = role_settings(conn, names)
    memberships = role_memberships(conn, names)
    return [
        RoleSpec(
            *row,
            config=settings.get(row[0], ((), ()))[0],
            database_config=settings.get(row[0], ((), ()))[1],
            memberships=tuple(m for m in memberships if row[0] in (m.role, m.member)),
        )
        for row in rows
    ]


def missing_roles(conn: psycopg.Connection, wanted: Sequence[RoleSpec]) -> list[RoleSpec]:
    """The wanted roles the target server lacks."""
    present = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    return [role for role in wanted if role.name not in present]


def set_clause(entry: str) -> sql.Composed:
    """`SET name TO value` from a pg_db_role_setting entry `name=value`, quoting list
    settings element by element as pg_dumpall does."""
    name, _, value = entry.partition("=")
    if name in LIST_SETTINGS:
        items = [item.strip().strip('"') for item in value.split(",") if item.strip()]
        rendered = sql.SQL(", ").join(sql.Literal(item) for item in items)
    else:
        rendered = sql.Literal(value)
    return sql.SQL("SET {} TO {}").format(
        sql.SQL(".").join(sql.Identifier(part) for part in name.split(".")), rendered
    )


def setting_statement(role: str, entry: str, database: str | None) -> sql.Composed:
    """ALTER ROLE ... [IN DATABASE ...] SET name = value, from a pg_db_role_setting entry."""
    scope = sql.SQL(" IN DATABASE {}").format(sql.Identifier(database)) if database else sql.SQL("")
    return sql.SQL("ALTER ROLE {}{} {}").format(sql.Identifier(role), scope, set_clause(entry))


def database_setting_statement(database: str, entry: str) -> sql.Composed:
    """ALTER DATABASE ... SET name = value, from a pg_db_role_setting entry."""
    return sql.SQL("ALTER DATABASE {} {}").format(sql.Identifier(database), set_clause(entry))


def grant_statement(membership: Membership, server_version: int) -> sql.Composed:
    """GRANT role TO member with the source's options (INHERIT/SET need PostgreSQL 16)."""
    options = []
    if membership.admin:
        options.append(sql.SQL("ADMIN TRUE" if server_version >= 160000 else "ADMIN OPTION"))
    if server_version >= 160000:
        for label, value in (("INHERIT", membership.inherit), ("SET", membership.set)):
            if value is not None:
                options.append(sql.SQL(f"{label} {'TRUE' if value else 'FALSE'}"))
    grant = sql.SQL("GRANT {} TO {}").format(
        sql.Identifier(membership.role), sql.Identifier(membership.member)
    )
    if not options:
        return grant
    return sql.SQL("{} WITH {}").format(grant, sql.SQL(", ").join(options))


def _new_memberships(roles: Iterable[RoleSpec]) -> list[Membership]:
    return sorted({m for role in roles for m in role.memberships}, key=lambda m: (m.role, m.member))


def _copy_settings(conn: psycopg.Connection, role: RoleSpec, database: str) -> list[str]:
    """Apply the role's settings; one the connecting role may not set becomes a note."""
    copied, notes = [], []
    scoped = [(entry, None) for entry in role.config]
    scoped += [(entry, database) for entry in role.database_config]
    for entry, scope in scoped:
        try:
            conn.execute(setting_statement(role.name, entry, scope))
            copied.append(entry)
        except psycopg.errors.InsufficientPrivilege as error:
            notes.append(
                f"role {role.name}: setting {entry} not copied ({error.diag.message_primary}); "
                "a superuser must set it"
            )
    if copied:
        notes.append(f"role {role.name}: settings copied from the source ({', '.join(copied)})")
    return notes


def create_roles(conn: psycopg.Connection, roles: Sequence[RoleSpec]) -> list[str]:
    """Create roles on the target with their settings and the source's memberships that
    involve them; returns notes for the report (login roles need passwords).

    A restoring role that is not a superuser gets SET and INHERIT on the roles it creates
    (createrole_self_grant, this session only): the restore makes them own objects, which
    PostgreSQL allows only to a role that can become the new owner."""
    notes = []
    may = capabilities(conn)
    database = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
    if not may.superuser and may.server_version >= 160000:
        conn.execute("SET createrole_self_grant = 'set, inherit'")
    for role in roles:
        conn.execute(role.create_statement(may))
        notes += _copy_settings(conn, role, database)
        withheld = role.withheld(may)
        if withheld:
            notes.append(
                f"role {role.name} has {', '.join(a.upper() for a in withheld)} on the source; "
                f"created without it: {may.role} may not give it (see platform.role.{role.name})"
            )
        if role.login:
            notes.append(f"login role {role.name} was created without a password: set one")
    present = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    existing = {(m.role, m.member) for m in role_memberships(conn, sorted(present))}
    for membership in _new_memberships(roles):
        pair = (membership.role, membership.member)
        if pair in existing or not {membership.role, membership.member} <= present:
            continue
        conn.execute(grant_statement(membership, conn.info.server_version))
        notes.append(f"granted role {membership.role} to {membership.member}, as on the source")
    return notes
