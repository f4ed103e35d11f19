"""Snapshot-consistent parallel reading of both sides.

Each side gets one anchor transaction (REPEATABLE READ, READ ONLY) whose snapshot is exported,
or which imports a snapshot the caller exported (`source_snapshot`). Worker connections import
the same snapshot (SET TRANSACTION SNAPSHOT), so every range of every table is read as of one
instant per side while ranges are read in parallel. Both sides are read at the same time.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import psycopg
from psycopg import sql

from pgcutover.db import Endpoint, Role, connect
from pgcutover.errors import PgcutoverError

#: Session settings that make text forms and plans the same on both servers: dates and times
#: in UTC/ISO, floats exact, UTF-8 text; row-level security raises an error instead of
#: silently hiding rows; no parallel plans or sorts (ranges are read in key order through the
#: key's index, and in parallel by pgcutover itself); no JIT compile per range query. The
#: anchor holds its snapshot idle in a transaction while the workers read, so the
#: idle-in-transaction timeout of a named environment's session limits is lifted; its
#: statement_timeout and the client-side read timeout still bound every range.
SESSION = {
    "TimeZone": "UTC",
    "DateStyle": "ISO",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
    "row_security": "off",
    "enable_sort": "off",
    "max_parallel_workers_per_gather": "0",
    "jit": "off",
    "idle_in_transaction_session_timeout": "0",
}

Task = TypeVar("Task")
Result = TypeVar("Result")


class SnapshotError(PgcutoverError):
    """The snapshot to read could not be taken or joined."""


def _open(endpoint: Endpoint, role: Role, snapshot: str | None) -> psycopg.Connection:
    """A connection in a read-only repeatable-read transaction, at `snapshot` if given."""
    conn = connect(endpoint, role=role)
    try:
        conn.execute(
            "SELECT set_config(name, value, false)"
            " FROM unnest(%s::text[], %s::text[]) AS s(name, value)",
            (list(SESSION), list(SESSION.values())),
        )
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if snapshot is not None:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    except psycopg.Error as error:
        conn.close()
        raise SnapshotError(
            f"cannot open a read-only snapshot{f' {snapshot}' if snapshot else ''} on "
            f"{endpoint.label} ({endpoint.safe_dsn()}): {endpoint.redact(str(error).strip())}",
            "the transaction that exported the snapshot must stay open while it is read; "
            "the user needs SELECT on every table and BYPASSRLS (or to own the tables) "
            "so that row-level security hides nothing",
        ) from None
    return conn


class Side:
    """One database read by an anchor connection and `workers` parallel connections, all at
    one snapshot. Use as a context manager (it takes the snapshot on entry and closes every
    connection on exit); `submit` runs `work(conn, side_name, ...)` on a worker. A named
    environment's connection cap bounds the workers (the anchor takes one connection)."""

    def __init__(
        self, name: str, endpoint: Endpoint, workers: int, snapshot: str | None = None
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.role: Role = "source" if name == "source" else "target"
        self.snapshot = snapshot
        self._local = threading.local()
        self._opened: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        if endpoint.limits is not None:
            workers = max(1, min(workers, endpoint.limits.max_connections - 1))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"content-{name}")
        self.anchor: psycopg.Connection | None = None

    def __enter__(self) -> Side:
        self.anchor = _open(self.endpoint, self.role, self.snapshot)
        if self.snapshot is None:
            self.snapshot = str(self.anchor.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for conn in [*self._opened, self.anchor]:
            if conn is not None:
                conn.close()

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = _open(self.endpoint, self.role, self.snapshot)
            with self._lock:
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    def _run(self, work: Callable[..., Result], *args: object) -> Result:
        conn = self._connection()
        try:
            return work(conn, self.name, *args)
        except BaseException:
            conn.close()  # its transaction is unusable; the next task opens a fresh one
            raise

    def submit(self, work: Callable[..., Result], *args: object) -> Future[Result]:
        """Run `work(conn, side_name, *args)` on one of this side's worker connections."""
        return self._pool.submit(self._run, work, *args)


class Pairs(Generic[Task, Result]):
    """Run each task on both sides at once and hand both results to `settle`, which may
    return further tasks (bisection). At most `window` tasks are in flight, which bounds
    the memory held by ranges read on one side and waiting for the other."""

    def __init__(
        self,
        source: Side,
        target: Side,
        work: Callable[..., Result],
        settle: Callable[[Task, Result, Result], Iterable[Task]],
        failed: Callable[[Task, BaseException], None],
        window: int,
    ) -> None:
        self.source, self.target = source, target
        self.work, self.settle, self.failed = work, settle, failed
        self.window = window

    def run(self, tasks: Iterable[Task]) -> None:
        queue: deque[Task] = deque(tasks)
        pending: deque[tuple[Task, Future[Result], Future[Result]]] = deque()
        while queue or pending:
            while queue and len(pending) < self.window:
                task = queue.popleft()
                pending.append(
                    (task, self.source.submit(self.work, task), self.target.submit(self.work, task))
                )
            task, source, target = pending.popleft()
            try:
                queue.extend(self.settle(task, source.result(), target.result()))
            except Exception as error:  # one table's failure is reported; the others go on
                self.failed(task, error)
