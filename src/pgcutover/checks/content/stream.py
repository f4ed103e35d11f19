"""Stream mode: both servers send every row of each key range, ordered by key, as binary COPY;
this machine compares the two streams.

Binary COPY carries every float's exact bits, a NULL as length -1 (distinct from any value,
including an empty one), and pgvector's binary form is the dimension count then the floats in
order: a 1e-7 change, a permutation of a vector and a NULL vector all change the bytes. Each
range's stream is hashed as it arrives with xxh3-128, in blocks of BLOCK_ROWS rows, keeping
only the blocks' hashes and the key of each block's first row: reading costs little more
than discarding. Equal block hashes mean an equal range. Where blocks differ, only the rows
from the last equal block before them to the first equal block after them are read again
(from the same snapshots), row by row: each row is hashed with xxh3-128 and the two sides are
joined by key. A 128-bit hash lets different content look equal with probability 2**-128 per
comparison; over a billion blocks or rows that is below 1e-29, far below the rate of
undetected hardware errors.

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

from pgcutover.checks.content.copyout import CopyOut
from pgcutover.checks.content.diff import TableDiff
from pgcutover.checks.content.segments import Segment, key_list, predicate
from pgcutover.checks.content.tables import TablePlan
from pgcutover.sessions import Session

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = struct.Struct(">11sii")
FIELD_COUNT = struct.Struct(">h")
FIELD_LENGTH = struct.Struct(">i")
#: Rows hashed together: the unit a difference is narrowed down to before rows are read again.
BLOCK_ROWS = 256
#: Key types whose binary value psycopg turns into a Python value that becomes the very same
#: value again as a literal (bool, bytea, name, integers, text, oid, floats, char, varchar,
#: date, timestamps, numeric, uuid). A stretch bound must be exact, or a difference could fall
#: outside it; keys of other types fall back to reading the whole range again.
EXACT_KEY_OIDS = frozenset(
    {16, 17, 19, 20, 21, 23, 25, 26, 700, 701, 1042, 1043, 1082, 1114, 1184, 1700, 2950}
)


@dataclass(frozen=True)
class Range:
    """One key range of one table, read on both sides; `rows` asks for row hashes by key."""

    plan: TablePlan
    segment: Segment
    rows: bool = False


@dataclass(frozen=True)
class RangeHash:
    """What one side sent for a range: per block of BLOCK_ROWS rows its xxh3-128 and the key
    of its first row (None where a block holds no row), and COPY's row count."""

    blocks: list[bytes]
    first_keys: list[bytes | None]
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


def read_range(conn: Session, side: str, task: Range) -> RangeHash | dict[bytes, bytes]:
    """Receive one range: its block hashes, or (for `task.rows`) its rows' hashes by key."""
    copy = CopyOut(conn, copy_statement(task.plan, side, task.segment))
    if task.rows:
        return row_hashes(copy, task.plan)
    blocks: list[bytes] = []
    first_keys: list[bytes | None] = []
    messages = iter(copy)
    block = xxhash.xxh3_128()
    update = block.update
    for number, message in enumerate(messages):
        first_keys.append(_key(message, number == 0, task.plan))
        update(message)
        for _, message in zip(range(BLOCK_ROWS - 1), messages, strict=False):
            update(message)
        blocks.append(block.digest())
        block.reset()
    return RangeHash(blocks, first_keys, copy.rows)


def _row_start(message: Buffer, first: bool) -> int | None:
    """Where the row begins in a message (after the header in the first); None for none."""
    start = 0
    if first:
        signature, _flags, extension = HEADER.unpack_from(message)
        if signature != SIGNATURE:
            raise ValueError("the server did not send a binary COPY header")
        start = HEADER.size + extension
    if start == len(message) or FIELD_COUNT.unpack_from(message, start)[0] == -1:
        return None
    return start


def _key_end(message: Buffer, start: int, plan: TablePlan) -> int:
    """Where the key fields of the row at `start` end (they are the first fields)."""
    (fields,) = FIELD_COUNT.unpack_from(message, start)
    if fields != len(plan.columns):
        raise ValueError(f"a row of {plan.qualified} has {fields} fields, not {len(plan.columns)}")
    end = start + 2
    for _ in plan.key:
        (length,) = FIELD_LENGTH.unpack_from(message, end)
        end += 4 + max(length, 0)
    return end


def _key(message: Buffer, first: bool, plan: TablePlan) -> bytes | None:
    """The key fields' bytes of the row in a message, or None when it holds no row."""
    start = _row_start(message, first)
    if start is None:
        return None
    return bytes(message[start + 2 : _key_end(message, start, plan)])


def row_hashes(messages: Iterable[Buffer], plan: TablePlan) -> dict[bytes, bytes]:
    """key (the key fields' bytes) -> xxh3-128 of the whole row, from one side's messages."""
    hashes: dict[bytes, bytes] = {}
    for number, message in enumerate(messages):
        start = _row_start(message, number == 0)
        if start is None:  # the header alone, or the trailer: the stream is read to its end
            continue
        key = bytes(message[start + 2 : _key_end(message, start, plan)])
        hashes[key] = xxhash.xxh3_128_digest(message[start:])
    return hashes


def settle_range(
    diffs: dict[str, TableDiff],
    task: Range,
    source: RangeHash | dict[bytes, bytes],
    target: RangeHash | dict[bytes, bytes],
) -> Iterable[Range]:
    """Equal block hashes: an equal range. Otherwise read the differing stretch again row by
    row. (A table whose diff is gone has failed; its remaining ranges are skipped.)"""
    diff = diffs.get(task.plan.qualified)
    if diff is None:
        return ()
    if isinstance(source, RangeHash) and isinstance(target, RangeHash):
        if source.blocks == target.blocks and source.count == target.count:
            diff.equal(source.count, target.count)
            return ()
        return [Range(task.plan, differing_stretch(task, source, target), rows=True)]
    diff.rows(source, target)  # type: ignore[arg-type]
    return ()


def differing_stretch(task: Range, source: RangeHash, target: RangeHash) -> Segment:
    """The keys to read again: from the first row of the last equal block before the first
    differing one, to the first row of the equal block after the last differing one. Blocks
    equal at the same position hold the same rows, so every difference lies in between, and
    the bound rows are the same on both sides. Falls back to the whole range where a bound
    key cannot be turned back into a value."""
    common = min(len(source.blocks), len(target.blocks))
    differing = [n for n in range(common) if source.blocks[n] != target.blocks[n]]
    first = differing[0] if differing else common
    same_length = len(source.blocks) == len(target.blocks)
    last = differing[-1] if differing and same_length else common
    lo, hi = task.segment.lo, task.segment.hi
    if first > 0:
        lo = key_bound(task.plan, source.first_keys[first - 1]) or lo
    if last + 1 < common:
        hi = key_bound(task.plan, source.first_keys[last + 1]) or hi
    return Segment(lo, hi)


def _decoded(plan: TablePlan, key: bytes) -> list[tuple[object | None, bytes]]:
    """Each key field's value (None where psycopg has no loader for it) and its bytes."""
    fields, position = [], 0
    for column in plan.key_columns():
        (length,) = FIELD_LENGTH.unpack_from(key, position)
        data = key[position + 4 : position + 4 + max(length, 0)]
        position += 4 + max(length, 0)
        loader = psycopg.adapters.get_loader(column.wire_oid, pq.Format.BINARY)
        try:
            value = loader(column.wire_oid).load(data) if loader else None
        except Exception:  # an undecodable key is still named, in hex
            value = None
        fields.append((value, data))
    return fields


def key_bound(plan: TablePlan, key: bytes | None) -> tuple[object, ...] | None:
    """A binary key as exact values for a range bound, or None when it cannot be one."""
    if key is None or any(c.wire_oid not in EXACT_KEY_OIDS for c in plan.key_columns()):
        return None
    values = tuple(value for value, _ in _decoded(plan, key))
    return None if None in values else values


def key_values(plan: TablePlan, key: bytes) -> tuple[str, ...]:
    """The key fields of a binary row, decoded for the report (hex where no loader exists)."""
    return tuple(
        str(value) if value is not None else "\\x" + data.hex()
        for value, data in _decoded(plan, key)
    )
