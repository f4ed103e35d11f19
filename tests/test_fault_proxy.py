"""FaultProxy: each toxic measurably does what it says, against tiny local TCP servers."""

from __future__ import annotations

import contextlib
import random
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from pgcutover.faults.proxy import Bandwidth, FaultProxy, Latency, ResetPeer, Slicer, Stall

PAYLOAD = random.Random(7).randbytes(200_000)


@contextlib.contextmanager
def serve(handle: Callable[[socket.socket], None]) -> Iterator[tuple[str, int]]:
    """Run a threaded TCP server on 127.0.0.1 calling `handle` per connection."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(OSError):
                handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, n: int, bufsize: int = 65536) -> tuple[bytes, int]:
    """Read exactly n bytes; returns them and how many recv calls it took."""
    chunks, calls = [], 0
    while (got := sum(map(len, chunks))) < n:
        chunk = sock.recv(min(bufsize, n - got))
        calls += 1
        if not chunk:
            raise EOFError(f"EOF after {got} of {n} bytes")
        chunks.append(chunk)
    return b"".join(chunks), calls


def round_trip(sock: socket.socket) -> float:
    start = time.perf_counter()
    sock.sendall(b"x")
    assert recv_exact(sock, 1)[0] == b"x"
    return time.perf_counter() - start


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def echo_proxy() -> Iterator[FaultProxy]:
    with serve(echo) as upstream, FaultProxy(upstream) as proxy:
        yield proxy


def test_forwards_bytes_and_counts_them(echo_proxy: FaultProxy) -> None:
    assert echo_proxy.port != 0
    with connect(echo_proxy) as sock:
        sock.sendall(PAYLOAD[:10_000])
        assert recv_exact(sock, 10_000)[0] == PAYLOAD[:10_000]
        assert echo_proxy.connections == 1
    assert echo_proxy.bytes_upstream == 10_000
    assert echo_proxy.bytes_downstream == 10_000
    assert wait_until(lambda: echo_proxy.connections == 0)


def test_latency_is_added_to_each_round_trip_and_removed_live(echo_proxy: FaultProxy) -> None:
    with connect(echo_proxy) as sock:
        baseline = statistics.median(round_trip(sock) for _ in range(5))
        name = echo_proxy.add(Latency(40), direction="both")
        delayed = [round_trip(sock) for _ in range(5)]
        echo_proxy.remove(name)
        healed = statistics.median(round_trip(sock) for _ in range(5))
    # 40 ms each way; the upper bound catches delays applied more than once.
    assert min(delayed) >= 0.080
    assert statistics.median(delayed) - baseline >= 0.078
    assert statistics.median(delayed) < 0.080 + baseline + 0.05
    assert healed < baseline + 0.02


def test_latency_jitter_varies_within_bounds(echo_proxy: FaultProxy) -> None:
    echo_proxy.add(Latency(30, jitter_ms=20), direction="downstream")
    with connect(echo_proxy) as sock:
        rtts = [round_trip(sock) for _ in range(10)]
    assert min(rtts) >= 0.010
    assert max(rtts) < 0.050 + 0.03
    assert max(rtts) - min(rtts) > 0.005


def source(done: threading.Event) -> Callable[[socket.socket], None]:
    """Server that answers any request with PAYLOAD, then waits for the peer to go away."""

    def handle(conn: socket.socket) -> None:
        try:
            conn.recv(16)
            conn.sendall(PAYLOAD)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
        finally:
            done.set()

    return handle


def timed_download(proxy: FaultProxy) -> tuple[float, bytes]:
    with connect(proxy) as sock:
        start = time.perf_counter()
        sock.sendall(b"go")
        data, _ = recv_exact(sock, len(PAYLOAD))
        return time.perf_counter() - start, data


def test_bandwidth_caps_throughput() -> None:
    with serve(source(threading.Event())) as upstream, FaultProxy(upstream) as proxy:
        baseline, _ = timed_download(proxy)
        proxy.add(Bandwidth(400_000), direction="downstream")
        elapsed, data = timed_download(proxy)
    assert data == PAYLOAD
    assert baseline < 0.2
    # 200 KB at 400 KB/s takes 0.5 s.
    assert 0.49 <= elapsed <= 0.65, f"{len(PAYLOAD) / elapsed:.0f} B/s"


def test_reset_peer_closes_both_sides_after_n_bytes() -> None:
    server_done = threading.Event()
    with serve(source(server_done)) as upstream, FaultProxy(upstream) as proxy:
        proxy.add(ResetPeer(after_bytes=10_000), direction="downstream")
        received = bytearray()
        with connect(proxy) as sock:
            sock.sendall(b"go")
            # SO_LINGER 0 makes the close a RST, which recv reports as a reset, not EOF.
            with pytest.raises(ConnectionResetError):
                while chunk := sock.recv(65536):
                    received += chunk
        assert proxy.bytes_downstream == 10_000
        assert server_done.wait(2), "upstream side was not closed"
        assert wait_until(lambda: proxy.connections == 0)
    assert bytes(received) == PAYLOAD[:10_000]


def test_stall_holds_data_without_closing_until_removed(echo_proxy: FaultProxy) -> None:
    with connect(echo_proxy) as sock:
        round_trip(sock)
        name = echo_proxy.add(Stall(), direction="upstream")
        sock.sendall(b"held")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(16)
        assert echo_proxy.connections == 1
        echo_proxy.remove(name)
        sock.settimeout(2)
        assert recv_exact(sock, 4)[0] == b"held"


def test_slicer_splits_data_into_many_small_reads(echo_proxy: FaultProxy) -> None:
    payload = PAYLOAD[:20_000]
    with connect(echo_proxy) as sock:
        sock.sendall(payload)
        _, baseline_reads = recv_exact(sock, len(payload), bufsize=4096)
        echo_proxy.add(Slicer(average_size=100, size_variation=50, delay_us=200))
        sock.sendall(payload)
        data, sliced_reads = recv_exact(sock, len(payload), bufsize=4096)
    assert data == payload
    assert baseline_reads <= 10
    # At most 150-byte segments -> at least 134 of them; allow some to coalesce on arrival.
    assert sliced_reads >= 60


def test_events_record_inject_and_heal(echo_proxy: FaultProxy) -> None:
    slow = echo_proxy.add(Latency(5), direction="both")
    stall = echo_proxy.add(Stall(), name="black-hole")
    with pytest.raises(ValueError, match="already injected"):
        echo_proxy.add(Stall(), name="black-hole")
    echo_proxy.remove(slow)
    with pytest.raises(KeyError):
        echo_proxy.remove(slow)
    echo_proxy.clear()
    events = echo_proxy.events
    assert [(e["action"], e["name"]) for e in events] == [
        ("inject", slow),
        ("inject", stall),
        ("heal", slow),
        ("heal", stall),
    ]
    assert events[0]["toxic"] == "Latency(ms=5, jitter_ms=0)"
    assert [e["direction"] for e in events] == ["both", "downstream", "both", "downstream"]
    times = [e["t"] for e in events]
    assert times == sorted(times)
    assert all(datetime.fromisoformat(e["at"]).tzinfo is not None for e in events)
    assert echo_proxy.toxics == {}


def test_stop_heals_and_closes_live_connections() -> None:
    with serve(echo) as upstream:
        proxy = FaultProxy(upstream).start()
        address = proxy.address
        sock = connect(proxy)
        round_trip(sock)
        proxy.add(Stall(), direction="both")
        proxy.stop()
        with sock, contextlib.suppress(ConnectionResetError):
            assert sock.recv(16) == b""
        assert [e["action"] for e in proxy.events] == ["inject", "heal"]
        assert proxy.connections == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=1).close()
