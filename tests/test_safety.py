"""Safety against real environments (issue 11): one server reached under several names is
refused before anything is written; the same for a run through the CLI; a read-only
verification role under row-level security yields no false failure; writes on a named
target wait for --test-writes."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import by_id, drop_database, execute, make_settings, pair_of
from pgcutover.checks import registry
from pgcutover.checks.base import FAIL, RLS_HIDES_ROWS, Pair
from pgcutover.checks.search import smoke
from pgcutover.db import Endpoint, connection
from pgcutover.faults.network import through
from pgcutover.faults.proxy import FaultProxy
from pgcutover.identity import SameDatabase, refuse_same_database, relation
from pgcutover.migrate.runner import migrate, not_performed
from pgcutover.providers.embedded import EmbeddedServer

DATABASE = "identity_app"


@pytest.fixture(scope="module")
def socket_server() -> Iterator[EmbeddedServer]:
    """A PG18 server listening on TCP and on a Unix socket in a short folder, holding a small
    vector database that plays the source."""
    base = Path(tempfile.mkdtemp(prefix="pgc-id-"))
    base.chmod(0o755)
    sockets = base / "s"
    sockets.mkdir()
    sockets.chmod(0o777)
    server = EmbeddedServer("pg18", base / "server", "identity source", socket_dir=str(sockets))
    try:
        server.init()
        server.start()
        execute(server.endpoint, f"CREATE DATABASE {DATABASE}")
        execute(
            server.endpoint.with_dbname(DATABASE),
            "CREATE EXTENSION vector;"
            "CREATE TABLE items (id int PRIMARY KEY, body text, embedding vector(3));"
            "INSERT INTO items SELECT i, 'item ' || i, ARRAY[i, i + 1, i + 2]::vector"
            " FROM generate_series(1, 500) i;"
            "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops);",
        )
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def checksum(endpoint: Endpoint) -> str:
    """The source's tables and rows, hashed: unchanged means unharmed."""
    with connection(endpoint, role="source") as conn:
        tables = conn.execute(
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
            " WHERE schemaname = 'public'"
        ).fetchone()[0]
        rows = conn.execute("SELECT md5(string_agg(i::text, '|' ORDER BY id)) FROM items i")
        return hashlib.sha256(f"{tables}:{rows.fetchone()[0]}".encode()).hexdigest()


def aliases(server: EmbeddedServer) -> Iterator[tuple[str, Endpoint]]:
    """The source database under other names: spellings of the host, an IPv4-mapped IPv6
    address, the socket directory, and a TCP proxy on another port."""
    source = server.endpoint.with_dbname(DATABASE)
    yield "127.1", replace(source, host="127.1")
    yield "LOCALHOST", replace(source, host="LOCALHOST")
    yield "::ffff:127.0.0.1", replace(source, host="::ffff:127.0.0.1")
    yield "socket directory", replace(source, host=server.socket_dir)
    with FaultProxy(upstream=(source.host, source.port)) as proxy:
        yield "tcp proxy", through(proxy, source)


def test_one_server_under_other_names_is_refused_before_anything_is_written(
    socket_server, tmp_path
):
    source = socket_server.endpoint.with_dbname(DATABASE)
    before = checksum(source)
    settings = replace(make_settings(tmp_path, strategy="custom"), allow_destructive=True)
    pair = pair_of(source, source, settings)
    seen = []
    for name, alias in aliases(socket_server):
        with pytest.raises(SameDatabase, match=r"is the source .* under another name"):
            refuse_same_database(source, alias)
        result = migrate(source, alias, settings, pair.inventory)
        assert not result.ok and result.failed_phase == "preflight", name
        assert "under another name" in str(result.error) and "nothing was written" in str(
            result.error
        )
        assert [phase.name for phase in result.phases] == ["preflight"], name
        seen.append(name)
    assert len(seen) == 5
    assert checksum(source) == before


def test_another_database_on_the_same_server_is_allowed_and_said(socket_server, tmp_path):
    source = socket_server.endpoint.with_dbname(DATABASE)
    name = f"identity_copy_{os.getpid()}"
    execute(socket_server.endpoint, f"CREATE DATABASE {name}")
    try:
        found = relation(source, replace(source, host="LOCALHOST", dbname=name))
        assert found.same_server and not found.same_database
        settings = make_settings(tmp_path)
        pair = pair_of(source, socket_server.endpoint.with_dbname(name), settings)
        result = migrate(source, pair.target, settings, pair.inventory)
        assert result.ok, result.error
        assert "roles" not in [phase.name for phase in result.phases]
        assert any("share a server" in note for note in result.notes)
    finally:
        drop_database(socket_server, name)


def test_different_servers_are_told_apart(seeded_source, target_copy):
    assert not relation(seeded_source, target_copy).same_server


@pytest.fixture
def verifier(source_server, target_server) -> Iterator[tuple[str, str]]:
    """A read-only login on both servers, as a cautious user creates it: pg_read_all_data
    and pg_read_all_settings, no BYPASSRLS."""
    role, password = f"verifier_{os.getpid()}", secrets.token_urlsafe(16)
    for server in (source_server, target_server):
        execute(
            server.endpoint,
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE pg_read_all_data, "
            "pg_read_all_settings",
        )
    yield role, password
    for server in (source_server, target_server):
        execute(server.endpoint, f"DROP ROLE {role}")


def test_a_read_only_verifier_under_row_level_security_gets_no_false_failure(
    seeded_source, target_copy, settings, verifier, tmp_path
):
    role, password = verifier
    source = replace(seeded_source, user=role, password=password)
    target = replace(target_copy, user=role, password=password)
    pair = pair_of(source, target, settings)
    context = registry.Context(pair, settings, not_performed("verify"), None, lambda *_: tmp_path)
    families = (
        "row_counts",
        "content",
        "schema",
        "settings",
        "vector_dimensions",
        "vector_index",
        "search.plan",
        "search.recall",
    )
    results = [result for name in families for result in registry.run(name, context)]
    assert [r.id for r in results if r.status == FAIL] == []
    found = by_id(results)
    for table in ("public.documents", "public.vector_embeddings"):
        hidden = found[f"row_counts.{table}"]
        assert hidden.status == "unknown"
        assert "row-level security" in hidden.message and "BYPASSRLS" in hidden.remedy
    assert found["row_counts.public.users"].status == "pass"
    assert not [r.id for r in results if role in r.id]
    assert any(
        RLS_HIDES_ROWS in r.message or "row-level security" in r.message
        for r in results
        if r.id.startswith("search.")
    )


def test_smoke_writes_on_a_named_target_wait_for_test_writes(pair, settings):
    named = Pair(pair.source, replace(pair.target, ephemeral=False), pair.inventory)
    skipped = by_id(smoke.check(named, settings))["search.smoke.app"]
    assert skipped.status == "skip" and "--test-writes" in skipped.message
    allowed = by_id(smoke.check(named, replace(settings, test_writes=True)))["search.smoke.app"]
    assert allowed.status == "pass", allowed.message
