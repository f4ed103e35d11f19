"""Stream mode: both servers send every row of each key range, ordered by key, as binary COPY;
this machine compares the two streams.

Binary COPY carries every float's exact bits, a NULL as length -1 (distinct from any value,
including an empty one), and pgvector's binary form is the dimension count then the floats in
order: a 1e-7 change, a permutation of a vector and a NULL vector all change the bytes. Each
range's stream is hashed as it arrives with xxh3-128 (nothing is kept, so reading costs
little more than discarding); equal hashes mean an equal range. A range whose hashes differ
is read again from the same snapshots, this time row by row: each row is hashed with xxh3-128
and the two sides are joined by key. A 128-bit hash lets different content look equal with
probability 2**-128 per comparison; over a billion ranges or rows that is below 1e-29, far
below the rate of undetected hardware errors.

The PostgreSQL protocol sends each row of COPY TO as one CopyData message ("always one per
row"); the binary header rides in the first message and the trailer (-1) in the last.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
import xxhash
from psycopg import pq, sql
from psycopg.abc import Buffer

from pgcutover.checks.content.diff import TableDiff
from pgcutover.checks.content.segments import Segment, key_list, predicate
from pgcutover.checks.content.tables import TablePlan

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = struct.Struct(">11sii")
FIELD_COUNT = struct.Struct(">h")
FIELD_LENGTH = struct.Struct(">i")
TRAILER = b"\xff\xff"


@dataclass(frozen=True)
class Range:
    """One key range of one table, read on both sides; `rows` asks for row hashes by key."""

    plan: TablePlan
    segment: Segment
    rows: bool = False


@dataclass(frozen=True)
class RangeHash:
    """What one side sent for a range: the hash of the whole stream, and COPY's row count."""

    digest: bytes
    count: int


def select_list(plan: TablePlan, side: str) -> sql.Composable:
    """Columns as streamed: as they are, or as text where the sides disagree on the type."""
    return sql.SQL(", ").join(
        sql.SQL(
            "{}::text" if column.as_text or getattr(column, side).kind == "text" else "{}"
        ).format(sql.Identifier(column.name))
        for column in plan.columns
    )


def copy_statement(plan: TablePlan, side: str, segment: Segment) -> sql.Composable:
    """The range's rows, key columns first, in key order, as binary COPY."""
    return sql.SQL(
        "COPY (SELECT {} FROM ONLY {} WHERE {} ORDER BY {}) TO STDOUT (FORMAT BINARY)"
    ).format(
        select_list(plan, side), plan.identifier, predicate(plan, side, segment), key_list(plan)
    )


def read_range(conn: psycopg.Connection, side: str, task: Range) -> RangeHash | dict[bytes, bytes]:
    """Receive one range: its stream's hash, or (for `task.rows`) its rows' hashes by key."""
    cursor = conn.cursor()
    with cursor.copy(copy_statement(task.plan, side, task.segment)) as copy:
        if task.rows:
            return row_hashes(copy, task.plan)
        stream_hash = xxhash.xxh3_128()
        update = stream_hash.update
        for message in copy:
            update(message)
    return RangeHash(stream_hash.digest(), cursor.rowcount)


def row_hashes(messages: Iterable[Buffer], plan: TablePlan) -> dict[bytes, bytes]:
    """key (the key fields' bytes) -> xxh3-128 of the whole row, from one side's messages."""
    columns, keys = len(plan.columns), len(plan.key)
    hashes: dict[bytes, bytes] = {}
    for number, message in enumerate(messages):
        start = 0
        if number == 0:
            signature, _flags, extension = HEADER.unpack_from(message)
            if signature != SIGNATURE:
                raise ValueError("the server did not send a binary COPY header")
            start = HEADER.size + extension
            if start == len(message):
                continue
        (fields,) = FIELD_COUNT.unpack_from(message, start)
        if fields == -1:
            break
        if fields != columns:
            raise ValueError(f"a row of {plan.qualified} has {fields} fields, expected {columns}")
        end = start + 2
        for _ in range(keys):
            (length,) = FIELD_LENGTH.unpack_from(message, end)
            end += 4 + max(length, 0)
        hashes[bytes(message[start + 2 : end])] = xxhash.xxh3_128_digest(message[start:])
    return hashes


def settle_range(
    diffs: dict[str, TableDiff],
    task: Range,
    source: RangeHash | dict[bytes, bytes],
    target: RangeHash | dict[bytes, bytes],
) -> Iterable[Range]:
    """Equal stream hashes: an equal range. Otherwise read the range again row by row. (A
    table whose diff is gone has failed; its remaining ranges are skipped.)"""
    diff = diffs.get(task.plan.qualified)
    if diff is None:
        return ()
    if isinstance(source, RangeHash) and isinstance(target, RangeHash):
        if source.digest == target.digest:
            diff.equal(source.count, target.count)
            return ()
        return [Range(task.plan, task.segment, rows=True)]
    diff.rows(source, target)  # type: ignore[arg-type]
    return ()


def key_values(plan: TablePlan, key: bytes) -> tuple[str, ...]:
    """The key fields of a binary row, decoded for the report (hex where no loader exists)."""
    values, position = [], 0
    for column in plan.key_columns():
        (length,) = FIELD_LENGTH.unpack_from(key, position)
        data = key[position + 4 : position + 4 + max(length, 0)]
        position += 4 + max(length, 0)
        loader = psycopg.adapters.get_loader(column.wire_oid, pq.Format.BINARY)
        try:
            value = loader(column.wire_oid).load(data) if loader else None
        except Exception:  # an undecodable key is still named, in hex
            value = None
        values.append(str(value) if value is not None else "\\x" + data.hex())
    return tuple(values)
