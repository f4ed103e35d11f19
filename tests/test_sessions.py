"""Sessions on named environments against real servers: the limits reach the server, every
read is bounded on a paused server (and TCP keepalives alone are not), the connection cap,
DSN parameters reaching the server and the client tools, and connection failures sorted into
their real cause (issue 11, items 9, 10 and 12)."""

from __future__ import annotations

import gc
import os
import subprocess
import threading
import time
from dataclasses import replace

import psycopg
import pytest

from helpers import execute
from pgcutover.checks import content
from pgcutover.checks.base import Pair
from pgcutover.db import Endpoint, connect, connection
from pgcutover.errors import ConnectionProblem
from pgcutover.migrate.tools import SESSION_OPTIONS, client_binary
from pgcutover.providers.embedded import free_port
from pgcutover.sessions import SLOTS, ReadTimeout, SessionLimits

LIMITS = SessionLimits(
    statement_timeout_ms=1000,
    lock_timeout_ms=250,
    idle_in_transaction_timeout_ms=5000,
    read_timeout_s=1.5,
    max_connections=3,
)


def named(endpoint: Endpoint, limits: SessionLimits = LIMITS, **params: str) -> Endpoint:
    """The endpoint as a named environment would be: not pgcutover's, limited, with params."""
    return replace(endpoint, ephemeral=False, limits=limits, params=tuple(params.items()))


def settings_of(conn: psycopg.Connection, *names: str) -> list[str]:
    return [conn.execute(f"SHOW {name}").fetchone()[0] for name in names]  # type: ignore[index]


def test_named_sessions_carry_the_limits_and_keep_the_dsn_options(seeded_source):
    endpoint = named(seeded_source, options="-c search_path=pg_catalog,public")
    names = (
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "application_name",
        "search_path",
        "default_transaction_read_only",
    )
    with connection(endpoint, role="source") as conn:
        assert settings_of(conn, *names) == [
            "1s",
            "250ms",
            "5s",
            "pgcutover",
            "pg_catalog,public",
            "on",
        ]
    sneaky = named(seeded_source, options="-c default_transaction_read_only=off")
    with connection(sneaky, role="source") as conn:
        assert settings_of(conn, "default_transaction_read_only") == ["on"], (
            "a DSN's options can never lift the source's read-only guard"
        )
    with connection(endpoint, role="source", options=SESSION_OPTIONS) as conn:
        assert settings_of(conn, "statement_timeout", "idle_in_transaction_session_timeout") == [
            "0",
            "0",
        ], "pgcutover's migration sessions lift the timeouts (--phase-timeout bounds them)"


def test_a_paused_server_cannot_hang_a_read_and_keepalives_alone_do_not_help(target_server):
    """SIGSTOP keeps the server's sockets open: the kernel still acknowledges data and
    keepalive probes, so only the client-side deadline ends the read."""
    endpoint = named(target_server.endpoint)
    guarded = connect(endpoint, role="admin")
    keepalive_only = psycopg.connect(
        target_server.endpoint.conninfo(
            keepalives_idle="1",
            keepalives_interval="1",
            keepalives_count="1",
            tcp_user_timeout="1000",
        ),
        autocommit=True,
    )
    answered: list[object] = []
    waiter = threading.Thread(
        target=lambda: answered.append(keepalive_only.execute("SELECT 42").fetchone()), daemon=True
    )
    target_server.pause()
    try:
        waiter.start()
        started = time.monotonic()
        with pytest.raises(ReadTimeout, match=r"did not answer within 1\.5 s"):
            guarded.execute("SELECT 1")
        waited = time.monotonic() - started
        assert 1.4 < waited < 4.0, waited
        assert guarded.closed
        key = (endpoint.host, endpoint.port, endpoint.dbname)
        assert SLOTS.count(key) == 0, "a connection closed by the deadline frees its slot"
        waiter.join(timeout=4.0)
        assert waiter.is_alive(), "keepalives and tcp_user_timeout never end a paused read"
    finally:
        target_server.resume()
    waiter.join(timeout=10)
    keepalive_only.close()
    assert answered == [(42,)], "after SIGCONT the server answers the read that waited"


def test_content_parity_on_a_target_that_stops_answering_ends_unknown(
    seeded_source, target_copy, target_server, settings, inventory
):
    """Item 12: a read in flight when the target stops answering (a lock wait, then SIGSTOP)
    ends within the read timeout; the table is `unknown`, the run goes on."""
    waits = replace(LIMITS, statement_timeout_ms=0, lock_timeout_ms=60000, read_timeout_s=2.0)
    pair = Pair(seeded_source, named(target_copy, waits, connect_timeout="2"), inventory)
    holder = connect(target_copy, role="admin", autocommit=False)
    holder.execute("LOCK TABLE public.documents IN ACCESS EXCLUSIVE MODE")
    results: list[list] = []
    checking = threading.Thread(
        target=lambda: results.append(content.check(pair, settings)), daemon=True
    )
    paused = False
    try:
        checking.start()
        _until_a_session_waits_for_a_lock(target_copy)
        target_server.pause()
        paused = True
        checking.join(timeout=30)
        assert not checking.is_alive(), "content parity hung on a paused target"
    finally:
        if paused:
            target_server.resume()
        holder.rollback()
        holder.close()
        checking.join(timeout=60)
        gc.collect()  # psycopg keeps a timed-out connection attempt's socket in a reference
        # cycle: collected, its half-open session on the server ends now instead of after
        # authentication_timeout (60 s), which DROP DATABASE of the copy would wait for
    by_id = {result.id: result for result in results[0]}
    documents = by_id["content.public.documents"]
    assert documents.status == "unknown", documents
    assert "did not answer within 2 s" in documents.message
    assert target_copy.password not in str(results)


def _until_a_session_waits_for_a_lock(endpoint: Endpoint, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with connect(endpoint, role="admin") as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND application_name = 'pgcutover' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the content check never waited for the held lock")


def test_the_connection_cap_per_database(seeded_source):
    endpoint = named(seeded_source)
    key = (endpoint.host, endpoint.port, endpoint.dbname)
    opened = [connect(endpoint, role="source") for _ in range(3)]
    with pytest.raises(ConnectionProblem, match="more than 3 connections to test source"):
        connect(endpoint, role="source")
    opened.pop().close()
    opened.append(connect(endpoint, role="source"))
    del opened[0]
    gc.collect()
    assert SLOTS.count(key) == 2, "a connection dropped without close() gives its slot back"
    for conn in opened:
        conn.close()
    assert SLOTS.count(key) == 0


def test_dsn_parameters_reach_the_client_tools(seeded_source):
    endpoint = named(
        seeded_source,
        options="-c search_path=pgc_probe",
        application_name="pgc-tools",
        target_session_attrs="read-write",
        keepalives_idle="7",
    )
    query = "SELECT current_setting('search_path') || '|' || current_setting('application_name')"
    psql = [str(client_binary("psql")), f"--dbname={endpoint.tool_dbname()}", "-XAtc", query]
    done = subprocess.run(psql, env=endpoint.libpq_env(), capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "pgc_probe|pgc-tools"), done.stderr
    standby = replace(endpoint, params=(("target_session_attrs", "standby"),))
    refused = subprocess.run(
        [*psql[:1], f"--dbname={standby.tool_dbname()}", *psql[2:]],
        env=standby.libpq_env(),
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "not in hot standby mode" in refused.stderr
    with pytest.raises(ConnectionProblem) as raised:
        connect(standby, role="source")
    assert "not the kind target_session_attrs asks for" in raised.value.problem


@pytest.fixture
def gatekeeping(target_server):
    """A database without CONNECT for PUBLIC, a login role without that privilege and a
    role that may not log in; all removed afterwards (roles are server-wide)."""
    tag = f"gate_{os.getpid()}"
    admin = target_server.endpoint
    execute(admin, f"CREATE DATABASE {tag}_db")
    execute(admin, f"REVOKE CONNECT ON DATABASE {tag}_db FROM PUBLIC")
    execute(admin, f"CREATE ROLE {tag}_user LOGIN PASSWORD 'pw-{tag}'")
    execute(admin, f"CREATE ROLE {tag}_nologin NOLOGIN PASSWORD 'pw-{tag}'")
    yield tag
    execute(admin, f"DROP DATABASE {tag}_db WITH (FORCE)")
    execute(admin, f"DROP ROLE {tag}_user")
    execute(admin, f"DROP ROLE {tag}_nologin")


def test_connection_failures_are_sorted_into_their_real_cause(target_server, gatekeeping):
    tag = gatekeeping
    server = replace(target_server.endpoint, label="prod")
    cases = [
        (
            replace(server, user=f"{tag}_user", password=f"pw-{tag}", dbname=f"{tag}_db"),
            "the role lacks the privilege to connect to prod",
            "GRANT CONNECT",
        ),
        (
            replace(server, user=f"{tag}_nologin", password=f"pw-{tag}"),
            "the role may not log in to prod",
            "LOGIN",
        ),
        (
            replace(server, password="wrong-pw-123"),
            "authentication failed for prod",
            "password_env",
        ),
        (server.with_dbname("no_such_db"), "database missing on prod", "create the database"),
        (replace(server, port=free_port()), "cannot reach prod", "pg_isready"),
        (replace(server, sslmode="bogus"), "invalid connection settings for prod", "sslmode"),
        (replace(server, sslmode="require"), "TLS negotiation failed for prod", "sslmode"),
        (replace(server, host="no-such-host.invalid"), "unknown host for prod", "DNS"),
    ]
    for endpoint, problem, remedy in cases:
        with pytest.raises(ConnectionProblem) as raised:
            connect(endpoint, role="target")
        assert raised.value.problem.startswith(problem), raised.value.problem
        assert remedy in raised.value.remedy, (problem, raised.value.remedy)
        assert f"pw-{tag}" not in str(raised.value) and "wrong-pw-1" not in str(raised.value)
