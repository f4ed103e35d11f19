"""What every server provider offers: an endpoint, declared capabilities, and a stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg

from pgcutover.db import Endpoint, connect
from pgcutover.errors import ConnectionProblem

#: Optional capabilities a provider may declare; chaos tests skip cleanly without them.
KILL = "kill"
PAUSE = "pause"
RESTART = "restart"


@dataclass(frozen=True)
class ServerSpec:
    """One server to start: its PostgreSQL flavour (pg16, pg18), a folder it may use, a label
    for messages, and for containers the image and the network mode (host or bridge)."""

    flavor: str
    base_dir: Path
    label: str
    image: str
    network: str
    #: The bootstrap superuser's name (providers in providers.NAMED_SUPERUSER honour it).
    superuser: str = "postgres"


class Server(Protocol):
    """A PostgreSQL server pgcutover can talk to; only ephemeral ones can be stopped."""

    endpoint: Endpoint
    capabilities: frozenset[str]

    def stop(self) -> None:
        """Stop the server if pgcutover started it; a no-op otherwise."""

    def state(self) -> dict[str, object]:
        """JSON-able facts another process needs to reach or stop this server."""


class ControllableServer(Server, Protocol):
    """A server pgcutover started and whose processes it controls (the chaos faults); each
    method is offered when `capabilities` declares it (KILL, PAUSE, RESTART)."""

    label: str

    def kill(self) -> None:
        """SIGKILL the postmaster and its children, as a crash would."""

    def pause(self) -> None:
        """Freeze every server process: it stops answering but keeps its sockets open."""

    def resume(self) -> None:
        """Undo `pause`."""

    def restart(self, timeout: float = 60.0) -> None:
        """Start again on the same port after a kill (crash recovery runs) and wait for it."""

    def running(self) -> bool:
        """True while the postmaster exists (paused included)."""


def local_superuser(label: str, port: int, password: str, user: str = "postgres") -> Endpoint:
    """The endpoint of a server pgcutover started: its superuser (`user`) over TCP on
    127.0.0.1 with password authentication."""
    return Endpoint(
        label=label,
        host="127.0.0.1",
        port=port,
        dbname="postgres",
        user=user,
        password=password,
        sslmode="disable",
        ephemeral=True,
    )


def wait_until_accepting(
    endpoint: Endpoint, timeout: float = 30.0, alive: Callable[[], bool] = lambda: True
) -> None:
    """Readiness strategy: a real login succeeds, polled with back-off until `timeout`;
    gives up at once when `alive()` says the server process is gone."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            connect(endpoint, role="admin").close()
            return
        except ConnectionProblem as problem:
            refused = "authentication failed" in problem.problem
            if refused or time.monotonic() > deadline or not alive():
                raise
        except psycopg.Error:
            if time.monotonic() > deadline or not alive():
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
