"""Sort a failed connection into its real cause, with a remedy a person can act on.

libpq reports connection failures as text only (no SQLSTATE reaches the client before a
session exists), so the causes are told apart by the phrases libpq and the server use
(regular expressions, matched on the lowercased message); the first matching cause wins, and
anything unrecognised says so instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """One kind of connection failure: the patterns that identify it, and what to do."""

    problem: str
    phrases: tuple[str, ...]
    remedy: str


CAUSES: tuple[Cause, ...] = (
    Cause(
        "invalid connection settings for",
        ("connection is bad: invalid", "invalid connection option", "invalid uri"),
        "a connection parameter has a value libpq does not accept: fix it in targets.toml "
        "(the dsn, sslmode or another parameter) or in the .env file",
    ),
    Cause(
        "the server rejected a session setting for",
        ("unrecognized configuration parameter", "invalid value for parameter"),
        "fix the `options` of the dsn (-c name=value pairs the server must know)",
    ),
    Cause(
        "the role lacks the privilege to connect to",
        ("permission denied for database", "does not have connect privilege"),
        "GRANT CONNECT ON DATABASE <database> TO <user> (or connect as a role that has it)",
    ),
    Cause(
        "the role may not log in to",
        ("is not permitted to log in",),
        "ALTER ROLE <user> LOGIN, or use a role that can log in",
    ),
    Cause(
        "authentication failed for",
        (
            "password authentication failed",
            "no password supplied",
            "authentication failed",
            "pg_hba.conf",
            r'role ".*" does not exist',
        ),
        "check the user name and the password variable named in targets.toml (password_env) "
        "or RELATIONAL_DB_PASSWORD in the .env file; pg_hba.conf must admit this host and user",
    ),
    Cause(
        "database missing on",
        (r'database ".*" does not exist',),
        "create the database first, or fix `database` / RELATIONAL_DB_DATABASE",
    ),
    Cause(
        "the server is not the kind target_session_attrs asks for:",
        ("hot standby mode", "session is read-only", "server is in hot standby"),
        "point at the primary (or a standby) as intended, or fix target_session_attrs",
    ),
    Cause(
        "TLS negotiation failed for",
        ("ssl", "certificate", "tls"),
        "the server and the TLS settings disagree: fix sslmode (RELATIONAL_DB_SSL) or the "
        "certificate files (sslrootcert, sslcert, sslkey) in the dsn",
    ),
    Cause(
        "unknown host for",
        (
            "could not translate host name",
            "name or service not known",
            "failed to resolve host",
            "temporary failure in name resolution",
            "nodename nor servname",
        ),
        "fix the host name (host / RELATIONAL_DB_HOST) or this machine's DNS",
    ),
    Cause(
        "the server is busy or not accepting sessions:",
        (
            "too many clients",
            "remaining connection slots",
            "the database system is starting up",
            "the database system is shutting down",
            "the database system is in recovery mode",
        ),
        "wait until the server accepts sessions (or free connection slots) and rerun",
    ),
    Cause(
        "cannot reach",
        (
            "connection refused",
            "timeout expired",
            "no route to host",
            "network is unreachable",
            "server closed the connection unexpectedly",
            "connection reset",
        ),
        "check that the server is running and reachable from this machine (host, port, "
        "firewall, VPN); `pg_isready -h HOST -p PORT` tells",
    ),
)

UNRECOGNISED = Cause(
    "connection failed for",
    (),
    "read the server's message above; `psql` with the same settings shows the same error",
)


def diagnose(message: str) -> Cause:
    """The cause a libpq connection error message points at."""
    lowered = message.lower()
    for cause in CAUSES:
        if any(re.search(phrase, lowered) for phrase in cause.phrases):
            return cause
    return UNRECOGNISED
