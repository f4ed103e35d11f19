"""What a server says about its long work, as progress readings (see pgcutover.progress):
rows COPY has moved (pg_stat_progress_copy, PostgreSQL 14+) and index builds
(pg_stat_progress_create_index). Each reader is a generator holding one connection of its
own; it reads only statistics views, so a source stays untouched."""

from __future__ import annotations

from collections.abc import Generator

from pgcutover.db import Endpoint, Role, connection
from pgcutover.progress import Reading

COPYING = """
SELECT n.nspname || '.' || c.relname, p.tuples_processed
FROM pg_stat_progress_copy p
JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.datname = current_database()
"""
#: COPY ... TO of other sessions (a check streaming rows out), per backend.
STREAMING = """
SELECT pid, tuples_processed FROM pg_stat_progress_copy
WHERE datname = current_database() AND command = 'COPY TO' AND pid <> pg_backend_pid()
"""
BUILDING = """
SELECT n.nspname || '.' || c.relname, p.phase, p.blocks_done, p.blocks_total, p.tuples_done
FROM pg_stat_progress_create_index p
JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.datname = current_database()
ORDER BY p.blocks_total DESC, p.blocks_done LIMIT 1
"""
#: Options of a watching session: it must never wait long on anything.
OPTIONS = "-c statement_timeout=2000"


def copied_rows(
    watched: Endpoint, role: Role, expected: dict[str, int]
) -> Generator[Reading, None, None]:
    """Rows COPY has moved in `watched`'s database, out of `expected` (schema.table -> the
    source's estimated rows, whichever side is watched). A table whose COPY was seen and has
    ended counts in full; one seen running counts its rows so far."""
    total = sum(expected.values())
    seen: dict[str, int] = {}
    with connection(watched, role=role, options=OPTIONS) as conn:
        while True:
            running = dict(conn.execute(COPYING).fetchall())
            finished = sum(
                expected.get(name, rows) for name, rows in seen.items() if name not in running
            )
            seen.update(running)
            done = finished + sum(running.values())
            note = ", ".join(sorted(running)) or "between tables"
            yield float(min(done, total)), float(total), note


def streamed_rows(watched: Endpoint, role: Role, total: int) -> Generator[Reading, None, None]:
    """Rows COPY TO has sent from `watched`'s database, out of `total`: per backend, a count
    that drops or vanishes means its COPY ended, and what it had sent is kept."""
    sent = 0
    running: dict[int, int] = {}
    with connection(watched, role=role, options=OPTIONS) as conn:
        while True:
            now = dict(conn.execute(STREAMING).fetchall())
            sent += sum(rows for pid, rows in running.items() if now.get(pid, -1) < rows)
            running = now
            yield float(min(sent + sum(now.values()), total)), float(total), ""


def index_builds(watched: Endpoint, role: Role) -> Generator[Reading, None, None]:
    """The least advanced of the index builds on the largest table being indexed in
    `watched`'s database: heap blocks scanned of the table's blocks, with the table, the
    phase and the tuples loaded so far as the note."""
    with connection(watched, role=role, options=OPTIONS) as conn:
        while True:
            row = conn.execute(BUILDING).fetchone()
            if row is None:
                yield None
                continue
            table, phase, blocks_done, blocks_total, tuples = row
            note = f"{table}: {phase}" + (f", {tuples:,} tuples" if tuples else "")
            yield float(blocks_done), float(blocks_total) or None, note
