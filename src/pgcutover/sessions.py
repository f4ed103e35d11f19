"""What pgcutover's sessions may cost a server it did not create: server-side timeouts, a
client-side bound on every server round trip, and a cap on open connections per database.

A paused server (SIGSTOP, a hung VM) or a silent network keeps its TCP connections alive: the
kernel still acknowledges data and keepalive probes, so neither TCP keepalives nor libpq's
tcp_user_timeout ever end a read, and a cancel request reaches a paused postmaster no better.
What bounds a read is a deadline on psycopg's wait: `Session` gives every round trip
`read_timeout_s` and closes the connection past it (tests/test_sessions.py proves both).
"""

from __future__ import annotations

import select
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.rows import TupleRow

from pgcutover.errors import ConnectionProblem

RV = TypeVar("RV")
#: psycopg's own polling interval while it waits (it checks for Ctrl-C in between).
WAIT_INTERVAL = 0.1


@dataclass(frozen=True)
class SessionLimits:
    """[sessions] in fixtures/sessions.toml, overridable in targets.toml: applied to every
    session on a named environment; see that file for what each value protects."""

    statement_timeout_ms: int
    lock_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    read_timeout_s: float
    max_connections: int

    def server_options(self) -> str:
        """libpq `options` that set the server-side timeouts for a session."""
        return (
            f"-c statement_timeout={self.statement_timeout_ms} "
            f"-c lock_timeout={self.lock_timeout_ms} "
            f"-c idle_in_transaction_session_timeout={self.idle_in_transaction_timeout_ms}"
        )

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SessionLimits | None:
        """Inverse of dataclasses.asdict, for endpoints read back from the state file."""
        return cls(**data) if data else None


class ReadTimeout(psycopg.OperationalError):
    """The server did not finish a round trip within the read timeout; the connection is
    closed (its state is unknown). A psycopg error, so callers handle it like any other."""


class Session(psycopg.Connection[TupleRow]):
    """A psycopg connection whose every server round trip must end within `read_timeout`
    seconds (None: unbounded), and which frees its connection slot when closed."""

    read_timeout: float | None = None
    label: str = "the server"
    _release: Callable[[], None] | None = None

    def wait(
        self, gen: PQGen[RV], interval: float = WAIT_INTERVAL, timeout: float | None = None
    ) -> RV:
        """psycopg's wait with a deadline: past it the connection is closed and ReadTimeout
        raised (a caller's own timeout, as for notifications, wins)."""
        limit = self.read_timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            return super().wait(gen, interval, limit)
        except psycopg.OperationalError:
            if timeout is not None or limit is None or time.monotonic() - started < limit:
                raise
            raise self._timed_out(limit) from None

    def wait_readable(self) -> None:
        """Block until the server sent something, for at most `read_timeout` seconds: for
        code that reads libpq's buffer itself (the content check's COPY reader)."""
        ready, _, _ = select.select([self.pgconn.socket], [], [], self.read_timeout)
        if not ready and self.read_timeout is not None:
            raise self._timed_out(self.read_timeout)

    def _timed_out(self, limit: float) -> ReadTimeout:
        """Close the connection (its state is unknown mid-round-trip) and say why."""
        self.close()
        return ReadTimeout(
            f"{self.label} did not answer within {limit:g} s (the client-side read "
            "timeout): the server is paused or overloaded, or the network stalled"
        )

    def close(self) -> None:
        super().close()
        if self._release is not None:
            self._release()


class _Slots:
    """Open connections per database in this process, capped by the limits' max_connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[tuple[str, int, str]] = Counter()

    def take(self, key: tuple[str, int, str], cap: int, label: str) -> Callable[[], None]:
        """Reserve one connection to `key`, or refuse past the cap; returns the release."""
        with self._lock:
            if self._open[key] >= cap:
                raise ConnectionProblem(
                    f"pgcutover would open more than {cap} connections to {label} at once "
                    "([sessions] max_connections)",
                    "raise max_connections under [sessions] (or [targets.<name>.sessions]) in "
                    "targets.toml if the server can take more, or lower [content] connections",
                )
            self._open[key] += 1
        return lambda: self._give_back(key)

    def _give_back(self, key: tuple[str, int, str]) -> None:
        with self._lock:
            self._open[key] -= 1

    def count(self, key: tuple[str, int, str]) -> int:
        """Connections open to `key` right now (for tests and messages)."""
        with self._lock:
            return self._open[key]


SLOTS = _Slots()


def bind(
    conn: Session, *, label: str, read_timeout: float | None, release: Callable[[], None] | None
) -> Session:
    """Give a fresh connection its read timeout and its slot; the slot comes back on close()
    or, for a connection dropped without closing, when it is garbage-collected."""
    conn.label = label
    conn.read_timeout = read_timeout
    if release is not None:
        conn._release = weakref.finalize(conn, release)
    return conn
