"""Production size without production cost: seeding streams in batches and never dates
anything in the future, drift reads only the rows written since the snapshot, samples come
from a few pages, index builds get the memory their graph needs, and the cutover window is
projected from the measured phases."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from psycopg import sql

from helpers import clone_database, drop_database, execute
from pgcutover.catalog import sample_clause
from pgcutover.checks import drift
from pgcutover.checks.search import drift as search_drift
from pgcutover.checks.search import shapes as search_shapes
from pgcutover.dataset import seed as seeding
from pgcutover.dataset.embedder import Embedder
from pgcutover.db import Endpoint, connect
from pgcutover.migrate import advice, window
from pgcutover.migrate.runner import exported_snapshot

_names = itertools.count()
#: A text whose md5 sorts before every chunk's: the drift sample takes it first.
REPEATED = "repeated boilerplate 6038"


@pytest.fixture
def source_copy(source_server, seeded_source) -> Iterator[Endpoint]:
    """A private copy of the seeded source to write into (a real source is never written)."""
    name = f"scale_{os.getpid()}_{next(_names)}"
    yield clone_database(source_server, seeded_source.dbname, name)
    drop_database(source_server, name)


def test_seeding_streams_in_batches_past_the_real_corpus_and_dates_nothing_in_the_future(
    source_server, settings, monkeypatch
):
    """Rows beyond the real passages are noisy copies of them, written batch by batch (here
    300 real passages and small batches, so batches and the real/synthetic seam are crossed)."""
    corpus = seeding._corpus
    monkeypatch.setattr(seeding, "_corpus", lambda rows: corpus(min(rows, 300)))
    monkeypatch.setattr(seeding, "BATCH_ROWS", 400)
    rows = 300 + 1500
    name = f"seed_{os.getpid()}_{next(_names)}"
    embedder = Embedder(settings.embedding_model, settings.cache_dir)
    try:
        summary = seeding.seed(source_server.endpoint, name, rows, embedder)
    finally:
        embedder.close()
    try:
        with connect(source_server.endpoint.with_dbname(name), role="admin") as conn:
            counts = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE id LIKE '%:s%'),"
                " min(abs(vector_norm(embedding) - 1)) < 1e-5,"
                " max(abs(vector_norm(embedding) - 1)) < 1e-5"
                " FROM public.vector_embeddings"
            ).fetchone()
            copies = conn.execute(
                "SELECT min(1 - (s.embedding <=> r.embedding)), count(*)"
                " FROM public.vector_embeddings s JOIN public.vector_embeddings r"
                " ON r.id = split_part(s.id, ':s', 1) WHERE s.id LIKE '%:s%'"
            ).fetchone()
            latest = conn.execute(
                "SELECT max(t) FROM (SELECT max(created_at) t FROM auth.users"
                " UNION ALL SELECT max(created_at) FROM public.documents"
                " UNION ALL SELECT max(created_at) FROM public.vector_embeddings"
                " UNION ALL SELECT max(created_at) FROM public.query_log) m"
            ).fetchone()[0]
            logged = conn.execute("SELECT count(*) FROM public.query_log").fetchone()[0]
    finally:
        drop_database(source_server, name)
    assert counts == (rows, 1500, True, True)
    assert copies[1] == 1500 and copies[0] > 0.5, "a synthetic chunk strays from its passage"
    assert latest <= seeding.EPOCH + 4 * seeding.SPREAD < datetime.now(latest.tzinfo)
    assert logged == -(-rows // 10)
    assert summary.synthetic_chunks == 1500
    assert summary.maintenance_work_mem.endswith("MB")


def test_seeded_timestamps_stay_in_their_day_at_any_size():
    for count in (1, 5_000, 10_000_000):
        last = seeding.moment(2, count - 1, count)
        assert seeding.EPOCH + timedelta(days=2) <= last < seeding.EPOCH + timedelta(days=3)


def test_index_builds_get_the_graph_within_the_machines_memory(monkeypatch):
    graph = advice.estimate(1_000_000, 384, 16)
    monkeypatch.setattr(advice.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(
        advice.psutil, "virtual_memory", lambda: SimpleNamespace(available=64 * 2**30)
    )
    roomy = advice.build_settings([graph], memory=None, workers=None, local=True)
    assert roomy.maintenance_work_mem == f"{advice.needed_mb(graph)}MB" and roomy.workers == 3
    assert "-c maintenance_work_mem=" in roomy.options()
    monkeypatch.setattr(
        advice.psutil, "virtual_memory", lambda: SimpleNamespace(available=2 * 2**30)
    )
    tight = advice.build_settings([graph], memory=None, workers=None, local=True, concurrent=2)
    assert tight.maintenance_work_mem == "512MB" and "capped" in tight.reason
    remote = advice.build_settings([graph], memory=None, workers=None, local=False)
    assert (remote.maintenance_work_mem, remote.workers) == ("1GB", 1)
    mine = advice.build_settings([graph], memory="3GB", workers=0, local=True)
    assert (mine.maintenance_work_mem, mine.workers) == ("3GB", 0)


def _measure(source: Endpoint, writes: list[tuple[str, tuple[object, ...]]]) -> dict:
    """Drift after running `writes` (statement, parameters) past a fresh snapshot."""
    with exported_snapshot(source) as snapshot:
        for statement, params in writes:
            execute(source, statement, params)
        measured = drift.measure(source, snapshot, ("pg_catalog", "information_schema"))
    return {name: (t.added, t.changed, t.deleted) for name, t in measured.items() if t.total}


def test_drift_reads_only_rows_written_since_the_snapshot_in_batches(source_copy, monkeypatch):
    monkeypatch.setattr(drift, "BATCH", 7)
    execute(source_copy, "CREATE TABLE public.pairs (a int, b text, v text, PRIMARY KEY (a, b))")
    execute(source_copy, "INSERT INTO public.pairs SELECT g, 'k', 'v' FROM generate_series(1, 9) g")
    with connect(source_copy, role="source") as conn:
        ids = [
            row[0] for row in conn.execute("SELECT id FROM public.vector_embeddings ORDER BY id")
        ]
    chunks = "UPDATE public.vector_embeddings SET content = {} WHERE id = ANY(%s)"
    changed = _measure(
        source_copy,
        [
            (  # 20 new chunks: 3 batches of 7
                "INSERT INTO public.vector_embeddings SELECT id || ':new', document_id,"
                " user_id, content, embedding, created_at FROM public.vector_embeddings"
                " WHERE id = ANY(%s)",
                (ids[:20],),
            ),
            (chunks.format("content"), (ids[-4:],)),  # rewritten as they were: no change
            (chunks.format("'edited'"), (ids[-6:-4],)),  # 2 changed
            ("DELETE FROM public.vector_embeddings WHERE id = ANY(%s)", (ids[-9:-6],)),
            (  # 1 of the 3 deleted back with other text: 2 deleted, 1 more changed
                "INSERT INTO public.vector_embeddings SELECT %s, document_id, user_id, 'back',"
                " embedding, created_at FROM public.vector_embeddings WHERE id = %s",
                (ids[-9], ids[0]),
            ),
            ("UPDATE public.pairs SET v = 'w' WHERE a <= 2", ()),
            ("DELETE FROM public.pairs WHERE a = 3", ()),
        ],
    )
    assert changed == {"public.vector_embeddings": (20, 3, 2), "public.pairs": (0, 2, 1)}


def test_a_write_open_at_the_snapshot_and_committed_after_it_is_drift(source_copy):
    """The snapshot cannot see a transaction still running when it was taken."""
    with connect(source_copy, role="admin", autocommit=False) as writer:
        writer.execute(
            "DELETE FROM public.query_log WHERE id = (SELECT min(id) FROM public.query_log)"
        )
        writer.execute(
            "INSERT INTO public.query_log (user_id, query, result_count)"
            " SELECT user_id, 'late', 1 FROM public.query_log LIMIT 1"
        )
        with exported_snapshot(source_copy) as snapshot:
            writer.commit()
            measured = drift.measure(source_copy, snapshot, ("pg_catalog", "information_schema"))
    late = measured["public.query_log"]
    assert (late.added, late.changed, late.deleted) == (1, 0, 1)


def test_a_sample_reads_a_few_pages_and_repeats_with_its_seed(seeded_source):
    clause = sample_clause("public", "vector_embeddings", 100, seed=7)
    query = sql.SQL("SELECT id FROM {}").format(clause)
    with connect(seeded_source, role="source") as conn:
        first = [row[0] for row in conn.execute(query).fetchall()]
        again = [row[0] for row in conn.execute(query).fetchall()]
        total = conn.execute("SELECT count(*) FROM public.vector_embeddings").fetchone()[0]
        plan = "\n".join(row[0] for row in conn.execute(sql.SQL("EXPLAIN {}").format(query)))
    assert first == again
    assert 20 <= len(first) < total / 2
    assert "Sample Scan" in plan


def test_the_drift_sample_is_the_same_rows_on_both_sides_when_texts_repeat(
    source_server, seeded_source, source_copy, inventory, settings
):
    """Repeated texts tie in the sample's order; the tie must not fall to physical order,
    which differs between a source and its restored copy."""
    copy = clone_database(source_server, seeded_source.dbname, f"scale_twin_{os.getpid()}")
    try:
        for endpoint in (source_copy, copy):
            execute(
                endpoint,
                "UPDATE public.vector_embeddings SET content = %s WHERE id IN"
                " (SELECT id FROM public.vector_embeddings ORDER BY id LIMIT 80)",
                (REPEATED,),
            )
        execute(
            copy,
            "WITH gone AS (DELETE FROM public.vector_embeddings WHERE content = %s RETURNING *)"
            " INSERT INTO public.vector_embeddings SELECT * FROM gone ORDER BY id DESC",
            (REPEATED,),
        )
        column = inventory.vector("public.vector_embeddings.embedding")
        config = search_shapes.load(settings)
        samples = [
            search_drift._sample(endpoint, "source", column, config, ("id",))
            for endpoint in (source_copy, copy)
        ]
    finally:
        drop_database(source_server, copy.dbname)
    (texts, vectors), (twin_texts, twin_vectors) = samples
    assert texts == twin_texts and set(texts) == {REPEATED}
    assert all(np.array_equal(a, b) for a, b in zip(vectors, twin_vectors, strict=True))


def _size(vectors: int, table_bytes: int) -> window.Size:
    return window.Size(
        tables={"public.vector_embeddings": vectors, "public.users": vectors // 100},
        table_bytes=table_bytes,
        graphs=[(vectors, advice.estimate(vectors, 384, 16))],
    )


def test_the_window_grows_each_phase_with_what_it_works_on():
    measured = [
        ("preflight", 0.1),
        ("dump", 10.0),
        ("schema", 0.5),
        ("data", 20.0),
        ("index build", 30.0),
        ("analyze", 1.0),
        ("drift", 3.0),
    ]
    small = _size(100_000, 200 * 2**20)
    large, basis = window.production_size(small, 1_000_000)
    projected = window.project(measured, small, large, basis)
    phases = {phase["name"]: phase for phase in projected.phases}
    assert "drift" not in phases, "pgcutover's own measurement is not part of the cutover"
    assert phases["dump"]["factor"] == pytest.approx(10, rel=1e-3)
    assert phases["data"]["projected_seconds"] == pytest.approx(200, rel=1e-3)
    assert phases["index build"]["factor"] == pytest.approx(10 * np.log(1e6) / np.log(1e5), 1e-3)
    assert phases["analyze"]["factor"] == pytest.approx(40_000 / 31_000, rel=1e-2)
    assert phases["schema"]["factor"] == 1.0
    assert projected.low_seconds < projected.projected_seconds < projected.high_seconds
    assert projected.uncertainty == pytest.approx(window.UNCERTAINTY + window.PER_DECADE)
    assert any("maintenance_work_mem" in line for line in projected.assumptions)
    same, itself = window.production_size(small, None)
    at_size = window.project(measured, small, same, itself)
    assert itself == "the source itself"
    assert at_size.projected_seconds == at_size.measured_seconds
    assert at_size.uncertainty == window.UNCERTAINTY
