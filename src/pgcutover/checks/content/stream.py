"""Stream mode: both servers send every row of a table in physical order (one sequential
scan per table and side, the cheapest read a server has, through its ring buffer so that the
shared buffers of a live source are not flushed; tables are read in parallel) as binary COPY,
and this machine sorts the rows into buckets by a hash of their key and compares the buckets.

Each server computes, per row, its bucket: a hash of the key's text (hashtextextended, stable
across versions and independent of collation under COLLATE "C") masked to a power of two,
sent as the row's first field. This machine adds each row's xxh3-128 to its bucket's exact
sum, so memory grows with the number of buckets, never with rows, and the order rows arrive
in does not matter: each side scans its own heap in its own order.
Equal sums mean an equal bucket: a changed, missing or extra row shifts its bucket's sum by a
random 128-bit amount, so different content looks equal with probability about 2**-128 per
bucket. Only the rows of differing buckets are read again (a filtered scan on each server),
hashed row by row and joined by key, which names the keys only on one side or changed.

Binary COPY carries every float's exact bits, a NULL as length -1 (distinct from any value,
including an empty one), and pgvector's binary form is the dimension count then the floats in
order: a 1e-7 change, a permutation of a vector and a NULL vector all change the bytes. The
PostgreSQL protocol sends each row of COPY TO as one CopyData message ("always one per row");
the binary header rides in the first message and the trailer (-1) in the last.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psycopg
import xxhash
from psycopg import pq, sql
from psycopg.abc import Buffer

from pgcutover.checks.content.copyout import CopyOut
from pgcutover.checks.content.diff import TableDiff
from pgcutover.checks.content.tables import Planned, TablePlan
from pgcutover.sessions import Session

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = struct.Struct(">11sii")
FIELD_COUNT = struct.Struct(">h")
FIELD_LENGTH = struct.Struct(">i")
TRAILER = b"\xff\xff"
#: A table has at most this many buckets: the bucket travels in the last two bytes of an int4.
MAX_BUCKETS = 1 << 16
#: Up to this many buckets, the bucket is the int4's last byte (one index per row, not three).
BYTE_BUCKETS = 1 << 8
#: Offset of the bucket's last byte in a row: field count (2), field length (4), int4 (4).
BUCKET_LOW = 9
#: Rows (estimated) read again per query when buckets differ: bounds the memory of locating.
REREAD_ROWS = 100_000
#: Key types hashed by their own extended hash function (as hash partitioning does: stable
#: across versions); other keys hash their text. Converting a bigint to text costs the server
#: about as much as sending it.
KEY_HASHES = {
    20: "hashint8extended",
    23: "hashint4extended",
    21: "hashint2extended",
    2950: "uuid_hash_extended",
}


@dataclass(frozen=True)
class Scan:
    """A whole table, read on both sides and hashed into `buckets` buckets."""

    plan: TablePlan
    buckets: int


@dataclass(frozen=True)
class Reread:
    """The rows of some differing buckets of a table, to be hashed one by one and joined by
    key."""

    plan: TablePlan
    buckets: int
    wanted: tuple[int, ...]


@dataclass(frozen=True)
class Sums:
    """What one side sent for a table: per bucket, the exact sum of its rows' xxh3-128, and
    COPY's row count."""

    sums: list[int]
    rows: int


def bucket_count(rows: int, rows_per_bucket: int) -> int:
    """The power of two giving about `rows_per_bucket` rows per bucket, 1 to MAX_BUCKETS."""
    wanted = max(1, math.ceil(rows / rows_per_bucket))
    return min(MAX_BUCKETS, 1 << (wanted - 1).bit_length())


def select_list(plan: TablePlan, side: str) -> sql.Composable:
    """Columns as streamed: as they are, or as text where the sides disagree on the type."""
    return sql.SQL(", ").join(
        sql.SQL(
            "{}::text" if column.as_text or getattr(column, side).kind == "text" else "{}"
        ).format(sql.Identifier(column.name))
        for column in plan.columns
    )


def _key_hash(column: Planned, seed: int) -> sql.Composable:
    """One key column's 64-bit hash: its type's own hash function, or its text's."""
    function = KEY_HASHES.get(column.wire_oid)
    if function is None:
        return sql.SQL('hashtextextended({}::text COLLATE "C", {})').format(
            sql.Identifier(column.name), sql.Literal(seed)
        )
    return sql.SQL("{}({}, {})").format(
        sql.SQL(function), sql.Identifier(column.name), sql.Literal(seed)
    )


def bucket_of(plan: TablePlan, buckets: int) -> sql.Composable:
    """A row's bucket (bigint), the same on every server for the same key values: each key
    column hashed with its own seed, combined by XOR, masked. A NULL key (possible only on
    a target that lost its NOT NULL) falls in bucket 0, so that it is read again and named."""
    hashes = sql.SQL(" # ").join(
        _key_hash(column, seed) for seed, column in enumerate(plan.key_columns())
    )
    return sql.SQL("coalesce(({}) & {}, 0)").format(hashes, sql.Literal(buckets - 1))


def scan_statement(plan: TablePlan, side: str, task: Scan) -> sql.Composable:
    """The table's rows in physical order, each led by its bucket, as binary COPY."""
    return sql.SQL("COPY (SELECT {}::int4, {} FROM ONLY {}) TO STDOUT (FORMAT BINARY)").format(
        bucket_of(plan, task.buckets), select_list(plan, side), plan.identifier
    )


def reread_statement(plan: TablePlan, side: str, task: Reread) -> sql.Composable:
    """The rows of the wanted buckets, key columns first, as binary COPY."""
    wanted = sql.Literal("{" + ",".join(map(str, task.wanted)) + "}")
    return sql.SQL(
        "COPY (SELECT {} FROM ONLY {} WHERE {} = ANY({}::bigint[])) TO STDOUT (FORMAT BINARY)"
    ).format(select_list(plan, side), plan.identifier, bucket_of(plan, task.buckets), wanted)


def read(conn: Session, side: str, task: Scan | Reread) -> Sums | dict[bytes, bytes]:
    """One side's answer: a table's bucket sums, or the wanted buckets' rows by key."""
    if isinstance(task, Reread):
        return row_hashes(CopyOut(conn, reread_statement(task.plan, side, task)), task.plan)
    copy = CopyOut(conn, scan_statement(task.plan, side, task))
    sums = [0] * task.buckets
    messages = iter(copy)
    first = next(messages)
    start = _row_start(first, True)
    if start is not None:
        row = first[start:]
        sums[(row[BUCKET_LOW - 1] << 8) | row[BUCKET_LOW]] += xxhash.xxh3_128_intdigest(row)
    _fold(messages, sums, task.buckets <= BYTE_BUCKETS)
    return Sums(sums, copy.rows)


def _fold(messages: Iterator[Buffer], sums: list[int], byte: bool) -> None:
    """Add every remaining row's xxh3-128 to its bucket's sum, up to the trailer: the one
    message too short to hold a bucket, after which the stream must end. The loop is the
    client's whole per-row cost, so it does nothing else (one or three indexings per row)."""
    digest = xxhash.xxh3_128_intdigest
    message: Buffer = b""
    try:
        if byte:
            for message in messages:
                sums[message[BUCKET_LOW]] += digest(message)
        else:
            for message in messages:
                sums[(message[BUCKET_LOW - 1] << 8) | message[BUCKET_LOW]] += digest(message)
    except IndexError:
        if bytes(message) != TRAILER or next(messages, None) is not None:
            raise ValueError("the server sent a row too short to hold its bucket") from None


@dataclass
class Buckets:
    """Settles tables: compares their buckets and asks for the rows of the differing ones, in
    groups of about REREAD_ROWS rows."""

    diffs: dict[str, TableDiff]

    def settle(
        self,
        task: Scan | Reread,
        source: Sums | dict[bytes, bytes],
        target: Sums | dict[bytes, bytes],
    ) -> Iterable[Reread]:
        """(A table whose diff is gone has failed; its remaining tasks are skipped.)"""
        diff = self.diffs.get(task.plan.qualified)
        if diff is None:
            return ()
        if isinstance(task, Reread):
            diff.keys(source, target)  # type: ignore[arg-type]
            return ()
        return self._scanned(diff, task, source, target)  # type: ignore[arg-type]

    def _scanned(self, diff: TableDiff, task: Scan, source: Sums, target: Sums) -> list[Reread]:
        diff.rows_source += source.rows
        diff.rows_target += target.rows
        pairs = enumerate(zip(source.sums, target.sums, strict=True))
        differing = [bucket for bucket, (mine, theirs) in pairs if mine != theirs]
        diff.compared(task.buckets, len(differing))
        rows = max(source.rows, target.rows)
        group = max(1, REREAD_ROWS * task.buckets // max(rows, 1))
        return [
            Reread(task.plan, task.buckets, tuple(differing[start : start + group]))
            for start in range(0, len(differing), group)
        ]


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


def key_values(plan: TablePlan, key: bytes) -> tuple[str, ...]:
    """The key fields of a binary row, decoded for the report (hex where psycopg has no
    loader for the type, NULL for a NULL)."""
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
        if length < 0:
            value = "NULL"
        values.append(str(value) if value is not None else "\\x" + data.hex())
    return tuple(values)
