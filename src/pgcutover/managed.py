"""A managed-like target on a server pgcutover started: the restore runs as a non-superuser
owner, as on Supabase Cloud, RDS, Cloud SQL or Azure, so what such a server refuses fails in
the rehearsal too.

The server's bootstrap superuser stands for the provider (RDS's rdsadmin, Supabase's
supabase_admin) and is named PROVIDER; the customer gets `postgres` (the name those services
give the admin role, so a dump whose objects belong to `postgres` restores as it would
there) with CREATEDB and CREATEROLE, without SUPERUSER, REPLICATION or BYPASSRLS, a member of
the predefined roles providers grant (read and write all data, monitoring, signalling
backends), owning the application database. The provider's endpoint also stands for its
console: it enables an extension the owner may not create (migrate/extensions.py)."""

from __future__ import annotations

import secrets
from dataclasses import replace

from psycopg import sql

from pgcutover.db import Endpoint, connect

PROVIDER = "pgcutover_provider"
OWNER = "postgres"
OWNER_ATTRIBUTES = "LOGIN CREATEDB CREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS"
PREDEFINED_ROLES = ("pg_read_all_data", "pg_write_all_data", "pg_monitor", "pg_signal_backend")


def create_owner_database(provider: Endpoint, dbname: str) -> Endpoint:
    """Create the owner role and `dbname` owned by it, as the provider; returns the owner's
    endpoint on that database (its password generated here, never printed)."""
    password = secrets.token_urlsafe(24)
    with connect(provider, role="admin") as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} " + OWNER_ATTRIBUTES + " PASSWORD {}").format(
                sql.Identifier(OWNER), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(role) for role in PREDEFINED_ROLES),
                sql.Identifier(OWNER),
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(OWNER)
            )
        )
    return replace(provider.with_dbname(dbname), user=OWNER, password=password)
