"""Each issue-2 check passes on a faithful copy and fails, naming itself, on a broken one."""

from __future__ import annotations

from helpers import execute, failed_ids
from pgcutover.checks import connectivity, row_counts, vector_indexes, vectors


def run_all(pair, settings):
    return [
        *connectivity.check(pair, settings),
        *row_counts.check(pair, settings),
        *vectors.check(pair, settings),
        *vector_indexes.check(pair, settings),
    ]


def test_faithful_copy_passes_every_check(pair, settings):
    results = run_all(pair, settings)
    assert failed_ids(results) == set()
    assert "row_counts.public.vector_embeddings" in {r.id for r in results}
    assert "row_counts.auth.users" in {r.id for r in results}


def test_one_missing_row_fails_its_table_count(pair, settings):
    execute(
        pair.target,
        "DELETE FROM vector_embeddings WHERE id = (SELECT min(id) FROM vector_embeddings)",
    )
    assert failed_ids(run_all(pair, settings)) == {"row_counts.public.vector_embeddings"}


def test_wrong_dimension_column_fails_vector_dimensions(pair, settings):
    execute(pair.target, "DROP INDEX idx_embedding_hnsw")
    execute(pair.target, "ALTER TABLE vector_embeddings DROP COLUMN embedding")
    execute(pair.target, "ALTER TABLE vector_embeddings ADD COLUMN embedding vector(768)")
    execute(
        pair.target,
        "UPDATE vector_embeddings SET embedding = array_fill(0.1::real, ARRAY[768])::vector",
    )
    failed = failed_ids(run_all(pair, settings))
    assert "vector_dimensions.public.vector_embeddings.embedding" in failed


def test_missing_extension_fails_extension_check(pair, settings):
    execute(pair.target, "DROP EXTENSION vector CASCADE")
    failed = failed_ids(run_all(pair, settings))
    assert "extension.vector.target" in failed


def test_missing_hnsw_index_fails_vector_index(pair, settings):
    execute(pair.target, "DROP INDEX idx_embedding_hnsw")
    assert failed_ids(run_all(pair, settings)) == {"vector_index.public.idx_embedding_hnsw"}


def test_configured_dimensions_must_match_the_model(pair, settings):
    from dataclasses import replace

    wrong = replace(settings, vector_dimensions=768)
    failed = failed_ids(vectors.check(pair, wrong))
    assert "vector_dimensions.configuration" in failed
    assert "vector_dimensions.public.vector_embeddings.embedding" in failed


def test_expression_vector_indexes_are_discovered(pair, settings):
    from pgcutover.catalog import ann_indexes
    from pgcutover.db import connection

    execute(
        pair.target,
        "CREATE INDEX idx_embedding_half ON vector_embeddings"
        " USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)",
    )
    with connection(pair.target, role="target") as conn:
        found = {index.name: index for index in ann_indexes(conn, settings.ignored_schemas)}
    half = found["idx_embedding_half"]
    assert half.column == "embedding"
    assert half.expression is not None and "halfvec(384)" in half.expression
    assert (half.input_type, half.operator) == ("halfvec", "<=>")
    assert found["idx_embedding_hnsw"].column == "embedding"
    assert found["idx_embedding_hnsw"].expression is None
    assert found["idx_embedding_hnsw"].operator == "<=>"
