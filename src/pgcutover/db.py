"""Connection endpoints and the one way pgcutover opens a database connection.

Every connection goes through `connect`, so errors are translated into messages with a
remedy, passwords are never echoed, and source connections are read-only by construction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import psycopg

from pgcutover.errors import ConnectionProblem

#: Which side of the migration a connection reads: a source connection refuses writes.
DataRole = Literal["source", "target"]
Role = Literal["source", "target", "admin"]


@dataclass(frozen=True)
class Endpoint:
    """Where one database lives and how to log in to it.

    `ephemeral` marks servers pgcutover created itself: only those may be written to or
    destroyed without `--allow-destructive`.
    """

    label: str
    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    sslmode: str = "prefer"
    ephemeral: bool = False

    def conninfo(self, **overrides: str) -> str:
        """libpq conninfo string, password included: pass to psycopg only, never print."""
        params = {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": "10",
            "application_name": "pgcutover",
        }
        if self.password is not None:
            params["password"] = self.password
        params.update(overrides)
        return psycopg.conninfo.make_conninfo(**params)

    def safe_dsn(self) -> str:
        """A printable DSN: everything except the password."""
        return (
            f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}?sslmode={self.sslmode}"
        )

    def libpq_env(self) -> dict[str, str]:
        """Environment for libpq client tools (pg_dump, psql): the password travels here,
        never on a command line where `ps` would show it."""
        env = {
            **os.environ,
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.dbname,
            "PGUSER": self.user,
            "PGSSLMODE": self.sslmode,
            "PGCONNECT_TIMEOUT": "10",
            "PGAPPNAME": "pgcutover",
        }
        env.pop("PGPASSWORD", None)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def with_dbname(self, dbname: str) -> Endpoint:
        """The same server, another database."""
        return replace(self, dbname=dbname)

    def redact(self, text: str) -> str:
        """Remove this endpoint's password from a text (server or tool output)."""
        if self.password:
            return text.replace(self.password, "********")
        return text


def _explain(endpoint: Endpoint, error: psycopg.OperationalError) -> ConnectionProblem:
    """Turn libpq's message into a problem and a remedy a person can act on."""
    message = endpoint.redact(str(error).strip())
    where = f"{endpoint.label} ({endpoint.safe_dsn()})"
    lowered = message.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        remedy = (
            "check the user name and the password variable named in targets.toml "
            "(password_env) or RELATIONAL_DB_PASSWORD in the .env file"
        )
        problem = f"authentication failed for {where}"
    elif "does not exist" in lowered and "database" in lowered:
        remedy = "create the database first, or fix `database` / RELATIONAL_DB_DATABASE"
        problem = f"database missing on {where}"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        remedy = "fix the host name (host / RELATIONAL_DB_HOST) or your DNS"
        problem = f"unknown host for {where}"
    elif "ssl" in lowered:
        remedy = "the server and sslmode disagree: fix sslmode / RELATIONAL_DB_SSL"
        problem = f"TLS negotiation failed for {where}"
    else:
        remedy = (
            "check that the server is running and reachable from this machine "
            "(host, port, firewall, VPN); `pg_isready -h HOST -p PORT` tells"
        )
        problem = f"cannot reach {where}"
    return ConnectionProblem(f"{problem}: {message}", remedy)


def connect(
    endpoint: Endpoint,
    *,
    role: Role,
    autocommit: bool = True,
    options: str = "",
    application_name: str | None = None,
) -> psycopg.Connection:
    """Open a connection; a `source` connection refuses writes at the server.

    Source and target connections read with row_security = off: where row-level security
    would hide rows from the role, a query fails ("query would be affected by row-level
    security policy") instead of silently counting fewer rows; checks turn that into
    `unknown` with the remedy (see checks.base.guarded). `options` may turn it back on.
    Prepared statements are disabled (prepare_threshold=None): a plan prepared under one
    planner setting would otherwise be reused under another (see ENVIRONMENT.md).
    """
    server_options = options
    if role != "admin":
        server_options = f"-c row_security=off {options}".strip()
    if role == "source":
        server_options = f"{server_options} -c default_transaction_read_only=on"
    extra = {"options": server_options} if server_options else {}
    if application_name is not None:
        extra["application_name"] = application_name
    try:
        conn = psycopg.connect(endpoint.conninfo(**extra), autocommit=autocommit)
    except psycopg.OperationalError as error:
        raise _explain(endpoint, error) from None
    conn.prepare_threshold = None
    return conn


@contextmanager
def connection(
    endpoint: Endpoint, *, role: Role, options: str = "", application_name: str | None = None
) -> Iterator[psycopg.Connection]:
    """`connect` as a context manager that always closes."""
    conn = connect(endpoint, role=role, options=options, application_name=application_name)
    try:
        yield conn
    finally:
        conn.close()
