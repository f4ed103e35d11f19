"""A scratch database on a server pgcutover does not own (`--target=staging` with no source
configured): created for the rehearsal, migrated into, checked, and dropped afterwards, on
any exit; nothing else on that server is touched."""

from __future__ import annotations

import secrets
from dataclasses import asdict, replace
from typing import Any

import psycopg
from psycopg import sql

from pgcutover.db import Endpoint, connect
from pgcutover.errors import ConfigError

PREFIX = "pgcutover_scratch_"
KIND = "scratch"


def _no_createdb(server: Endpoint) -> ConfigError:
    return ConfigError(
        f"a scratch rehearsal on {server.label} needs to create a database there, and role "
        f"{server.user} may not (no CREATEDB)",
        f"ALTER ROLE {server.user} CREATEDB (or connect as a role that has it), or name the "
        f'source to verify {server.label} against: source = "..." under '
        f"[targets.{server.label}] in targets.toml, or --source",
    )


def require_createdb(server: Endpoint) -> None:
    """Refuse early, with the remedy, when the configured role may not create databases."""
    with connect(server, role="admin") as conn:
        row = conn.execute(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    if not (row and row[0]):
        raise _no_createdb(server)


def create(server: Endpoint) -> Endpoint:
    """CREATE DATABASE pgcutover_scratch_<random> on the server `server` points at; the
    endpoint returned is ephemeral (pgcutover created it, so it may write there)."""
    name = PREFIX + secrets.token_hex(6)
    with connect(server, role="admin") as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            raise _no_createdb(server) from None
    return replace(server, dbname=name, ephemeral=True, label=f"{server.label} (scratch {name})")


def state(server: Endpoint, scratch: Endpoint) -> dict[str, Any]:
    """What another process needs to drop the scratch database (password included: the
    state file is private and removed with the run's folder)."""
    return {"kind": KIND, "server": asdict(server), "database": scratch.dbname}


def drop(recorded: dict[str, Any]) -> None:
    """DROP DATABASE the scratch database, through the database the user configured."""
    server = Endpoint.from_json(recorded["server"])
    name = str(recorded["database"])
    if not name.startswith(PREFIX):
        raise ConfigError(
            f"refusing to drop {name}: not a pgcutover scratch database", "report this as a bug"
        )
    with connect(server, role="admin") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
