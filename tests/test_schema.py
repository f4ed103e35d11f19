"""Schema parity passes on a faithful copy and, on a copy broken in one way, fails naming
exactly the object that was broken."""

from __future__ import annotations

from dataclasses import replace

import pytest

from helpers import by_id, execute, failed_ids
from pgcutover.checks import schema
from pgcutover.migrate.roles import setting_statement


def test_faithful_copy_passes_every_family(pair, settings):
    results = schema.check(pair, settings)
    assert failed_ids(results) == set(), [r.message for r in results if r.status != "pass"]
    ids = {r.id for r in results}
    for expected in (
        "schema.database.encoding",
        "schema.database.collation",
        "schema.namespace.auth",
        "schema.role.authenticated",
        "schema.role.authenticator",
        "schema.column.public.vector_embeddings",
        "schema.constraint.public.query_log",
        "schema.index.public.idx_embedding_hnsw",
        "schema.sequence.public.query_log_id_seq",
        "schema.grant.public.documents",
        "schema.default_grant.postgres.public.tables",
        "schema.rls.public.documents",
        "schema.policy.public.documents.documents_owner",
        "schema.trigger.public.documents.documents_set_updated_at",
        "schema.view.public.document_stats",
        "schema.function.public.set_updated_at()",
    ):
        assert expected in ids
    assert "forced" in by_id(results)["schema.rls.public.documents"].message


def test_extension_version_change_is_a_non_blocking_warning(pair, settings):
    vector = by_id(schema.check(pair, settings))["schema.extension.vector"]
    assert vector.expected["version"] != vector.actual["version"]  # pgvector 0.6 -> 0.8
    assert vector.status == "pass"
    assert vector.details["severity"] == "warning"
    assert "iterative index scans" in vector.message
    assert "halfvec" in vector.message
    assert any("halfvec" in item for item in vector.details["added_objects"])


BREAKAGES = {
    "vector column retyped to 768 dimensions": (
        [
            "DROP INDEX idx_embedding_hnsw",
            "ALTER TABLE vector_embeddings DROP COLUMN embedding",
            "ALTER TABLE vector_embeddings ADD COLUMN embedding vector(768)",
        ],
        {
            "schema.column.public.vector_embeddings.embedding",
            "schema.index.public.idx_embedding_hnsw",
        },
    ),
    "a default dropped": (
        ["ALTER TABLE documents ALTER COLUMN created_at DROP DEFAULT"],
        {"schema.column.public.documents.created_at"},
    ),
    "a table restored UNLOGGED": (
        ["ALTER TABLE query_log SET UNLOGGED"],
        {"schema.table.public.query_log"},
    ),
    "a dropped index": (
        ["DROP INDEX idx_vector_embeddings_user_id"],
        {"schema.index.public.idx_vector_embeddings_user_id"},
    ),
    "HNSW rebuilt with another m": (
        [
            "DROP INDEX idx_embedding_hnsw",
            "CREATE INDEX idx_embedding_hnsw ON vector_embeddings"
            " USING hnsw (embedding vector_cosine_ops) WITH (m = 24)",
        ],
        {"schema.index.public.idx_embedding_hnsw"},
    ),
    # The catalog state a failed or cancelled CREATE INDEX CONCURRENTLY leaves behind.
    "an invalid index": (
        [
            "UPDATE pg_index SET indisvalid = false"
            " WHERE indexrelid = 'public.idx_vector_embeddings_user_id'::regclass"
        ],
        {"schema.index.public.idx_vector_embeddings_user_id"},
    ),
    "a NOT VALID foreign key": (
        [
            "ALTER TABLE query_log DROP CONSTRAINT query_log_user_id_fkey",
            "ALTER TABLE query_log ADD CONSTRAINT query_log_user_id_fkey FOREIGN KEY (user_id)"
            " REFERENCES users (id) ON DELETE CASCADE NOT VALID",
        ],
        {"schema.constraint.public.query_log.query_log_user_id_fkey"},
    ),
    "a sequence left behind": (
        ["SELECT setval('query_log_id_seq', 1)"],
        {"schema.sequence.public.query_log_id_seq"},
    ),
    "a grant to authenticated revoked": (
        ["REVOKE SELECT ON documents FROM authenticated"],
        {"schema.grant.public.documents.authenticated"},
    ),
    "default privileges for future tables lost": (
        ["ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM service_role"],
        {"schema.default_grant.postgres.public.tables.service_role"},
    ),
    "RLS disabled": (
        ["ALTER TABLE documents DISABLE ROW LEVEL SECURITY"],
        {"schema.rls.public.documents"},
    ),
    "RLS no longer forced": (
        ["ALTER TABLE documents NO FORCE ROW LEVEL SECURITY"],
        {"schema.rls.public.documents"},
    ),
    "a policy dropped": (
        ["DROP POLICY documents_owner ON documents"],
        {"schema.policy.public.documents.documents_owner"},
    ),
    "a disabled trigger": (
        ["ALTER TABLE documents DISABLE TRIGGER documents_set_updated_at"],
        {"schema.trigger.public.documents.documents_set_updated_at"},
    ),
    "a changed view": (
        [
            "CREATE OR REPLACE VIEW document_stats AS"
            " SELECT d.id AS document_id, d.user_id, count(v.id) + 0 AS chunks"
            " FROM documents d LEFT JOIN vector_embeddings v ON v.document_id = d.id"
            " GROUP BY d.id, d.user_id"
        ],
        {"schema.view.public.document_stats"},
    ),
    "a changed function": (
        [
            "CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RETURN NEW; END $$"
        ],
        {"schema.function.public.set_updated_at()"},
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_breakage_fails_exactly_its_check(pair, settings, breakage):
    statements, expected = BREAKAGES[breakage]
    for statement in statements:
        execute(pair.target, statement)
    results = schema.check(pair, settings)
    assert failed_ids(results) == expected
    for check_id in expected:
        failed = by_id(results)[check_id]
        assert failed.status == "fail"
        assert failed.remedy


def test_retyped_vector_column_names_both_typmods(pair, settings):
    statements, _ = BREAKAGES["vector column retyped to 768 dimensions"]
    for statement in statements:
        execute(pair.target, statement)
    column = by_id(schema.check(pair, settings))["schema.column.public.vector_embeddings.embedding"]
    assert column.expected["type"] == "public.vector(384)"
    assert column.actual["type"] == "public.vector(768)"
    assert "vector(768)" in column.message


def test_hnsw_option_difference_is_spelled_out(pair, settings):
    for statement in BREAKAGES["HNSW rebuilt with another m"][0]:
        execute(pair.target, statement)
    index = by_id(schema.check(pair, settings))["schema.index.public.idx_embedding_hnsw"]
    assert index.details["differences"]["options"][0]["m"] == "16"
    assert index.details["differences"]["options"][1]["m"] == "24"


def test_sequence_remedy_advances_it_past_the_stored_ids(pair, settings):
    execute(pair.target, "SELECT setval('query_log_id_seq', 1)")
    sequence = by_id(schema.check(pair, settings))["schema.sequence.public.query_log_id_seq"]
    execute(pair.target, sequence.remedy)
    assert failed_ids(schema.check(pair, settings)) == set()


def test_failed_concurrent_build_leaves_an_invalid_extra_index(pair, settings):
    with pytest.raises(Exception, match="could not create unique index"):
        execute(
            pair.target,
            "CREATE UNIQUE INDEX CONCURRENTLY idx_one_chunk_per_user"
            " ON vector_embeddings (user_id)",
        )
    results = schema.check(pair, settings)
    assert failed_ids(results) == {"schema.index.public.idx_one_chunk_per_user"}
    assert "INVALID" in by_id(results)["schema.index.public.idx_one_chunk_per_user"].message


def test_lost_membership_fails_the_member_role(pair, settings):
    # Memberships are cluster-wide: put it back for the other copies on this server.
    execute(pair.target, "REVOKE anon FROM authenticator")
    try:
        results = schema.check(pair, settings)
    finally:
        execute(pair.target, "GRANT anon TO authenticator WITH INHERIT FALSE, SET TRUE")
    assert failed_ids(results) == {"schema.role.authenticator"}


def test_excluded_schema_is_not_compared(pair, settings):
    execute(pair.target, "ALTER TABLE auth.users ALTER COLUMN email DROP NOT NULL")
    assert "schema.column.auth.users.email" in failed_ids(schema.check(pair, settings))
    excluded = replace(settings, exclude_schemas=("auth",))
    results = schema.check(pair, excluded)
    assert failed_ids(results) == set()
    assert not [r.id for r in results if ".auth." in r.id or r.id.endswith(".auth")]


def test_unreachable_target_is_unknown_never_pass(pair, settings):
    broken = replace(pair, target=replace(pair.target, dbname="no_such_database"))
    results = schema.check(broken, settings)
    assert [r.status for r in results] == ["unknown"]


def test_list_settings_are_quoted_element_by_element():
    statement = setting_statement("authenticator", 'search_path="$user", public', None)
    assert statement.as_string() == (
        """ALTER ROLE "authenticator" SET "search_path" TO '$user', 'public'"""
    )
    scoped = setting_statement("anon", "statement_timeout=3s", "app")
    assert (
        scoped.as_string()
        == """ALTER ROLE "anon" IN DATABASE "app" SET "statement_timeout" TO '3s'"""
    )
