"""Faults of the target server: a backend terminated, the postmaster killed and restarted,
the server paused, a lock held, a database setting, a disk that fills up.

Every fault here acts on a server or database pgcutover created itself.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from pgcutover.db import Endpoint, connect
from pgcutover.faults.history import History
from pgcutover.faults.nemesis import FaultUnavailable
from pgcutover.providers.base import KILL, PAUSE, RESTART, ControllableServer
from pgcutover.providers.embedded import SYSTEM_USER, EmbeddedServer

POLL_S = 0.005


@dataclass(frozen=True)
class Busy:
    """How to see that the migration is at work in a database: a query over
    pg_stat_activity taking (dbname, patterns), returning (pid, what it does)."""

    query: str
    patterns: tuple[str, ...]


#: The restore's sessions loading data or building indexes.
RESTORING = Busy(
    """
    SELECT pid, left(query, 80) FROM pg_stat_activity
    WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid() AND query ILIKE ANY(%s)
    ORDER BY backend_start LIMIT 1
    """,
    ("COPY %", "CREATE INDEX %", "ALTER TABLE % ADD CONSTRAINT %"),
)
_WORKER = """
SELECT pid, backend_type FROM pg_stat_activity
WHERE datname = %s AND backend_type ILIKE ANY(%s) ORDER BY backend_start LIMIT 1
"""
#: A subscription's table-copy worker, and its apply worker (logical replication).
COPYING = Busy(_WORKER, ("%tablesync worker",))
APPLYING = Busy(_WORKER, ("%apply worker",))


def _require_ephemeral(endpoint: Endpoint) -> None:
    if not endpoint.ephemeral:
        raise ValueError(f"refusing to inject a fault into {endpoint.label}: not created by us")


def _require(server: ControllableServer, capability: str) -> None:
    """A fault acts only through what the server's provider declares it can do."""
    if capability not in server.capabilities:
        raise FaultUnavailable(f"{server.label} cannot {capability} (its provider does not)")


@dataclass
class _WhenBusy:
    """A thread that waits until the migration is at work in `dbname` (`busy`), then acts
    once. If the migration ends first, heal() stops it and the history says the fault missed.
    """

    admin: Endpoint
    dbname: str
    label: str
    action: Callable[[int, str, History], None]
    busy: Busy = RESTORING
    window: float = 60.0
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self, history: History) -> None:
        _require_ephemeral(self.admin)
        self._thread = threading.Thread(target=self._run, args=(history,), daemon=True)
        self._thread.start()

    def _run(self, history: History) -> None:
        deadline = time.monotonic() + self.window
        with connect(self.admin, role="admin") as conn:
            while not self._stop.is_set() and time.monotonic() < deadline:
                row = conn.execute(
                    self.busy.query,  # type: ignore[arg-type]
                    (self.dbname, list(self.busy.patterns)),
                ).fetchone()
                if row is not None:
                    self.action(int(row[0]), str(row[1]), history)
                    return
                time.sleep(POLL_S)
        history.mark(
            f"{self.label}: the migration was never busy there, the fault missed", "server"
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class TerminateBackend:
    """pg_terminate_backend() on the first restore session seen loading data or indexing."""

    admin: Endpoint
    dbname: str
    _watch: _WhenBusy | None = field(default=None, init=False)

    def inject(self, history: History) -> None:
        self._watch = _WhenBusy(self.admin, self.dbname, "terminate backend", self._terminate)
        self._watch.start(history)

    def _terminate(self, pid: int, query: str, history: History) -> None:
        with connect(self.admin, role="admin") as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        history.mark(f"pg_terminate_backend({pid}) while it ran: {query}", "server")

    def heal(self, history: History) -> None:
        if self._watch is not None:
            self._watch.stop()


@dataclass
class KillServer:
    """SIGKILL the postmaster and all its children once the migration is busy there (`busy`:
    mid-restore by default); restart it after `down_for`."""

    server: ControllableServer
    dbname: str
    down_for: float = 0.5
    busy: Busy = RESTORING
    _watch: _WhenBusy | None = field(default=None, init=False)

    def inject(self, history: History) -> None:
        _require(self.server, KILL)
        _require(self.server, RESTART)
        self._watch = _WhenBusy(
            self.server.endpoint, self.dbname, "SIGKILL", self._kill, busy=self.busy
        )
        self._watch.start(history)

    def _kill(self, pid: int, query: str, history: History) -> None:
        event = history.open(f"postmaster SIGKILL (a session ran: {query}), down", "server")
        self.server.kill()
        time.sleep(self.down_for)
        self.server.restart()
        history.close(event)

    def heal(self, history: History) -> None:
        if self._watch is not None:
            self._watch.stop()
        if not self.server.running():
            self.server.restart()
            history.mark("server restarted by the heal", "server")


@dataclass
class PauseServer:
    """Freeze every server process for `seconds` (SIGSTOP, or `docker pause`), then let it
    go on (heal resumes at once)."""

    server: ControllableServer
    seconds: float
    _timer: threading.Timer | None = field(default=None, init=False)
    _event: int | None = field(default=None, init=False)

    def inject(self, history: History) -> None:
        _require(self.server, PAUSE)
        self.server.pause()
        self._event = history.open(f"server paused for {self.seconds:g} s", "server")
        self._timer = threading.Timer(self.seconds, self.heal, args=(history,))
        self._timer.daemon = True
        self._timer.start()

    def heal(self, history: History) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.server.resume()
        if self._event is not None:
            history.close(self._event)


@dataclass
class LockTable:
    """Another session holds ACCESS EXCLUSIVE on a table the restore loads, until healed."""

    target: Endpoint
    table: str
    _conn: psycopg.Connection | None = field(default=None, init=False)
    _event: int | None = field(default=None, init=False)

    def inject(self, history: History) -> None:
        _require_ephemeral(self.target)
        self._conn = connect(self.target, role="admin", autocommit=False)
        schema, _, name = self.table.rpartition(".")
        self._conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(schema or "public", name)
            )
        )
        self._event = history.open(f"a session holds ACCESS EXCLUSIVE on {self.table}", "server")

    def heal(self, history: History) -> None:
        if self._conn is not None:
            self._conn.rollback()
            self._conn.close()
            self._conn = None
        if self._event is not None:
            history.close(self._event)


@dataclass
class DatabaseSetting:
    """ALTER DATABASE ... SET name = value for new sessions; heal resets it."""

    admin: Endpoint
    dbname: str
    name: str
    value: str
    _event: int | None = field(default=None, init=False)

    def _alter(self, statement: str) -> None:
        _require_ephemeral(self.admin)
        with connect(self.admin, role="admin") as conn:
            conn.execute(
                sql.SQL(statement).format(
                    db=sql.Identifier(self.dbname),
                    name=sql.Identifier(self.name),
                    value=sql.Literal(self.value),
                )
            )

    def inject(self, history: History) -> None:
        self._alter("ALTER DATABASE {db} SET {name} = {value}")
        self._event = history.open(f"ALTER DATABASE SET {self.name} = '{self.value}'", "server")

    def heal(self, history: History) -> None:
        if self._event is not None:
            self._alter("ALTER DATABASE {db} RESET {name}")
            history.close(self._event)
            self._event = None


@dataclass
class SmallDisk:
    """The target database moved onto a tablespace on a small tmpfs (root only): the restore
    runs out of space. Heal moves the database back and removes the filesystem. Needs the
    data directory on this machine: an embedded server."""

    server: ControllableServer
    dbname: str
    headroom_bytes: int = 256 * 1024
    _mount: Path | None = field(default=None, init=False)
    _event: int | None = field(default=None, init=False)

    @property
    def _tablespace(self) -> str:
        return f"small_{self.dbname}"

    def _admin(self, statement: sql.Composable) -> None:
        with connect(self.server.endpoint, role="admin") as conn:
            conn.execute(statement)

    def inject(self, history: History) -> None:
        if not isinstance(self.server, EmbeddedServer):
            raise FaultUnavailable(f"{self.server.label}: its data directory is not on this host")
        if os.geteuid() != 0:
            raise FaultUnavailable("mounting a size-limited tmpfs needs root")
        with connect(self.server.endpoint, role="admin") as conn:
            used = int(
                conn.execute("SELECT pg_database_size(%s)", (self.dbname,)).fetchone()[0]  # type: ignore[index]
            )
        size = used + self.headroom_bytes
        mount = self.server.base_dir / f"small-disk-{self.dbname}"
        mount.mkdir(exist_ok=True)
        owner = pwd.getpwnam(SYSTEM_USER)
        options = f"size={size},uid={owner.pw_uid},gid={owner.pw_gid},mode=0700"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            mount.rmdir()
            raise FaultUnavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        self._mount = mount
        tablespace = sql.Identifier(self._tablespace)
        self._admin(
            sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(tablespace, sql.Literal(str(mount)))
        )
        self._admin(
            sql.SQL("ALTER DATABASE {} SET TABLESPACE {}").format(
                sql.Identifier(self.dbname), tablespace
            )
        )
        free = self.headroom_bytes // 1024
        self._event = history.open(
            f"target database on a {size // 1024} KiB tmpfs ({free} KiB free)", "server"
        )

    def heal(self, history: History) -> None:
        if self._mount is None:
            return
        with connect(self.server.endpoint, role="admin") as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (self.dbname,),
            )
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET TABLESPACE pg_default").format(
                    sql.Identifier(self.dbname)
                )
            )
            conn.execute(
                sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(self._tablespace))
            )
        subprocess.run(["umount", str(self._mount)], capture_output=True, check=True)
        self._mount.rmdir()
        self._mount = None
        if self._event is not None:
            history.close(self._event)
