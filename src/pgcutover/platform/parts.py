"""Discovery of the platform parts on one side, read-only: publications, event triggers,
Vault secret names (never their values), Storage objects per bucket, GoTrue's auth schema and
what reads the caller's JWT, and the tables whose row-level security binds a role."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from pgcutover.checks.schema.common import not_extension_member


@dataclass(frozen=True)
class Publication:
    """A logical-replication publication (Supabase Realtime streams one)."""

    oid: int
    name: str
    owner: str
    all_tables: bool
    actions: str
    tables: tuple[str, ...]
    schemas: tuple[str, ...]

    @property
    def needs_superuser(self) -> bool:
        """FOR ALL TABLES and FOR TABLES IN SCHEMA publications are superuser-only."""
        return self.all_tables or bool(self.schemas)

    def describe(self) -> str:
        """`publication supabase_realtime (insert, update, delete, truncate of public.documents)`"""
        if self.all_tables:
            scope = "all tables"
        else:
            scope = ", ".join([*self.tables, *(f"tables in schema {s}" for s in self.schemas)])
        return f"publication {self.name} ({self.actions} of {scope or 'no tables yet'})"


@dataclass(frozen=True)
class EventTrigger:
    """A database-wide trigger on DDL: only a superuser may create one."""

    oid: int
    name: str
    event: str
    function: str
    tags: tuple[str, ...]
    enabled: str

    def describe(self) -> str:
        """`event trigger pgrst_ddl_watch runs extensions.pgrst_ddl_watch() on ddl_command_end`"""
        tags = f" for {', '.join(self.tags)}" if self.tags else ""
        return f"event trigger {self.name} runs {self.function} on {self.event}{tags}"


@dataclass(frozen=True)
class Bucket:
    """A Storage bucket: its objects' metadata is in the database, their bytes are not."""

    name: str
    objects: int
    bytes: int
    #: Objects whose metadata gives no size (their bytes are not in `bytes`).
    unsized: int = 0


@dataclass(frozen=True)
class Auth:
    """GoTrue's auth schema and what depends on the platform that fills the JWT claims."""

    tables: tuple[str, ...]
    owners: tuple[str, ...]
    claim_readers: tuple[str, ...]
    policies: tuple[str, ...]


@dataclass(frozen=True)
class RlsTable:
    """A table with row-level security: who owns it, whether FORCE binds the owner, and the
    roles its policies name (PUBLIC included)."""

    name: str
    owner: str
    forced: bool
    policy_roles: tuple[str, ...]

    def binds(self, role: str) -> bool:
        """True when its policies apply to `role` once it has neither SUPERUSER nor
        BYPASSRLS (an owner escapes them unless FORCE is on)."""
        return role != self.owner or self.forced


PUBLICATIONS = """
SELECT p.oid, p.pubname, pg_get_userbyid(p.pubowner), p.puballtables,
       concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END,
                 CASE WHEN p.pubupdate THEN 'update' END,
                 CASE WHEN p.pubdelete THEN 'delete' END,
                 CASE WHEN p.pubtruncate THEN 'truncate' END),
       ARRAY(SELECT format('%I.%I', n.nspname, c.relname)
             FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE r.prpubid = p.oid ORDER BY 1),
       {schemas}
FROM pg_publication p ORDER BY p.pubname
"""
PUBLICATION_SCHEMAS = """ARRAY(SELECT n.nspname FROM pg_publication_namespace s
             JOIN pg_namespace n ON n.oid = s.pnnspid WHERE s.pnpubid = p.oid ORDER BY 1)"""

EVENT_TRIGGERS = f"""
SELECT e.oid, e.evtname, e.evtevent,
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       coalesce(e.evttags, '{{}}'), e.evtenabled
FROM pg_event_trigger e
JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {not_extension_member("pg_event_trigger", "e.oid")}
ORDER BY e.evtname
"""

STORAGE = r"""
SELECT b.id, count(o.id),
       coalesce(sum(CASE WHEN o.metadata ->> 'size' ~ '^\d+$'
                         THEN (o.metadata ->> 'size')::bigint END), 0)::bigint,
       count(o.id) FILTER (WHERE coalesce(o.metadata ->> 'size', '') !~ '^\d+$')
FROM storage.buckets b LEFT JOIN storage.objects o ON o.bucket_id = b.id
GROUP BY b.id ORDER BY b.id
"""

AUTH_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname), pg_get_userbyid(c.relowner)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'auth' AND c.relkind IN ('r', 'p') ORDER BY 1
"""

#: Functions outside extensions whose body reads the JWT claims PostgREST sets per request.
CLAIM_READERS = f"""
SELECT p.oid::regprocedure::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname <> ALL(%(ignored)s) AND p.prosrc LIKE '%%request.jwt.claim%%'
  AND {not_extension_member("pg_proc", "p.oid")}
ORDER BY 1
"""

POLICIES = """
SELECT format('%%I.%%I.%%I', schemaname, tablename, policyname)
FROM pg_policies
WHERE schemaname <> ALL(%(ignored)s)
  AND (coalesce(qual, '') || coalesce(with_check, '')) ~ %(pattern)s
ORDER BY 1
"""

RLS_TABLES = """
SELECT format('%%I.%%I', n.nspname, c.relname), pg_get_userbyid(c.relowner),
       c.relforcerowsecurity,
       ARRAY(SELECT DISTINCT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END
             FROM pg_policy p, unnest(p.polroles) r WHERE p.polrelid = c.oid ORDER BY 1)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relrowsecurity AND c.relkind IN ('r', 'p') AND n.nspname <> ALL(%(ignored)s)
ORDER BY 1
"""


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and row[0])


def publications(conn: psycopg.Connection) -> list[Publication]:
    """Every publication of the database with its tables and schemas."""
    schemas = PUBLICATION_SCHEMAS if conn.info.server_version >= 150000 else "'{}'::text[]"
    rows = conn.execute(PUBLICATIONS.format(schemas=schemas)).fetchall()  # type: ignore[arg-type]
    return [
        Publication(oid, name, owner, every, actions, tuple(tables), tuple(spaces))
        for oid, name, owner, every, actions, tables, spaces in rows
    ]


def event_triggers(conn: psycopg.Connection) -> list[EventTrigger]:
    """Event triggers not created by an extension."""
    return [
        EventTrigger(oid, name, event, function, tuple(tags), enabled)
        for oid, name, event, function, tags, enabled in conn.execute(EVENT_TRIGGERS)
    ]


def vault_secret_names(conn: psycopg.Connection) -> list[str] | None:
    """Names of Supabase Vault's secrets (the name column only: never a secret), None
    without a vault; unnamed secrets are listed by id."""
    if not _exists(conn, "vault.secrets"):
        return None
    rows = conn.execute(
        "SELECT coalesce(name, '(unnamed, id ' || id || ')') FROM vault.secrets ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def pgsodium_key_names(conn: psycopg.Connection) -> list[str] | None:
    """Names of pgsodium's keys (their ids and names only), None without pgsodium."""
    if not _exists(conn, "pgsodium.key"):
        return None
    rows = conn.execute(
        "SELECT coalesce(name, '(unnamed, id ' || id || ')') FROM pgsodium.key ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def storage_buckets(conn: psycopg.Connection) -> list[Bucket] | None:
    """Objects and bytes (from each object's metadata) per Storage bucket, None without
    Supabase Storage's tables."""
    if not (_exists(conn, "storage.buckets") and _exists(conn, "storage.objects")):
        return None
    return [Bucket(*row) for row in conn.execute(STORAGE)]


def auth_schema(conn: psycopg.Connection, ignored: Sequence[str]) -> Auth | None:
    """GoTrue's tables and their owners, the functions reading request.jwt.claim(s) and the
    policies that call auth.uid()/role()/jwt() or read the claims; None without an auth
    schema."""
    tables = conn.execute(AUTH_TABLES).fetchall()
    if not tables:
        return None
    readers = [row[0] for row in conn.execute(CLAIM_READERS, {"ignored": list(ignored)})]
    pattern = r"auth\.(uid|role|jwt|email)\(|request\.jwt\.claim"
    policies = conn.execute(POLICIES, {"ignored": list(ignored), "pattern": pattern}).fetchall()
    return Auth(
        tables=tuple(name for name, _ in tables),
        owners=tuple(sorted({owner for _, owner in tables})),
        claim_readers=tuple(readers),
        policies=tuple(row[0] for row in policies),
    )


def rls_tables(conn: psycopg.Connection, ignored: Sequence[str]) -> list[RlsTable]:
    """Tables with row-level security enabled, outside `ignored`."""
    return [
        RlsTable(name, owner, forced, tuple(roles))
        for name, owner, forced, roles in conn.execute(RLS_TABLES, {"ignored": list(ignored)})
    ]
