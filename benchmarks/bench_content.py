"""How fast is content parity, against the floor and against the peers? Two identical databases
on two embedded PostgreSQL 18 servers (pgvector 0.8): `items`, N ordinary rows of about 220
bytes (bigint key), and `chunks`, M 384-dimension vectors (varchar key, stored in random key
order) synthesised around real MiniLM embeddings from pgcutover's cache (random unit vectors
when the cache is empty). Timed in the same run, both sides always read at once:

    floor        COPY <table> TO STDOUT (FORMAT BINARY) of both tables on both sides, discarded
                 (one connection per table and side, i.e. the same 2 connections per side as
                 pgcutover's default), read with pgcutover's own COPY reader (copyout.py)
    floor-pg     the same read with psycopg's Copy iterator (more client CPU per row)
    reladiff     reladiff 0.6 (PyPI) hash-diff over every column, thread_count 2 per database
    hashtext     pgcopydb's `compare data` query, count(1) and md5 of sum(hashtext(row::text)),
                 per table, both tables and both sides at once
    stream       pgcutover content check, stream mode (fixtures/content.toml defaults): both
                 sides in physical order, rows hashed into key-hashed buckets
    bisect       pgcutover content check, bisect mode
    stream+10 / bisect+10   the same with 10 rows of `items` changed on the target: all 10 must
                 be named, nothing else

    python benchmarks/bench_content.py [--rows 1000000] [--vectors 200000] [--repeat 5]
        [--json PATH]

Each method runs --repeat times, interleaved; the table shows the median and the fastest run,
ratios of medians, and the median CPU seconds the method cost this process and both servers
together (less sensitive than wall time to what else runs on the machine). Goals: stream <=
1.15x the floor, hashtext >= 2x and reladiff >= 3x the stream's time. `--json` writes the
figures, the ratios (ratios.stream_to_floor, ratios.hashtext_to_stream,
ratios.reladiff_to_stream ..., and the same on CPU time under ratios.cpu) and the machine's
facts. Building the databases takes about a minute at full size. Numbers depend on the
machine and on whatever else runs on it: say which (and the load average the JSON records)
when you quote one.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import reladiff
from psycopg import sql
from record import Record, Timings, load_average, server_versions

from pgcutover.checks.base import Pair
from pgcutover.checks.content import compare
from pgcutover.checks.content.copyout import CopyOut
from pgcutover.config import OPTIONS, Settings, build_settings
from pgcutover.db import Endpoint, connect
from pgcutover.inventory import discover
from pgcutover.providers.embedded import EmbeddedServer, start_embedded

DATABASE = "bench"
DIMENSIONS = 384
CHANGED_ROWS = 10
GOALS = {"stream_to_floor": 1.15, "hashtext_to_stream": 2.0, "reladiff_to_stream": 3.0}
TABLES = {
    "items": ("account", "title", "body", "score", "created_at"),
    "chunks": ("item_id", "content", "embedding", "created_at"),
}
SCHEMA = """
CREATE EXTENSION vector;
CREATE TABLE items (id bigint PRIMARY KEY, account uuid NOT NULL, title text NOT NULL,
    body text NOT NULL, score double precision, created_at timestamptz NOT NULL);
CREATE TABLE chunks (id varchar PRIMARY KEY, item_id bigint NOT NULL, content text NOT NULL,
    embedding vector(384) NOT NULL, created_at timestamptz NOT NULL);
"""
ITEMS = """
INSERT INTO items
SELECT i, md5(i::text)::uuid, 'title ' || md5((i * 7)::text),
       repeat(md5((i * 3)::text), 4) || ' ' || left(md5((i * 5)::text), 10),
       (i %% 1000) / 7.0, timestamptz '2026-01-01' + i * interval '1 second'
FROM generate_series(1, %s) AS i
"""
PGCOPYDB = (
    "select count(1) as cnt, md5(format('%%s-%%s', sum(hashtext(row({cols})::text)::bigint),"
    " count(1)))::uuid as chksum from only {table}"
)
#: created_at of the first chunk, as binary COPY wants it: microseconds since 2000-01-01 UTC.
EPOCH_MICROS = int(
    (datetime(2026, 1, 1, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC))
    / timedelta(microseconds=1)
)


def base_vectors(count: int) -> np.ndarray:
    """Real MiniLM embeddings from the cache when there are some, else random unit vectors."""
    cache = Path.home() / ".cache" / "pgcutover" / "embeddings.sqlite"
    rng = np.random.default_rng(7)
    if cache.exists():
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT vector FROM embedding LIMIT ?", (count,)).fetchall()
        real = [np.frombuffer(row[0], dtype=np.float32) for row in rows]
        if real and len(real[0]) == DIMENSIONS:
            return np.stack(real)
    vectors = rng.standard_normal((count, DIMENSIONS), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunk_rows(start: int, count: int, total: int, bases: np.ndarray) -> bytes:
    """Binary COPY tuples for chunks [start, start + count): keys scattered over the table."""
    rng = np.random.default_rng(start)
    noise = rng.standard_normal((count, DIMENSIONS), dtype=np.float32) * 0.05
    vectors = bases[np.arange(start, start + count) % len(bases)] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    big_endian = vectors.astype(">f4")
    parts = []
    for offset in range(count):
        number = start + offset
        key = f"chunk-{(number * 7919) % total:09d}".encode()
        content = f"chunk {number} of a synthetic document, lorem ipsum dolor sit".encode()
        vector = struct.pack(">hh", DIMENSIONS, 0) + big_endian[offset].tobytes()
        parts.append(
            struct.pack(">hi", 5, len(key))
            + key
            + struct.pack(">iq", 8, number)
            + struct.pack(">i", len(content))
            + content
            + struct.pack(">i", len(vector))
            + vector
            + struct.pack(">iq", 8, EPOCH_MICROS + number * 1_000_000)
        )
    return b"".join(parts)


def build(first: Endpoint, second: Endpoint, rows: int, vectors: int) -> None:
    """Generate both tables on `first`, copy them byte for byte to `second`, analyse."""
    for endpoint in (first, second):
        with connect(endpoint.with_dbname("postgres"), role="admin") as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        with connect(endpoint, role="admin") as conn:
            conn.execute(SCHEMA)
    bases = base_vectors(5000)
    with connect(first, role="admin") as conn:
        conn.execute(ITEMS, (rows,))
        with conn.cursor().copy("COPY chunks FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            for start in range(0, vectors, 10_000):
                copy.write(chunk_rows(start, min(10_000, vectors - start), vectors, bases))
            copy.write(struct.pack(">h", -1))
    with connect(first, role="admin") as src, connect(second, role="admin") as dst:
        for table in TABLES:
            with (
                src.cursor().copy(f"COPY {table} TO STDOUT (FORMAT BINARY)") as out,
                dst.cursor().copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as into,
            ):
                for data in out:
                    into.write(data)
    for endpoint in (first, second):
        with connect(endpoint, role="admin") as conn:
            conn.execute("VACUUM ANALYZE")


def concurrently(jobs: list[Callable[[], object]]) -> None:
    """Run every job in its own thread and wait; the first error is raised."""
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as error:  # re-raised in the caller
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def floor(pair: Pair, reader: str) -> None:
    """Every row of both tables on both sides, discarded; `reader` is pgcutover's CopyOut or
    psycopg's own Copy iterator."""

    def stream(endpoint: Endpoint, table: str) -> None:
        statement = sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(sql.Identifier(table))
        with connect(endpoint, role="source") as conn:
            if reader == "pgcutover":
                for _ in CopyOut(conn, statement):
                    pass
                return
            with conn.cursor().copy(statement) as copy:
                for _ in copy:
                    pass

    concurrently(
        [lambda e=e, t=t: stream(e, t) for e in (pair.source, pair.target) for t in TABLES]
    )


def hashtext(pair: Pair) -> None:
    def query(endpoint: Endpoint, table: str) -> None:
        cols = ", ".join(("id", *TABLES[table]))
        with connect(endpoint, role="source") as conn:
            conn.execute(PGCOPYDB.format(cols=cols, table=table)).fetchall()

    concurrently([lambda e=e, t=t: query(e, t) for e in (pair.source, pair.target) for t in TABLES])


def uri(endpoint: Endpoint) -> str:
    """reladiff wants a URI with the password; it is never printed."""
    return (
        f"postgresql://{endpoint.user}:{endpoint.password}@{endpoint.host}:{endpoint.port}"
        f"/{endpoint.dbname}"
    )


def with_reladiff(pair: Pair) -> None:
    for table, columns in TABLES.items():
        one = reladiff.connect_to_table(uri(pair.source), table, "id", thread_count=2)
        two = reladiff.connect_to_table(uri(pair.target), table, "id", thread_count=2)
        with reladiff.diff_tables(
            one, two, extra_columns=columns, threaded=True, max_threadpool_size=4
        ) as diff:
            found = list(diff)
        if found:
            raise RuntimeError(f"reladiff found {len(found)} differences in identical {table}")


def pgcutover(pair: Pair, settings: Settings, expected: set[str]) -> Callable[[], None]:
    """A pgcutover pass that must report exactly `expected` as changed keys of items."""

    def run() -> None:
        results = compare(pair, settings)
        failing = [r for r in results if r.status != "pass"]
        named = {
            key["id"]
            for r in failing
            if r.id == "content.public.items" and r.status == "fail"
            for key in r.details["keys"]["changed"]
        }
        clean = all(r.id == "content.public.items" and r.status == "fail" for r in failing)
        if not clean or named != expected:
            raise RuntimeError(f"{settings.content_mode}: expected {expected}, got {failing}")

    return run


def change_rows(endpoint: Endpoint, ids: list[int], undo: bool) -> None:
    """Append a character to (or remove it from) the title of `ids` on one side."""
    new = "left(title, -1)" if undo else "title || '!'"
    with connect(endpoint, role="admin") as conn:
        conn.execute(f"UPDATE items SET title = {new} WHERE id = ANY(%s)", (ids,))


def measure(pair: Pair, settings: Settings, rows: int, repeat: int, timings: Timings) -> None:
    """Every method once per round, in the same order each round."""
    stream_settings = replace(settings, content_mode="stream")
    bisect_settings = replace(settings, content_mode="bisect")
    changed = sorted(
        int(i) for i in np.random.default_rng(3).choice(rows, CHANGED_ROWS, replace=False) + 1
    )
    for _ in range(repeat):
        timings.time("floor", lambda: floor(pair, "pgcutover"))
        timings.time("floor-pg", lambda: floor(pair, "psycopg"))
        timings.time("stream", pgcutover(pair, stream_settings, set()))
        timings.time("bisect", pgcutover(pair, bisect_settings, set()))
        timings.time("hashtext", lambda: hashtext(pair))
        timings.time("reladiff", lambda: with_reladiff(pair))
        change_rows(pair.target, changed, undo=False)
        try:
            expected = {str(i) for i in changed}
            timings.time("stream+10", pgcutover(pair, stream_settings, expected))
            timings.time("bisect+10", pgcutover(pair, bisect_settings, expected))
        finally:
            change_rows(pair.target, changed, undo=True)


def ratios(median: Callable[[str], float]) -> dict[str, float]:
    """The tracked ratios of medians (goals in GOALS) and the other modes' cost."""
    return {
        "stream_to_floor": median("stream") / median("floor"),
        "hashtext_to_stream": median("hashtext") / median("stream"),
        "reladiff_to_stream": median("reladiff") / median("stream"),
        "bisect_to_floor": median("bisect") / median("floor"),
        "stream_changed_to_floor": median("stream+10") / median("floor"),
        "floor_psycopg_to_floor": median("floor-pg") / median("floor"),
    }


def table(timings: Timings, tracked: dict[str, float]) -> str:
    """Medians of wall time (and of CPU time: client + both servers) per method."""
    floor_s, stream_s = timings.median("floor"), timings.median("stream")
    floor_cpu = timings.median_cpu("floor")
    lines = [
        f"{'method':<11} {'median s':>9} {'best s':>8} {'/ floor':>8} {'/ stream':>8}"
        f" {'CPU s':>7} {'CPU / floor':>11} {'client CPU s':>12}",
    ]
    for name, times in timings.wall.items():
        median, cpu = timings.median(name), timings.median_cpu(name)
        client = statistics.median(timings.client[name])
        lines.append(
            f"{name:<11} {median:>9.2f} {min(times):>8.2f} {median / floor_s:>8.2f}"
            f" {median / stream_s:>8.2f} {cpu:>7.2f} {cpu / floor_cpu:>11.2f} {client:>12.2f}"
        )
    lines.append(f"load average now {load_average()}")
    lines += [
        f"{name}: {tracked[name]:.2f} (goal {'<=' if name == 'stream_to_floor' else '>='} {goal})"
        for name, goal in GOALS.items()
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write figures, ratios and machine facts here")
    args = parser.parse_args()
    record = Record("content", {k: v for k, v in vars(args).items() if k != "json"})
    base = Path(tempfile.mkdtemp(prefix="bench-content-"))
    base.chmod(0o711)
    servers: list[EmbeddedServer] = []
    try:
        for label in ("source", "target"):
            servers.append(start_embedded("pg18", base / label, f"bench {label} (PG18)"))
        source, target = (server.endpoint.with_dbname(DATABASE) for server in servers)
        started = time.perf_counter()
        build(source, target, args.rows, args.vectors)
        seconds = time.perf_counter() - started
        print(f"built {args.rows} items + {args.vectors} chunks on each side in {seconds:.0f} s")
        values = {option.name: option.default for option in OPTIONS}
        settings = build_settings(values, migrate=None, allow_destructive=False, rootdir=base)
        with connect(source, role="source") as conn:
            pair = Pair(source, target, discover(conn, settings))
        timings = Timings([server.postmaster() for server in servers])  # type: ignore[misc]
        measure(pair, settings, args.rows, args.repeat, timings)
        tracked = ratios(timings.median)
        print(table(timings, tracked))
        with connect(pair.source, role="source") as conn:
            versions = server_versions(conn)
        record.write(
            args.json,
            servers={"source": versions, "target": versions},
            figures=timings.figures(),
            ratios={**tracked, "cpu": ratios(timings.median_cpu)},
            goals=GOALS,
            build_seconds=seconds,
        )
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
