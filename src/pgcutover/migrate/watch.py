"""What a server says about its long work, as progress readings (see pgcutover.progress):
rows COPY has moved (pg_stat_progress_copy, PostgreSQL 14+) and index builds
(pg_stat_progress_create_index). Each reader is a generator holding one connection of its
own; it reads only statistics views, so a source stays untouched."""

from __future__ import annotations

from collections.abc import Generator

from pgcutover.db import Endpoint, Role, connection
from pgcutover.progress import Reading

#: Rows of every user table, from the planner's statistics: the total a COPY phase moves.
TABLE_ROWS = """
SELECT n.nspname || '.' || c.relname, greatest(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(temp|toast)'
"""
COPYING = """
SELECT n.nspname || '.' || c.relname, p.tuples_processed
FROM pg_stat_progress_copy p
JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.datname = current_database()
"""
BUILDING = """
SELECT n.nspname || '.' || c.relname, p.phase, p.blocks_done, p.blocks_total, p.tuples_done
FROM pg_stat_progress_create_index p
JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.datname = current_database()
ORDER BY p.blocks_total DESC LIMIT 1
"""
#: Options of a watching session: it must never wait long on anything.
OPTIONS = "-c statement_timeout=2000"


def table_rows(endpoint: Endpoint, role: Role) -> dict[str, int]:
    """schema.table -> estimated rows, for every user table of the database."""
    with connection(endpoint, role=role, options=OPTIONS) as conn:
        return {name: int(rows) for name, rows in conn.execute(TABLE_ROWS).fetchall()}


def copied_rows(
    watched: Endpoint, role: Role, sizes_from: Endpoint
) -> Generator[Reading, None, None]:
    """Rows COPY has moved in `watched`'s database, out of the rows the source `sizes_from`
    holds (whichever side is watched). A table whose COPY was seen and has ended counts in
    full; one seen running counts its rows so far."""
    expected = table_rows(sizes_from, "source")
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


def index_builds(watched: Endpoint, role: Role) -> Generator[Reading, None, None]:
    """The largest index build running in `watched`'s database: heap blocks scanned of the
    table's blocks, with the table, the phase and the tuples loaded so far as the note."""
    with connection(watched, role=role, options=OPTIONS) as conn:
        while True:
            row = conn.execute(BUILDING).fetchone()
            if row is None:
                yield None
                continue
            table, phase, blocks_done, blocks_total, tuples = row
            note = f"{table}: {phase}" + (f", {tuples:,} tuples" if tuples else "")
            yield float(blocks_done), float(blocks_total) or None, note
