"""Connection endpoints and the one way pgcutover opens a database connection.

Every connection goes through `connect`, so errors are translated into messages with a
remedy, passwords are never echoed, and source connections are read-only by construction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote, urlencode

import psycopg

from pgcutover.diagnosis import diagnose
from pgcutover.errors import ConnectionProblem
from pgcutover.sessions import SLOTS, Session, SessionLimits, bind

#: Which side of the migration a connection reads: a source connection refuses writes.
DataRole = Literal["source", "target"]
#: `source-admin` is the one source connection that may write: only the logical strategy
#: uses it, to create and drop its publication and replication slot, where allowed.
Role = Literal["source", "target", "admin", "source-admin"]

#: Every libpq connection keyword -> its environment variable (None: libpq reads none), from
#: libpq itself, so the client tools get every parameter a DSN names.
LIBPQ_ENV: dict[str, str | None] = {
    option.keyword.decode(): option.envvar.decode() if option.envvar else None
    for option in psycopg.pq.Conninfo.get_defaults()
}
#: Keywords Endpoint keeps in its own fields rather than in `params`.
OWN_KEYWORDS = ("host", "port", "dbname", "user", "password", "sslmode")
#: A named server's dead peer (a partition, a crashed host) is noticed within about a minute,
#: even while a long statement runs; a DSN's own keepalive settings win.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10"}


@dataclass(frozen=True)
class Endpoint:
    """Where one database lives and how to log in to it.

    `ephemeral` marks servers pgcutover created itself: only those may be written to or
    destroyed without `--allow-destructive`. `params` holds every further libpq parameter
    the configuration named (sslrootcert, target_session_attrs, options, ...); `limits` the
    session limits of a named environment (None for pgcutover's own servers).
    """

    label: str
    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    sslmode: str = "prefer"
    ephemeral: bool = False
    params: tuple[tuple[str, str], ...] = ()
    limits: SessionLimits | None = None

    def _options(self, extra: str) -> str:
        """The DSN's own `options`, then `extra` (later settings win at the server)."""
        return " ".join(part for part in (dict(self.params).get("options", ""), extra) if part)

    def conninfo(self, *, options: str = "", **overrides: str) -> str:
        """libpq conninfo string, password included: pass to psycopg only, never print.
        `options` are added after the DSN's own."""
        params = {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": "10",
            "application_name": "pgcutover",
            **(KEEPALIVES if self.limits is not None else {}),
            **dict(self.params),
        }
        if self._options(options):
            params["options"] = self._options(options)
        if self.password is not None:
            params["password"] = self.password
        params.update(overrides)
        return psycopg.conninfo.make_conninfo(**params)

    def safe_dsn(self) -> str:
        """A printable DSN: everything except the password (libpq parses it back)."""
        host = f"[{self.host}]" if ":" in self.host else quote(self.host, safe="")
        query = urlencode({"sslmode": self.sslmode, **dict(self.params)}, safe="/", quote_via=quote)
        return f"postgresql://{quote(self.user, safe='')}@{host}:{self.port}/" + (
            f"{quote(self.dbname, safe='')}?{query}"
        )

    def libpq_env(self, options: str = "") -> dict[str, str]:
        """Environment for libpq client tools (pg_dump, psql): the password travels here,
        never on a command line where `ps` would show it. `options` are added after the
        DSN's own; parameters libpq reads from no variable go in `tool_dbname()`."""
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
        env.pop("PGOPTIONS", None)
        for keyword, value in self.params:
            variable = LIBPQ_ENV.get(keyword)
            if variable is not None:
                env[variable] = value
        if self._options(options):
            env["PGOPTIONS"] = self._options(options)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def tool_dbname(self) -> str:
        """The --dbname for a client tool: the database name, or a password-free conninfo
        when the DSN names parameters no environment variable carries (keepalives, ...)."""
        unset = {key: value for key, value in self.params if LIBPQ_ENV.get(key) is None}
        if not unset:
            return self.dbname
        return psycopg.conninfo.make_conninfo(dbname=self.dbname, **unset)

    def with_dbname(self, dbname: str) -> Endpoint:
        """The same server, another database."""
        return replace(self, dbname=dbname)

    def redact(self, text: str) -> str:
        """Remove this endpoint's password from a text (server or tool output)."""
        if self.password:
            return text.replace(self.password, "********")
        return text

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoint:
        """Inverse of dataclasses.asdict, for endpoints read back from the state file."""
        return cls(
            **{
                **data,
                "params": tuple((str(key), str(value)) for key, value in data.get("params", ())),
                "limits": SessionLimits.from_json(data.get("limits")),
            }
        )


def _explain(endpoint: Endpoint, error: psycopg.OperationalError) -> ConnectionProblem:
    """Turn libpq's message into its cause and a remedy a person can act on."""
    message = endpoint.redact(str(error).strip())
    cause = diagnose(message)
    where = f"{endpoint.label} ({endpoint.safe_dsn()})"
    return ConnectionProblem(f"{cause.problem} {where}: {message}", cause.remedy)


def connect(
    endpoint: Endpoint,
    *,
    role: Role,
    autocommit: bool = True,
    options: str = "",
    read_timeout: float | None = None,
    application_name: str | None = None,
    connect_timeout: int | None = None,
) -> Session:
    """Open a connection; a `source` connection refuses writes at the server.

    Source and target connections read with row_security = off: where row-level security
    would hide rows from the role, a query fails ("query would be affected by row-level
    security policy") instead of silently counting fewer rows; checks turn that into
    `unknown` with the remedy (see checks.base.guarded). `options` may turn it back on.
    On a named environment the session limits apply: server-side timeouts (before
    `options`, which may lift them), every round trip bounded by `read_timeout` (default
    the limits' read_timeout_s), and at most max_connections open at once.
    Prepared statements are disabled (prepare_threshold=None): a plan prepared under one
    planner setting would otherwise be reused under another (see ENVIRONMENT.md).
    `connect_timeout` (seconds, libpq counts at least 2) replaces the default of 10.
    """
    limits = endpoint.limits
    settings = [limits.server_options() if limits else ""]
    if role != "admin":
        settings.append("-c row_security=off")
    settings.append(options)
    if role == "source":
        settings.append("-c default_transaction_read_only=on")
    extra = {"application_name": application_name} if application_name is not None else {}
    if connect_timeout is not None:
        extra["connect_timeout"] = str(connect_timeout)
    release = None
    if limits is not None:
        key = (endpoint.host, endpoint.port, endpoint.dbname)
        release = SLOTS.take(key, limits.max_connections, endpoint.label)
    try:
        conn = Session.connect(
            endpoint.conninfo(options=" ".join(part for part in settings if part), **extra),
            autocommit=autocommit,
        )
    except BaseException as error:
        if release is not None:
            release()
        if isinstance(error, psycopg.OperationalError):
            raise _explain(endpoint, error) from None
        raise
    conn.prepare_threshold = None
    if read_timeout is None and limits is not None:
        read_timeout = limits.read_timeout_s
    return bind(conn, label=endpoint.label, read_timeout=read_timeout, release=release)


@contextmanager
def connection(
    endpoint: Endpoint,
    *,
    role: Role,
    options: str = "",
    read_timeout: float | None = None,
    application_name: str | None = None,
    connect_timeout: int | None = None,
) -> Iterator[Session]:
    """`connect` as a context manager that always closes."""
    conn = connect(
        endpoint,
        role=role,
        options=options,
        read_timeout=read_timeout,
        application_name=application_name,
        connect_timeout=connect_timeout,
    )
    try:
        yield conn
    finally:
        conn.close()
