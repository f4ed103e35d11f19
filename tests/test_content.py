"""Content parity: a faithful copy passes; each seeded change fails `content.<schema>.<table>`
and names the key, in both modes; tables without a key are compared as multisets; the source
can be read as of an exported snapshot."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from pgvector.psycopg import register_vector

from helpers import TEST_ROWS, by_id, drop_database, execute, failed_ids, make_settings, pair_of
from pgcutover.checks import content
from pgcutover.checks.base import Pair
from pgcutover.checks.content import stream
from pgcutover.checks.content.diff import TableDiff
from pgcutover.checks.content.sessions import SnapshotError
from pgcutover.db import Endpoint, connect
from pgcutover.migrate.runner import exported_snapshot

MODES = ["stream", "bisect"]
CHUNKS = "content.public.vector_embeddings"
_names = itertools.count()


def content_settings(tmp_path, mode: str, connections: int = 1, rows_per_bucket: int = 20):
    """Small ranges and buckets and a low bisection threshold, so that both modes split and
    recurse even on the test database's 1,500 chunks. One connection per side by default, so
    that the connection that located a difference goes on to read the next ranges."""
    (tmp_path / "targets.toml").write_text(
        f'[content]\nmode = "{mode}"\nsegments = 4\nmin_segment_rows = 100\n'
        f"connections = {connections}\nrows_per_bucket = {rows_per_bucket}\n"
        "bisect_rows = 50\nbisect_factor = 4\nmax_keys_reported = 5\n"
    )
    return make_settings(tmp_path)


def one_chunk_id(endpoint: Endpoint, offset: int = 0) -> str:
    with connect(endpoint, role="source") as conn:
        row = conn.execute(
            "SELECT id FROM vector_embeddings ORDER BY id OFFSET %s LIMIT 1", (offset,)
        ).fetchone()
    return row[0]  # type: ignore[index]


def embedding(endpoint: Endpoint, chunk_id: str) -> np.ndarray:
    with connect(endpoint, role="source") as conn:
        register_vector(conn)
        row = conn.execute(
            "SELECT embedding FROM vector_embeddings WHERE id = %s", (chunk_id,)
        ).fetchone()
    return row[0].to_numpy().astype(np.float32)  # type: ignore[index]


def set_embedding(endpoint: Endpoint, chunk_id: str, vector: np.ndarray | None) -> None:
    with connect(endpoint, role="admin") as conn:
        register_vector(conn)
        conn.execute(
            "UPDATE vector_embeddings SET embedding = %s WHERE id = %s", (vector, chunk_id)
        )


def assert_only_failure(results, check_id: str, kind: str, key: dict[str, str]) -> None:
    """Exactly one table fails, and its details name `key` under `kind`."""
    assert failed_ids(results) == {check_id}, [r.message for r in results if r.status != "pass"]
    result = by_id(results)[check_id]
    assert result.details["keys"][kind] == [key], result.details
    assert result.details["counts"][kind] == 1
    assert next(iter(key.values())) in result.message


def assert_vector_change_named(pair, tmp_path, mode: str, chunk: str, vector) -> None:
    """Store `vector` in one chunk of the target; only that chunk is reported, as changed."""
    set_embedding(pair.target, chunk, vector)
    results = content.check(pair, content_settings(tmp_path, mode))
    assert_only_failure(results, CHUNKS, "changed", {"id": chunk})


@pytest.mark.parametrize("mode", MODES)
def test_faithful_copy_passes(pair, tmp_path, mode):
    results = content.check(pair, content_settings(tmp_path, mode, connections=3))
    assert failed_ids(results) == set()
    ids = {r.id for r in results}
    assert {CHUNKS, "content.auth.users", "content.public.documents"} <= ids
    chunks = by_id(results)[CHUNKS]
    assert chunks.details["rows"]["source"] == chunks.details["rows"]["target"] > 0
    assert chunks.details["buckets" if mode == "stream" else "ranges"] >= 4


@pytest.mark.parametrize("mode", MODES)
def test_changed_text_in_one_row(pair, tmp_path, mode):
    with connect(pair.target, role="admin") as conn:
        document = conn.execute("SELECT min(id::text) FROM documents").fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE documents SET title = title || '.' WHERE id = %s", (document,))
    results = content.check(pair, content_settings(tmp_path, mode))
    assert_only_failure(results, "content.public.documents", "changed", {"id": document})


@pytest.mark.parametrize("mode", MODES)
def test_differences_in_several_ranges_are_all_located(pair, tmp_path, mode, monkeypatch):
    """Each differing range (each differing bucket, read again on its own) is read again on
    the same connection as the others."""
    monkeypatch.setattr(stream, "REREAD_ROWS", 1)
    first, last = one_chunk_id(pair.target, 0), one_chunk_id(pair.target, TEST_ROWS - 1)
    execute(
        pair.target,
        "UPDATE vector_embeddings SET content = content || '.' WHERE id IN (%s, %s)",
        (first, last),
    )
    chunks = by_id(content.check(pair, content_settings(tmp_path, mode)))[CHUNKS]
    assert chunks.details["keys"]["changed"] == [{"id": first}, {"id": last}], chunks.message


@pytest.mark.parametrize("mode", MODES)
def test_one_deleted_and_one_inserted_row_with_equal_counts(pair, tmp_path, mode):
    gone, kept = one_chunk_id(pair.target, 10), one_chunk_id(pair.target, 20)
    execute(
        pair.target,
        "INSERT INTO vector_embeddings SELECT %s || '-copy', document_id, user_id, content,"
        " embedding, created_at FROM vector_embeddings WHERE id = %s",
        (kept, kept),
    )
    execute(pair.target, "DELETE FROM vector_embeddings WHERE id = %s", (gone,))
    results = content.check(pair, content_settings(tmp_path, mode))
    chunks = by_id(results)[CHUNKS]
    assert failed_ids(results) == {CHUNKS}
    assert chunks.details["rows"]["source"] == chunks.details["rows"]["target"]
    assert chunks.details["keys"]["only_on_source"] == [{"id": gone}]
    assert chunks.details["keys"]["only_on_target"] == [{"id": f"{kept}-copy"}]
    assert chunks.details["keys"]["changed"] == []


@pytest.mark.parametrize("mode", MODES)
def test_one_float_changed_by_1e7_relative(pair, tmp_path, mode):
    chunk = one_chunk_id(pair.target, 7)
    vector = embedding(pair.target, chunk)
    changed = vector.copy()
    changed[17] = np.float32(float(vector[17]) * (1 + 1e-7))  # the nearest float32
    assert 0.5e-7 < abs(changed[17] - vector[17]) / abs(vector[17]) < 2e-7
    assert_vector_change_named(pair, tmp_path, mode, chunk, changed)


@pytest.mark.parametrize("mode", MODES)
def test_null_vector(pair, tmp_path, mode):
    chunk = one_chunk_id(pair.target, 3)
    execute(pair.target, "ALTER TABLE vector_embeddings ALTER COLUMN embedding DROP NOT NULL")
    assert_vector_change_named(pair, tmp_path, mode, chunk, None)


@pytest.mark.parametrize("mode", MODES)
def test_permuted_vector(pair, tmp_path, mode):
    chunk = one_chunk_id(pair.target, 5)
    vector = embedding(pair.target, chunk)
    permuted = vector.copy()
    permuted[[0, 1]] = vector[[1, 0]]
    assert sorted(permuted) == sorted(vector) and not np.array_equal(permuted, vector)
    assert_vector_change_named(pair, tmp_path, mode, chunk, permuted)


@pytest.mark.parametrize("mode", MODES)
def test_a_null_key_on_a_target_that_lost_its_primary_key(pair, tmp_path, mode):
    chunk = one_chunk_id(pair.target, 4)
    execute(pair.target, "ALTER TABLE vector_embeddings DROP CONSTRAINT vector_embeddings_pkey")
    execute(pair.target, "ALTER TABLE vector_embeddings ALTER COLUMN id DROP NOT NULL")
    execute(pair.target, "UPDATE vector_embeddings SET id = NULL WHERE id = %s", (chunk,))
    chunks = by_id(content.check(pair, content_settings(tmp_path, mode)))[CHUNKS]
    assert chunks.status == "fail"
    assert chunks.details["keys"]["only_on_source"] == [{"id": chunk}]
    if mode == "stream":  # bisect ranges select keys by value: a NULL key is in none
        assert chunks.details["keys"]["only_on_target"] == [{"id": "NULL"}]


def test_more_buckets_than_a_byte_holds_locate_a_change(pair, tmp_path):
    """One row per bucket: a table of 1,500 rows gets 2,048 buckets, sent in two bytes."""
    chunk = one_chunk_id(pair.target, 11)
    execute(pair.target, "UPDATE vector_embeddings SET content = '' WHERE id = %s", (chunk,))
    results = content.check(pair, content_settings(tmp_path, "stream", rows_per_bucket=1))
    assert_only_failure(results, CHUNKS, "changed", {"id": chunk})
    details = by_id(results)[CHUNKS].details
    assert (details["buckets"], details["differing_buckets"]) == (2048, 1)


def test_buckets_are_powers_of_two_up_to_65536():
    assert stream.bucket_count(1_000_000, 4096) == 256
    assert stream.bucket_count(0, 4096) == 1
    assert stream.bucket_count(10**12, 1) == 65536


def test_dropped_column_and_missing_table_fail(pair, tmp_path):
    execute(pair.target, "ALTER TABLE documents DROP COLUMN source")
    execute(pair.target, "DROP TABLE query_log")
    failed = failed_ids(content.check(pair, content_settings(tmp_path, "stream")))
    assert failed == {"content.public.documents", "content.public.query_log"}


@pytest.mark.parametrize("mode", MODES)
def test_rows_hidden_by_row_level_security_make_the_table_unknown(pair, tmp_path, mode):
    """A reader without BYPASSRLS gets an error, never a filtered (and passing) subset."""
    role, password = f"content_reader_{os.getpid()}", secrets.token_urlsafe(16)
    execute(pair.target, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        execute(pair.target, f"GRANT USAGE ON SCHEMA auth TO {role}")
        execute(pair.target, f"GRANT SELECT ON ALL TABLES IN SCHEMA public, auth TO {role}")
        reader = replace(pair.target, user=role, password=password)
        results = content.check(
            Pair(pair.source, reader, pair.inventory), content_settings(tmp_path, mode)
        )
        unknown = {r.id for r in results if r.status == "unknown"}
        assert unknown == {CHUNKS, "content.public.documents"}
        assert "row-level security" in by_id(results)[CHUNKS].message
        assert failed_ids(results) == unknown
    finally:
        execute(pair.target, f"DROP OWNED BY {role}")
        execute(pair.target, f"DROP ROLE {role}")


def test_a_moved_row_is_paired_across_ranges():
    """Servers that order keys differently put a row in different ranges on each side;
    settling pairs it up by key and row hash."""
    diff = TableDiff()
    diff.rows({b"a": b"1", b"b": b"2"}, {b"a": b"1"})
    diff.rows({b"c": b"3"}, {b"b": b"2", b"c": b"9"})
    diff.settle()
    assert (diff.only_source, diff.only_target, diff.changed) == ({}, {}, [b"c"])


@pytest.fixture
def own_pair(source_server, target_server, settings) -> Iterator[Pair]:
    """A private database on each server (the shared source stays untouched), identical on
    both sides: a table without a key, one with a primary key, one with a two-column unique
    NOT NULL key and no primary key."""
    name = f"content_{os.getpid()}_{next(_names)}"
    setup = (
        "CREATE TABLE events (kind text, amount numeric, seen timestamptz);"
        "INSERT INTO events VALUES ('a', 1.50, '2026-01-01'), ('a', 1.50, '2026-01-01'),"
        " ('b', 2, NULL), ('c', NULL, '2026-02-01');"
        "CREATE TABLE notes (id int PRIMARY KEY, body text);"
        "INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 2000) i;"
        "CREATE TABLE pairs (a int NOT NULL, b text NOT NULL, v float8, UNIQUE (a, b));"
        "INSERT INTO pairs SELECT mod(i, 50), 'b' || i, i / 3.0 FROM generate_series(1, 3000) i;"
    )
    for server in (source_server, target_server):
        execute(server.endpoint, f"CREATE DATABASE {name}")
        execute(server.endpoint.with_dbname(name), setup)
    yield pair_of(
        source_server.endpoint.with_dbname(name), target_server.endpoint.with_dbname(name), settings
    )
    for server in (source_server, target_server):
        drop_database(server, name)


@pytest.mark.parametrize("mode", MODES)
def test_two_column_unique_key_names_both_columns(own_pair, tmp_path, mode):
    execute(own_pair.target, "UPDATE pairs SET v = v + 1e-9 WHERE a = 7 AND b = 'b1107'")
    results = content.check(own_pair, content_settings(tmp_path, mode))
    assert_only_failure(results, "content.public.pairs", "changed", {"a": "7", "b": "b1107"})


@pytest.mark.parametrize("mode", MODES)
def test_a_type_changed_without_changing_values_compares_as_text(own_pair, tmp_path, mode):
    execute(own_pair.target, "ALTER TABLE notes ALTER COLUMN id TYPE bigint")
    settings = content_settings(tmp_path, mode)
    notes = by_id(content.check(own_pair, settings))["content.public.notes"]
    assert notes.status == "pass" and notes.details["columns"]["compared_as_text"] == ["id"]
    execute(own_pair.target, "DELETE FROM notes WHERE id = 1234")
    notes = by_id(content.check(own_pair, settings))["content.public.notes"]
    assert notes.details["keys"]["only_on_source"] == [{"id": "1234"}]


@pytest.mark.parametrize("mode", MODES)
def test_table_without_key_is_compared_as_a_multiset(own_pair, tmp_path, mode):
    settings = content_settings(tmp_path, mode)
    events = "content.public.events"
    clean = by_id(content.check(own_pair, settings))[events]
    assert clean.status == "pass" and clean.details["mode"] == "multiset"
    assert "not located" in clean.message
    # same count, one duplicate swapped for another row: {a, a, b, c} -> {a, b, b, c}
    execute(own_pair.target, "DELETE FROM events WHERE ctid = (SELECT min(ctid) FROM events)")
    execute(own_pair.target, "INSERT INTO events VALUES ('b', 2, NULL)")
    results = content.check(own_pair, settings)
    assert failed_ids(results) == {events}
    result = by_id(results)[events]
    assert result.details["rows"] == {"source": 4, "target": 4}
    assert "at least one row differs" in result.message
    assert "cannot be located" in result.details["note"]


def test_source_read_at_an_exported_snapshot(own_pair, tmp_path):
    """The target equals the source as of the snapshot; a row written since is drift."""
    settings = content_settings(tmp_path, "stream")
    with exported_snapshot(own_pair.source) as snapshot:
        execute(own_pair.source, "INSERT INTO notes VALUES (5000, 'written after the dump')")
        at_snapshot = content.compare(own_pair, settings, source_snapshot=snapshot)
        assert failed_ids(at_snapshot) == set()
    now = content.compare(own_pair, settings)
    assert failed_ids(now) == {"content.public.notes"}
    assert by_id(now)["content.public.notes"].details["keys"]["only_on_source"] == [{"id": "5000"}]


def test_a_snapshot_no_longer_held_is_an_error(own_pair, tmp_path):
    with exported_snapshot(own_pair.source) as snapshot:
        pass
    with pytest.raises(SnapshotError, match="snapshot"):
        content.compare(own_pair, content_settings(tmp_path, "stream"), source_snapshot=snapshot)


def test_a_generated_column_computed_differently_is_a_finding(own_pair, tmp_path):
    """The target's server recomputes stored generated columns on restore; where it computes
    them differently the rows are still the source's: a finding, not a failed copy."""
    for endpoint, factor in ((own_pair.source, 2), (own_pair.target, 3)):
        execute(
            endpoint,
            f"ALTER TABLE notes ADD COLUMN doubled int GENERATED ALWAYS AS (id * {factor}) STORED",
        )
    results = by_id(content.check(own_pair, content_settings(tmp_path, "stream")))
    assert results["content.public.notes"].status == "pass"
    derived = results["content.generated.public.notes.doubled"]
    assert (derived.status, derived.details["finding"]) == ("pass", "differs")
