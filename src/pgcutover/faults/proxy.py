"""A small TCP fault-injection proxy with Toxiproxy-style toxics, for synchronous test code.

`FaultProxy` sits between a client (psycopg, pg_dump, ...) and an upstream server and forwards
bytes both ways. Toxics are injected and healed at run time, Jepsen-nemesis style, and act on
live connections: "upstream" is client -> server, "downstream" is server -> client. Every
inject and heal is logged with wall and monotonic timestamps so a report can line faults up
with what the client saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

Direction = Literal["upstream", "downstream"]
Side = Literal["upstream", "downstream", "both"]

LISTEN_HOST = "127.0.0.1"
READ_SIZE = 64 * 1024
CONTROL_TIMEOUT_S = 10.0

_T = TypeVar("_T")
# One planned write: seconds to wait first, then the bytes to send.
_Step = tuple[float, bytes]


@dataclass(frozen=True)
class Latency:
    """Delays each chunk by `ms` plus a uniform random jitter in [-jitter_ms, +jitter_ms].

    Chunks are delayed one after another, so bulk throughput drops to about 64 KiB per delay.
    """

    ms: float
    jitter_ms: float = 0

    def __post_init__(self) -> None:
        if self.ms < 0 or self.jitter_ms < 0:
            raise ValueError("ms and jitter_ms must be >= 0")


@dataclass(frozen=True)
class Bandwidth:
    """Caps throughput at `bytes_per_second`, pacing data in pieces of at most 100 ms each."""

    bytes_per_second: int

    def __post_init__(self) -> None:
        if self.bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be > 0")


@dataclass(frozen=True)
class ResetPeer:
    """Lets `after_bytes` bytes through, then aborts both sides of the connection with a RST.

    Bytes are counted per connection from when the toxic first sees data on it, so injecting
    it mid-transfer means "reset after `after_bytes` more bytes".
    """

    after_bytes: int

    def __post_init__(self) -> None:
        if self.after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")


@dataclass(frozen=True)
class Stall:
    """Holds all data without closing anything until removed, then lets it flow again.

    This is Toxiproxy's "timeout" toxic with timeout 0: a hung peer or a black-holed network.
    """


@dataclass(frozen=True)
class Slicer:
    """Splits data into segments of `average_size` +- `size_variation` bytes, each written on
    its own with `delay_us` microseconds between them, to exercise partial-read handling."""

    average_size: int
    size_variation: int = 0
    delay_us: int = 0

    def __post_init__(self) -> None:
        if self.average_size < 1 or self.delay_us < 0:
            raise ValueError("average_size must be >= 1 and delay_us >= 0")
        if not 0 <= self.size_variation < self.average_size:
            raise ValueError("size_variation must be in [0, average_size)")


Toxic = Latency | Bandwidth | ResetPeer | Stall | Slicer


def _shape(steps: list[_Step], toxic: Toxic) -> list[_Step]:
    """Apply one timing/segmenting toxic to the planned writes of a chunk."""
    match toxic:
        case Latency(ms=ms, jitter_ms=jitter_ms):
            delay = max(0.0, ms + random.uniform(-jitter_ms, jitter_ms)) / 1000
            (wait, data), *rest = steps
            return [(wait + delay, data), *rest]
        case Slicer(average_size=size, size_variation=variation, delay_us=delay_us):
            sliced: list[_Step] = []
            for wait, data in steps:
                offset = 0
                while offset < len(data):
                    length = random.randint(size - variation, size + variation)
                    pause = wait if offset == 0 else delay_us / 1_000_000
                    sliced.append((pause, data[offset : offset + length]))
                    offset += length
            return sliced
        case Bandwidth(bytes_per_second=rate):
            piece = max(1, rate // 10)
            paced: list[_Step] = []
            for wait, data in steps:
                for offset in range(0, len(data), piece):
                    part = data[offset : offset + piece]
                    paced.append(((wait if offset == 0 else 0.0) + len(part) / rate, part))
            return paced
        case _:  # Stall and ResetPeer act on each write in FaultProxy._forward instead
            return steps


def _abort(writer: asyncio.StreamWriter, rst: bool) -> None:
    """Close a stream at once, dropping buffered data; with `rst`, make the kernel send a RST."""
    sock = writer.get_extra_info("socket")
    if rst and sock is not None:
        with contextlib.suppress(OSError):  # socket already gone: just abort below
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Connection:
    """One proxied client connection: both streams, its pump tasks and per-direction state."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    handler: asyncio.Task[None]
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    sent: dict[Direction, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})
    # Byte count in a direction when a ResetPeer toxic first saw this connection.
    reset_marks: dict[tuple[str, Direction], int] = field(default_factory=dict)

    def close(self) -> None:
        """Close both sides gracefully, flushing what was already written."""
        self.client.close()
        self.server.close()

    def abort(self, rst: bool = False) -> None:
        """Close both sides at once; with `rst` the peers see a connection reset."""
        _abort(self.client, rst)
        _abort(self.server, rst)


class FaultProxy:
    """TCP proxy on 127.0.0.1 that forwards to `upstream` and applies toxics injected at run time.

    The asyncio loop runs in a background thread so that synchronous callers (pytest, psycopg,
    a pg_dump subprocess) can connect to `address` and inject faults from their own thread.
    """

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._changed: asyncio.Condition | None = None
        self._toxics: dict[str, tuple[Toxic, Side]] = {}
        self._connections: set[_Connection] = set()
        self._events: list[dict[str, Any]] = []
        self._bytes: dict[Direction, int] = {"upstream": 0, "downstream": 0}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Start the loop thread and the listener; returns self so it can be chained."""
        if self._loop is not None:
            raise RuntimeError("proxy already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"FaultProxy->{self.upstream}", daemon=True
        )
        self._thread.start()
        self._run(self._listen())
        return self

    def stop(self) -> None:
        """Heal every toxic, close the listener and all live connections, end the thread."""
        if self._loop is None or self._thread is None:
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observation -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (resolved from port 0 at start)."""
        if self._port is None:
            raise RuntimeError("proxy is not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) for clients to connect to instead of the upstream."""
        return (LISTEN_HOST, self.port)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Inject/heal log: dicts with at (ISO wall time), t (monotonic), action, toxic,
        direction and name, in order."""
        return list(self._events)

    @property
    def toxics(self) -> dict[str, tuple[Toxic, Side]]:
        """Currently injected toxics by name, with the direction each applies to."""
        return dict(self._toxics)

    @property
    def bytes_upstream(self) -> int:
        """Bytes forwarded client -> server over all connections."""
        return self._bytes["upstream"]

    @property
    def bytes_downstream(self) -> int:
        """Bytes forwarded server -> client over all connections."""
        return self._bytes["downstream"]

    @property
    def connections(self) -> int:
        """Number of live proxied connections."""
        return len(self._connections)

    # -- fault control ---------------------------------------------------------------------

    def add(self, toxic: Toxic, direction: Side = "downstream", name: str | None = None) -> str:
        """Inject `toxic` on `direction` for live and future connections; returns its name.

        The default name is Toxiproxy's "<type>_<direction>"; names must be unique.
        """
        if direction not in ("upstream", "downstream", "both"):
            raise ValueError(f"direction must be upstream, downstream or both, not {direction!r}")
        name = name or f"{type(toxic).__name__.lower()}_{direction}"
        self._run(self._inject(name, toxic, direction))
        return name

    def remove(self, name: str) -> None:
        """Heal the toxic called `name`; data held by a Stall starts flowing again."""
        self._run(self._heal(name))

    def clear(self) -> None:
        """Heal every injected toxic."""
        self._run(self._heal_all())

    # -- loop-thread internals -------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run `coro` on the proxy loop and wait for its result from the caller's thread."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("proxy is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    async def _listen(self) -> None:
        self._changed = asyncio.Condition()
        self._server = await asyncio.start_server(self._serve, LISTEN_HOST, self._requested_port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        await self._heal_all()
        assert self._server is not None
        self._server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.abort()
            for pump in conn.pumps:
                pump.cancel()
        await asyncio.gather(*(conn.handler for conn in connections), return_exceptions=True)
        await self._server.wait_closed()

    def _log(self, action: Literal["inject", "heal"], name: str, toxic: Toxic, side: Side) -> None:
        self._events.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "t": time.monotonic(),
                "action": action,
                "toxic": repr(toxic),
                "direction": side,
                "name": name,
            }
        )

    async def _inject(self, name: str, toxic: Toxic, side: Side) -> None:
        if name in self._toxics:
            raise ValueError(f"a toxic named {name!r} is already injected")
        self._toxics[name] = (toxic, side)
        self._log("inject", name, toxic, side)
        await self._notify()

    async def _heal(self, name: str) -> None:
        toxic, side = self._toxics.pop(name)
        for conn in self._connections:  # a later toxic reusing the name starts counting afresh
            conn.reset_marks.pop((name, "upstream"), None)
            conn.reset_marks.pop((name, "downstream"), None)
        self._log("heal", name, toxic, side)
        await self._notify()

    async def _heal_all(self) -> None:
        for name in list(self._toxics):
            await self._heal(name)

    async def _notify(self) -> None:
        """Wake pumps waiting on a Stall so they re-check the toxics."""
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _active(self, direction: Direction) -> list[tuple[str, Toxic]]:
        return [
            (name, toxic)
            for name, (toxic, side) in self._toxics.items()
            if side in (direction, "both")
        ]

    def _stalled(self, direction: Direction) -> bool:
        return any(isinstance(toxic, Stall) for _, toxic in self._active(direction))

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        """Handle one accepted client: connect upstream and pump both directions until done."""
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(client_writer, rst=True)
            return
        handler = asyncio.current_task()
        assert handler is not None
        conn = _Connection(client_writer, server_writer, handler)
        self._connections.add(conn)
        conn.pumps = [
            asyncio.create_task(self._pump(conn, client_reader, server_writer, "upstream")),
            asyncio.create_task(self._pump(conn, server_reader, client_writer, "downstream")),
        ]
        try:
            await asyncio.wait(conn.pumps)
        finally:
            conn.close()
            self._connections.discard(conn)

    async def _pump(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        """Copy one direction until EOF, passing each chunk through the toxics."""
        try:
            while data := await reader.read(READ_SIZE):
                await self._forward(conn, direction, data, writer)
            writer.write_eof()
        except OSError:
            # Peer reset, or a ResetPeer toxic fired: the whole connection is over.
            conn.abort()

    async def _forward(
        self, conn: _Connection, direction: Direction, data: bytes, writer: asyncio.StreamWriter
    ) -> None:
        """Write one chunk as the toxics active right now dictate."""
        steps: list[_Step] = [(0.0, data)]
        for _, toxic in self._active(direction):
            steps = _shape(steps, toxic)
        for wait, piece in steps:
            if wait:
                await asyncio.sleep(wait)
            await self._wait_unstalled(direction)
            allowed = self._reset_allowance(conn, direction)
            if allowed is not None and allowed <= len(piece):
                self._count(conn, direction, allowed)
                writer.write(piece[:allowed])
                await writer.drain()
                conn.abort(rst=True)
                raise ConnectionResetError(f"ResetPeer after {conn.sent[direction]} bytes")
            self._count(conn, direction, len(piece))
            writer.write(piece)
            await writer.drain()

    async def _wait_unstalled(self, direction: Direction) -> None:
        assert self._changed is not None
        async with self._changed:
            await self._changed.wait_for(lambda: not self._stalled(direction))

    def _reset_allowance(self, conn: _Connection, direction: Direction) -> int | None:
        """Bytes that may still pass before the tightest active ResetPeer fires, if any."""
        allowances = []
        for name, toxic in self._active(direction):
            if isinstance(toxic, ResetPeer):
                mark = conn.reset_marks.setdefault((name, direction), conn.sent[direction])
                allowances.append(max(0, toxic.after_bytes - (conn.sent[direction] - mark)))
        return min(allowances, default=None)

    def _count(self, conn: _Connection, direction: Direction, n: int) -> None:
        conn.sent[direction] += n
        self._bytes[direction] += n
