"""The PostgreSQL client tools a migration runs, with timeouts and password-free output."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pgcutover.db import Endpoint, Role, connection
from pgcutover.errors import MigrationError
from pgcutover.providers.embedded import NEWEST_FLAVOR, bin_dir
from pgcutover.sessions import ReadTimeout

#: pgcutover's own migration sessions ignore a short statement_timeout, as pg_restore does,
#: and the idle-in-transaction timeout (the snapshot for pg_dump stays open for the whole
#: dump); --phase-timeout bounds them instead.
SESSION_OPTIONS = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0"


def client_binary(name: str, flavor: str = NEWEST_FLAVOR) -> Path:
    """A client tool, by default the newest major version's: pg_dump 16 refuses a PG18
    server and pg_restore 16 cannot read an archive from pg_dump 18. A backup restored into
    the source's own version takes that version's tools (see flavor_for)."""
    return bin_dir(flavor) / name


def client_version() -> str:
    """`pg_dump --version` of the tools pgcutover uses."""
    return subprocess.run(
        [str(client_binary("pg_dump")), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class ToolRun:
    """A finished tool run: what ran (without secrets), how long, and its output."""

    command: str
    seconds: float
    returncode: int
    stderr: str


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Kill a tool and its children (pg_dump -j forks workers)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait()


def run_pipeline(
    commands: Sequence[Sequence[str]],
    endpoints: Sequence[Endpoint],
    *,
    phase: str,
    timeout: float,
    extra_env: Sequence[dict[str, str]] = (),
) -> list[ToolRun]:
    """Run tools connected stdout->stdin, each with its own endpoint's libpq environment.

    The whole pipeline gets `timeout` seconds; past it every process is killed and a
    MigrationError names the stalled phase. Non-zero exits raise with the redacted stderr.
    """
    started = time.monotonic()
    processes: list[subprocess.Popen[bytes]] = []
    stdin = subprocess.DEVNULL
    for index, (command, endpoint) in enumerate(zip(commands, endpoints, strict=True)):
        extra = dict(extra_env[index]) if index < len(extra_env) else {}
        env = endpoint.libpq_env(options=extra.pop("PGOPTIONS", ""))
        env.update(extra)
        is_last = index == len(commands) - 1
        process = subprocess.Popen(
            list(command),
            stdin=stdin,
            stdout=subprocess.DEVNULL if is_last else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        if processes and processes[-1].stdout is not None:
            processes[-1].stdout.close()
        stdin = process.stdout  # type: ignore[assignment]
        processes.append(process)
    deadline = started + timeout
    errors: list[bytes] = []
    try:
        for process in processes:
            remaining = max(deadline - time.monotonic(), 0.01)
            _, err = process.communicate(timeout=remaining)
            errors.append(err or b"")
    except subprocess.TimeoutExpired:
        for process in processes:
            _stop_group(process)
        names = " | ".join(Path(c[0]).name for c in commands)
        raise MigrationError(
            f"phase {phase!r} stalled: {names} did not finish within {timeout:.0f} s",
            "check the network path and the servers (locks, a paused server, disk), or raise "
            "--phase-timeout if the data is simply that large",
            phase=phase,
        ) from None
    seconds = time.monotonic() - started
    runs = []
    for command, endpoint, process, err in zip(commands, endpoints, processes, errors, strict=True):
        text = endpoint.redact(err.decode(errors="replace"))
        runs.append(ToolRun(" ".join(map(str, command)), seconds, process.returncode, text))
    failed = [run for run in runs if run.returncode != 0]
    if failed:
        first = failed[0]
        tail = "\n".join(first.stderr.strip().splitlines()[-12:])
        raise MigrationError(
            f"phase {phase!r} failed: {Path(first.command.split()[0]).name} exited "
            f"{first.returncode}{_failing(first.stderr)}:\n{tail}",
            _remedy_for(tail),
            phase=phase,
        )
    ignored = [run for run in runs if "errors ignored on restore" in run.stderr]
    if ignored:
        raise MigrationError(
            f"phase {phase!r}: pg_restore reported errors it ignored:\n{ignored[0].stderr[-800:]}",
            "a restore with ignored errors is incomplete; fix the first error and rerun",
            phase=phase,
        )
    return runs


def _cut(conn: psycopg.Connection) -> None:
    """Shut the connection's socket down: a query stuck on a silent peer returns at once."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@contextmanager
def bounded(
    endpoint: Endpoint, role: Role, phase: str, timeout: float
) -> Iterator[psycopg.Connection]:
    """A connection for one phase that cannot outlive the phase timeout: past it the socket
    is cut (a stalled network or a paused server never answers a cancel) and the phase is
    reported as stalled."""
    waiting = max(2, min(10, math.ceil(timeout)))  # connecting may stall too
    conn = connection(
        endpoint,
        role=role,
        options=SESSION_OPTIONS,
        read_timeout=timeout,
        connect_timeout=waiting,
    )
    fired = threading.Event()
    with conn as session:

        def expire() -> None:
            fired.set()
            _cut(session)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            yield session
        except psycopg.Error as error:
            if not fired.is_set() and not isinstance(error, ReadTimeout):
                raise
            raise MigrationError(
                f"phase {phase!r} stalled: {endpoint.label} did not answer within {timeout:.0f} s",
                "check the network path and the server (locks, a paused server, disk), or "
                "raise --phase-timeout if the data is simply that large",
                phase=phase,
            ) from None
        finally:
            timer.cancel()


_ERROR = re.compile(r"ERROR:\s+(?:[0-9A-Z]{5}:\s+)?(.+)")
_COMMAND = re.compile(r"(?:Command was|STATEMENT):\s+(.+)")
_MISSING_TYPE = re.compile(r'type "?([\w$]+)\.([\w$]+)"? does not exist')
_VECTOR_TYPES = ("vector", "halfvec", "sparsevec")


def _failing(stderr: str) -> str:
    """` on <statement>: <error>`: the first error and the statement that caused it (which
    names the object), from pg_restore's `Command was:` or psql's `STATEMENT:`."""
    error, command = _ERROR.search(stderr), _COMMAND.search(stderr)
    if error is None:
        return ""
    where = f" on `{command.group(1).strip()}`" if command else ""
    return f"{where}: {error.group(1).strip()}"


def _remedy_for(stderr: str) -> str:
    """The guide's troubleshooting, matched on the tool's error text."""
    lowered = stderr.lower()
    missing_type = _MISSING_TYPE.search(stderr)
    if missing_type:
        schema, name = missing_type.groups()
        extension = "vector" if name in _VECTOR_TYPES else "<the extension that provides it>"
        return (
            f"create the extension in schema {schema} before the restore: CREATE EXTENSION "
            f"{extension} WITH SCHEMA {schema} (pgcutover's extensions phase does so for the "
            "source's extensions: see its notes; an extension already in another schema on the "
            f"target must be moved: ALTER EXTENSION {extension} SET SCHEMA {schema})"
        )
    if "affected by row-level security policy" in lowered:
        return (
            "the restoring role cannot bypass row-level security on a table with FORCE ROW "
            "LEVEL SECURITY: restore as a role with BYPASSRLS (Supabase's postgres has it), or "
            "give the role it on the target"
        )
    if "must be able to set role" in lowered:
        return (
            "the restoring role must be able to act as the object's owner: GRANT <that role> "
            "TO <the restoring role> WITH SET TRUE, INHERIT TRUE on the target, then rerun"
        )
    if "permission denied for schema" in lowered:
        return (
            "the object's owner needs CREATE on that schema before it can own objects there: "
            "GRANT CREATE ON SCHEMA ... TO <owner> on the target (as on the source), then rerun"
        )
    if "already exists" in lowered:
        return (
            "the target already holds these objects: migrate into an empty database, or "
            "rerun with --allow-destructive to drop them first (pg_restore --clean --if-exists)"
        )
    if 'extension "vector"' in lowered or 'type "vector" does not exist' in lowered:
        return "install pgvector on the target server (CREATE EXTENSION vector needs it)"
    if "role" in lowered and "does not exist" in lowered:
        return "create the missing role on the target (roles are not part of pg_dump)"
    if "permission denied" in lowered or "must be owner" in lowered or "superuser" in lowered:
        return (
            "the restoring role lacks a privilege this statement needs (a managed server "
            "grants no superuser): grant it on the target, ask the provider, or restore as a "
            "role that has it"
        )
    if "no space left" in lowered:
        return "the target's disk is full: free space or grow the volume, then rerun"
    if "canceling statement due to statement timeout" in lowered:
        return "the target's statement_timeout is too short for the restore: raise it"
    if "terminat" in lowered or "connection" in lowered or "server closed" in lowered:
        return "the connection broke mid-phase: check the network and the server, then rerun"
    return "read the tool output above; rerun once the cause is fixed"
