"""What every server provider offers: an endpoint, declared capabilities, and a stop."""

from __future__ import annotations

import time
from typing import Protocol

import psycopg

from pgcutover.db import Endpoint, connect
from pgcutover.errors import ConnectionProblem

#: Optional capabilities a provider may declare; chaos tests skip cleanly without them.
KILL = "kill"
PAUSE = "pause"
RESTART = "restart"


class Server(Protocol):
    """A PostgreSQL server pgcutover can talk to; only ephemeral ones can be stopped."""

    endpoint: Endpoint
    capabilities: frozenset[str]

    def stop(self) -> None:
        """Stop the server if pgcutover started it; a no-op otherwise."""

    def state(self) -> dict[str, object]:
        """JSON-able facts another process needs to reach or stop this server."""


def wait_until_accepting(endpoint: Endpoint, timeout: float = 30.0) -> None:
    """Readiness strategy: a real login succeeds, polled with back-off until `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            connect(endpoint, role="admin").close()
            return
        except ConnectionProblem as problem:
            if "authentication failed" in problem.problem or time.monotonic() > deadline:
                raise
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
