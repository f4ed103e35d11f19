"""Data expectations: the built-in suite holds on a faithful copy, a broken copy fails the right
expectations, users add suites as TOML, and Data Docs never hold a password."""

from __future__ import annotations

from helpers import by_id, execute, failed_ids, make_settings
from pgcutover import expectations
from pgcutover.db import connect

EMAIL_UNIQUE = "expectations.rag.public.users.email_unique"
ORPHAN = "expectations.rag.public.vector_embeddings.document_exists"


def test_clean_copy_meets_every_expectation_and_docs_hold_no_password(pair, settings, tmp_path):
    docs = tmp_path / "docs"
    results = expectations.check(pair, settings, docs_dir=docs)
    assert failed_ids(results) == set(), [r.message for r in results if r.status != "pass"]
    ids = {r.id for r in results}
    assert {EMAIL_UNIQUE, ORPHAN, "expectations.rag.public.users.email_valid"} <= ids
    assert "expectations.rag.public.vector_embeddings.embedding_dimension" in ids
    assert all(r.area == "expectations" and r.status == "pass" for r in results)
    with connect(pair.source.with_dbname("postgres"), role="admin") as admin:
        left_open = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (pair.source.dbname,)
        ).fetchone()
    assert left_open == (0,), "great-expectations' pooled sessions must be closed after the run"
    assert (docs / "index.html").stat().st_size > 0
    pages = [path for path in docs.rglob("*") if path.suffix in (".html", ".json", ".css")]
    assert any("validations" in path.parts for path in pages), "no validation pages in the docs"
    for page in pages:
        text = page.read_text(errors="replace")
        for password in (pair.source.password, pair.target.password):
            assert password and password not in text, f"a password leaked into {page}"


def test_duplicate_emails_and_an_orphan_chunk_fail_their_expectations(pair, settings):
    execute(pair.target, "ALTER TABLE public.users DROP CONSTRAINT users_email_key")
    execute(
        pair.target,
        "UPDATE public.users SET email = (SELECT min(email) FROM public.users)"
        " WHERE id = (SELECT id FROM public.users ORDER BY id DESC LIMIT 1)",
    )
    execute(
        pair.target,
        "ALTER TABLE public.vector_embeddings DROP CONSTRAINT vector_embeddings_document_id_fkey",
    )
    execute(
        pair.target,
        "INSERT INTO public.vector_embeddings (id, document_id, user_id, content, embedding)"
        " SELECT 'orphan-chunk', gen_random_uuid(), user_id, content, embedding"
        " FROM public.vector_embeddings LIMIT 1",
    )
    results = by_id(expectations.check(pair, settings))
    assert failed_ids(list(results.values())) == {EMAIL_UNIQUE, ORPHAN}
    duplicate = results[EMAIL_UNIQUE]
    assert duplicate.actual == 2 and duplicate.expected == 0
    assert "the migration changed the data" in duplicate.remedy
    assert results[ORPHAN].actual == 1
    assert results[ORPHAN].details["source"]["success"] is True


def test_users_add_suites_as_toml_and_the_source_is_compared(pair, tmp_path):
    folder = tmp_path / "my_expectations"
    folder.mkdir()
    (folder / "shop.toml").write_text(
        "[[expect]]\n"
        "table = 'public.query_log'\n"
        "name = 'no_results_ever'\n"
        "type = 'expect_column_values_to_be_between'\n"
        "column = 'result_count'\n"
        "max_value = -1\n"
        "\n[[expect]]\n"
        "table = 'public.no_such_table'\n"
        "type = 'expect_column_values_to_not_be_null'\n"
        "column = 'id'\n"
    )
    (tmp_path / "targets.toml").write_text("[expectations]\nextra_suites = ['my_expectations']\n")
    results = by_id(expectations.check(pair, make_settings(tmp_path)))
    mine = results["expectations.shop.public.query_log.no_results_ever"]
    assert (mine.status, mine.details["finding"]) == ("pass", "both sides")
    assert "the source has the same problem" in mine.remedy
    absent = results["expectations.shop"]
    assert absent.status == "skip" and absent.details["tables"] == ["public.no_such_table"]
    assert results[EMAIL_UNIQUE].status == "pass", "the built-in suite runs beside the user's"


def test_a_suite_naming_an_unknown_expectation_is_unknown_with_a_remedy(pair, tmp_path):
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "typo.toml").write_text(
        "[[expect]]\ntable = 'public.users'\ntype = 'expect_column_to_be_lovely'\ncolumn = 'id'\n"
    )
    (tmp_path / "targets.toml").write_text("[expectations]\nextra_suites = ['suites']\n")
    [result] = expectations.check(pair, make_settings(tmp_path))
    assert result.status == "unknown"
    assert "expect_column_to_be_lovely" in result.message
    assert "greatexpectations.io/expectations" in result.remedy


def test_unexpected_rows_are_counted_exactly_beyond_the_rows_read_back(pair, settings):
    """An unexpected-rows query brings back a few rows only (a failure on millions of rows
    must not pull them all into memory), yet the count of offenders stays exact."""
    execute(
        pair.target,
        "ALTER TABLE public.vector_embeddings DROP CONSTRAINT vector_embeddings_document_id_fkey",
    )
    execute(
        pair.target,
        "UPDATE public.vector_embeddings SET document_id = gen_random_uuid()"
        " WHERE id IN (SELECT id FROM public.vector_embeddings ORDER BY id LIMIT 60)",
    )
    orphans = by_id(expectations.check(pair, settings))[ORPHAN]
    assert orphans.status == "fail"
    assert orphans.actual == 60, "the count stopped at the rows read back"
    assert "60 of" not in orphans.message and "60 unexpected" in orphans.message
    assert len(orphans.details["target"]["sample"]) == 5
    assert "document_id" in orphans.details["target"]["sample"][0]
