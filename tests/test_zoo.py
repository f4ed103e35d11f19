"""The zoo of real schemas (issue 10): for every database a RAG framework creates, pgcutover
migrates it and ends GO, an exact copy verifies GO, and seeded faults end NO-GO naming the
check that must catch them. Members and their dumps: fixtures/zoo/ (see its README)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from helpers import drop_database, execute, failed_ids, inventory_of
from pgcutover.checks.base import CheckResult, describe
from pgcutover.db import Endpoint, connect
from pgcutover.migrate.runner import migrate, not_performed
from pgcutover.providers.embedded import EmbeddedServer, start_embedded
from zoo import Member, copy, load, members, verify, zoo_settings

pytestmark = pytest.mark.slow

MEMBERS = members()
#: The migration strategy each member is moved with: every strategy at least once.
STRATEGIES = {
    "langchain": "custom",
    "llamaindex": "plain",
    "vecs": "directory",
    "haystack": "plain",
    "supabase": "custom",
    "reference": "directory",
    "hardcases": "plain",
}
VERIFY_ONLY = "verifying an exact copy of the source"


@dataclass(frozen=True)
class Fault:
    """A change seeded into an exact copy of a member (SQL run as superuser; {db} names the
    copy's database), the check family that must catch it (only that one runs: a NO-GO needs
    no more) and the check ids (fnmatch pattern) of which one at least must fail."""

    name: str
    statement: str
    family: str
    check: str


#: Per member, one fault in content and one in search (a vector index or a search setting).
FAULTS = {
    "langchain": {
        "content": Fault(
            "changed_chunk_text",
            "UPDATE public.langchain_pg_embedding SET document = document || ' (edited)'"
            " WHERE id = 'chunk-7'",
            "content",
            "content.public.langchain_pg_embedding",
        ),
        "search": Fault(
            "dropped_hnsw_index",
            "DROP INDEX public.python_docs_chunkslangchainvectorindex",
            "vector_index",
            "vector_index.public.python_docs_chunkslangchainvectorindex",
        ),
    },
    "llamaindex": {
        "content": Fault(
            "changed_embedding",
            "UPDATE public.data_python_docs SET embedding = (SELECT embedding FROM"
            " public.data_python_docs WHERE node_id = 'chunk-1') WHERE node_id = 'chunk-2'",
            "content",
            "content.public.data_python_docs",
        ),
        "search": Fault(
            "hnsw_index_changed_to_l2",
            "DROP INDEX public.data_python_docs_embedding_idx;"
            " CREATE INDEX data_python_docs_embedding_idx ON public.data_python_docs"
            " USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 64)",
            "schema",
            "schema.index.public.data_python_docs_embedding_idx",
        ),
    },
    "vecs": {
        "content": Fault(
            "deleted_record",
            "DELETE FROM vecs.docs WHERE id = 'chunk-3'",
            "content",
            "content.vecs.docs",
        ),
        "search": Fault(
            "lowered_ef_search",
            "ALTER DATABASE {db} SET hnsw.ef_search = 10",
            "settings",
            "*settings*hnsw.ef_search*",
        ),
    },
    "haystack": {
        "content": Fault(
            "changed_filter_metadata",
            "UPDATE public.haystack_documents"
            " SET meta = jsonb_set(meta, '{{user_id}}', '\"user-0\"') WHERE id = 'chunk-5'",
            "content",
            "content.public.haystack_documents",
        ),
        "search": Fault(
            "weaker_hnsw_options",
            "DROP INDEX public.haystack_hnsw_index;"
            " CREATE INDEX haystack_hnsw_index ON public.haystack_documents"
            " USING hnsw (embedding vector_cosine_ops) WITH (m = 4, ef_construction = 8)",
            "schema",
            "schema.index.public.haystack_hnsw_index",
        ),
    },
    "supabase": {
        "content": Fault(
            "changed_user_email",
            "UPDATE auth.users SET email = 'someone.else@zoo.example.org'"
            " WHERE email = 'member3@zoo.example.org'",
            "content",
            "content.auth.users",
        ),
        "search": Fault(
            "dropped_hnsw_index",
            "DROP INDEX public.document_sections_embedding_idx",
            "vector_index",
            "vector_index.public.document_sections_embedding_idx",
        ),
    },
    "reference": {
        "content": Fault(
            "lost_audit_row",
            "DELETE FROM public.audit_log WHERE ctid = (SELECT min(ctid) FROM public.audit_log)",
            "content",
            "content.public.audit_log",
        ),
        "search": Fault(
            "lowered_ivfflat_probes",
            "ALTER DATABASE {db} SET ivfflat.probes = 1",
            "settings",
            "*settings*ivfflat.probes*",
        ),
    },
    "hardcases": {
        "content": Fault(
            "changed_partition_row",
            "UPDATE kb.chunks SET content = content || ' (edited)' WHERE tenant = 'globex'"
            " AND id = (SELECT min(id) FROM kb.chunks WHERE tenant = 'globex')",
            "content",
            "content.kb.chunks*",
        ),
        "search": Fault(
            "dropped_halfvec_expression_index",
            "DROP INDEX kb.chunks_embedding_halfvec_idx",
            "vector_index",
            "vector_index.kb.chunks*",
        ),
    },
}


def by_member(names: list[str]) -> pytest.MarkDecorator:
    """Every test takes the same member list, so pytest runs each member's tests together
    and restores its databases once."""
    return pytest.mark.parametrize("member", names, indirect=True)


@pytest.fixture(scope="module")
def member(request: pytest.FixtureRequest) -> Member:
    return MEMBERS[request.param]


@pytest.fixture(scope="session")
def pg18_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A PostgreSQL 18 source for the members that need pgvector 0.7+ or pg_trgm."""
    base = tmp_path_factory.mktemp("zoo-pg18-source")
    base.chmod(0o711)
    server = start_embedded("pg18", base / "server", "zoo source (PG18)")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def home(
    member: Member, source_server: EmbeddedServer, pg18_source: EmbeddedServer
) -> EmbeddedServer:
    """The server the member was generated on: the session's PG16 source, or a PG18 one."""
    return source_server if member.server == "pg16" else pg18_source


@pytest.fixture(scope="module")
def zoo_source(member: Member, home: EmbeddedServer) -> Iterator[Endpoint]:
    name = f"zoo_{member.name}"
    yield load(home, member, name)
    drop_database(home, name)


@pytest.fixture(scope="module")
def exact_copy(member: Member, home: EmbeddedServer, zoo_source: Endpoint) -> Iterator[Endpoint]:
    """The member restored a second time, beside the source."""
    name = f"zoo_{member.name}_copy"
    yield load(home, member, name)
    drop_database(home, name)


@pytest.fixture(scope="module")
def copy_results(
    zoo_source: Endpoint, exact_copy: Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> list[CheckResult]:
    """Every check family on (source, exact copy): the GO baseline the faults differ from."""
    tmp = tmp_path_factory.mktemp("zoo-copy")
    return verify(
        zoo_source, exact_copy, zoo_settings(tmp, "custom"), not_performed(VERIFY_ONLY), tmp
    )


@by_member(list(MEMBERS))
def test_exact_copy_ends_go(member: Member, copy_results: list[CheckResult]) -> None:
    assert not failed_ids(copy_results), describe(copy_results)


@by_member(list(MEMBERS))
def test_migrates_and_ends_go(
    member: Member, zoo_source: Endpoint, target_server: EmbeddedServer, tmp_path: Path
) -> None:
    name = f"zoo_{member.name}_migrated"
    with connect(target_server.endpoint, role="admin") as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = target_server.endpoint.with_dbname(name)
    settings = zoo_settings(tmp_path, STRATEGIES[member.name])
    try:
        result = migrate(zoo_source, target, settings, inventory_of(zoo_source, settings))
        results = verify(zoo_source, target, settings, result, tmp_path)
    finally:
        drop_database(target_server, name)
    assert result.ok, f"{result.failed_phase}: {result.error}"
    assert not failed_ids(results), describe(results)


@by_member(list(MEMBERS))
@pytest.mark.parametrize("kind", ["content", "search"])
def test_seeded_fault_ends_no_go_naming_the_check(
    member: Member,
    kind: str,
    home: EmbeddedServer,
    zoo_source: Endpoint,
    exact_copy: Endpoint,
    copy_results: list[CheckResult],
    tmp_path: Path,
) -> None:
    fault = FAULTS[member.name][kind]
    name = f"zoo_{member.name}_{fault.name}"
    faulty = copy(home, member, exact_copy.dbname, name)
    try:
        execute(faulty, fault.statement.format(db=name))
        results = verify(
            zoo_source,
            faulty,
            zoo_settings(tmp_path, "custom"),
            not_performed(VERIFY_ONLY),
            tmp_path,
            only={fault.family},
        )
    finally:
        drop_database(home, name)
    caught = fnmatch.filter(failed_ids(results), fault.check)
    assert caught, f"no failed check matches {fault.check}; blocking:\n{describe(results)}"
    already = fnmatch.filter(failed_ids(copy_results), fault.check)
    assert not already, f"{already} fail on the exact copy too: they did not catch the fault"


@by_member(list(MEMBERS))
def test_second_dimension_is_reported_with_its_own(
    member: Member, copy_results: list[CheckResult]
) -> None:
    if member.name != "reference":
        pytest.skip("only the reference member has a second vector dimension (1536)")
    wanted = "vector_dimensions.public.documents.summary_embedding"
    column = [r for r in copy_results if r.id == wanted]
    assert column, f"the 1536-d column was not checked ({wanted})"
    assert column[0].status == "pass", describe(column)
    assert "1536" in f"{column[0].expected} {column[0].actual} {column[0].message}", column


@by_member(list(MEMBERS))
def test_a_member_without_filter_columns_says_how_to_name_one(
    member: Member, copy_results: list[CheckResult]
) -> None:
    filtered = [r for r in copy_results if r.id == "search.filtered"]
    if not filtered:
        pytest.skip(f"{member.name} has filter columns: its filtered shapes ran")
    assert filtered[0].status == "skip"
    assert "JSON metadata" in filtered[0].message and "filter_column" in filtered[0].message
