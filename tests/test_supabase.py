"""Issue 15: the guide's own path, Supabase self-hosted to managed PostgreSQL. A source laid
out as Supabase lays out every project (tests/supabase/*.sql over a copy of the seeded RAG
database) migrates into a managed-like target (a PG18 server whose superuser stands for the
provider, the restore running as a non-superuser `postgres`): extensions land in their
schema, the event trigger the target refuses is a finding and not a crash, every platform
part is judged and blocks until acknowledged; the plan writes what will happen and touches
nothing; an extension the target cannot provide is named with what uses it."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest

from helpers import (
    REPO,
    by_id,
    clone_database,
    drop_database,
    execute,
    failed_ids,
    inventory_of,
    make_settings,
    pair_of,
)
from pgcutover import plan
from pgcutover.checks import platform, row_counts, schema
from pgcutover.config import OPTIONS, build_settings
from pgcutover.db import Endpoint, connect
from pgcutover.environment import open_sides, stop_servers
from pgcutover.errors import ConfigError, MigrationError
from pgcutover.managed import PROVIDER, create_owner_database
from pgcutover.migrate import toc
from pgcutover.migrate.capabilities import capabilities
from pgcutover.migrate.runner import migrate
from pgcutover.migrate.tools import client_binary, run_pipeline
from pgcutover.providers.embedded import EmbeddedServer, start_embedded

LAYOUT = REPO / "tests" / "supabase"
SECRET = "vault-value-never-printed"
#: What the managed-like target makes of the Supabase source, when nothing is acknowledged
#: beyond the rehearsal seed's own two findings (postgres, service_role); the realtime
#: publication moves (its tables are the owner's) to a server that decodes (wal_level=logical).
BLOCKING = {
    "platform.role.supabase_admin",
    "platform.event_trigger.pgrst_ddl_watch",
    "platform.vault",
    "platform.storage",
}
_names = itertools.count()


@pytest.fixture(scope="module")
def supabase_source(source_server: EmbeddedServer, seeded_source: Endpoint) -> Iterator[Endpoint]:
    """The seeded database, copied and laid out as Supabase lays out a project."""
    name = f"supabase_{os.getpid()}"
    endpoint = clone_database(source_server, seeded_source.dbname, name)
    for where, script in ((source_server.endpoint, "roles.sql"), (endpoint, "platform.sql")):
        with connect(where, role="admin") as conn:
            conn.execute((LAYOUT / script).read_text())
    yield endpoint
    drop_database(source_server, name)


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedServer, Endpoint]]:
    """A PG18 server shaped like a managed service: (server, the owner's endpoint)."""
    base = tmp_path_factory.mktemp("managed")
    base.chmod(0o711)
    server = start_embedded("pg18", base / "server", "managed-like target (PG18)", PROVIDER)
    try:
        yield server, create_owner_database(server.endpoint, "owner_home")
    finally:
        server.stop()


@pytest.fixture
def managed_db(managed: tuple[EmbeddedServer, Endpoint]) -> Iterator[tuple[Endpoint, Endpoint]]:
    """A fresh database the owner owns: (as the owner, as the provider's superuser)."""
    server, owner = managed
    name = f"managed_{os.getpid()}_{next(_names)}"
    execute(server.endpoint, f"CREATE DATABASE {name} OWNER postgres")
    yield owner.with_dbname(name), server.endpoint.with_dbname(name)
    drop_database(server, name)


def acknowledging(tmp_path, *patterns: str):
    """Settings whose targets.toml acknowledges these platform findings."""
    listed = ", ".join(f"'{pattern}'" for pattern in patterns)
    (tmp_path / "targets.toml").write_text(f"[platform]\nacknowledge = [{listed}]\n")
    return make_settings(tmp_path)


def one(endpoint: Endpoint, query: str) -> object:
    with connect(endpoint, role="admin") as conn:
        return conn.execute(query).fetchone()[0]  # type: ignore[index]


def test_a_supabase_source_migrates_into_the_managed_like_target(
    supabase_source, managed_db, tmp_path
):
    owner, provider = managed_db
    settings = make_settings(tmp_path)
    inventory = inventory_of(supabase_source, settings)
    result = migrate(supabase_source, owner, settings, inventory, provider=provider)
    assert result.ok, result.error
    phases = [phase.name for phase in result.phases]
    assert phases.index("schemas") < phases.index("extensions") < phases.index("schema")
    assert result.restored_as["role"] == "postgres"
    assert not result.restored_as["superuser"]
    vector = by_extension(result.extensions)["vector"]
    assert (vector["schema"], vector["action"], vector["version"]) == (
        "extensions",
        "provider",
        "0.8.6",
    )
    assert "column embedding of table vector_embeddings" in vector["dependents"]
    assert (
        one(
            provider,
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'",
        )
        == "extensions"
    )
    assert [(r["kind"], r["name"]) for r in result.refusals] == [
        ("event trigger", "pgrst_ddl_watch")
    ]
    assert "permission denied" in result.refusals[0]["error"]
    assert any("search_path" in note for note in result.notes), result.notes

    pair = pair_of(supabase_source, provider, settings)
    assert failed_ids(schema.check(pair, settings) + row_counts.check(pair, settings)) == set()
    judged = by_id(platform.check(pair, settings, result))
    assert {i for i, r in judged.items() if r.status == "fail"} == BLOCKING
    assert (
        "refused it: permission denied" in judged["platform.event_trigger.pgrst_ddl_watch"].message
    )
    assert "openai_api_key, smtp_password" in judged["platform.vault"].message
    assert "avatars: 4 object(s)" in judged["platform.storage"].message
    assert "moved; the target decodes" in judged["platform.publication.supabase_realtime"].message
    assert "it sees no rows of" in judged["platform.role.service_role"].message
    assert judged["platform.auth"].details["severity"] == "note"

    acknowledged = platform.check(pair, acknowledging(tmp_path, "platform.*"), result)
    assert failed_ids(acknowledged) == set()
    assert {r.id for r in acknowledged} >= BLOCKING | {"platform.auth"}
    everything = json.dumps([r.to_json() for r in acknowledged]) + json.dumps(result.to_json())
    assert SECRET not in everything


def by_extension(steps: list[dict]) -> dict[str, dict]:
    return {step["name"]: step for step in steps}


EVENT_TRIGGER_SOURCE = """
CREATE EXTENSION vector;
CREATE TABLE docs (id int PRIMARY KEY, embedding vector(384) NOT NULL);
INSERT INTO docs SELECT n, array_fill(n::real, ARRAY[384])::vector FROM generate_series(1, 20) n;
CREATE FUNCTION audit_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION audit_ddl();
CREATE PUBLICATION everything FOR ALL TABLES;
"""


@pytest.mark.parametrize("strategy", ["plain", "directory"])
def test_what_the_target_refuses_is_a_finding_not_a_crash(
    source_server, managed_db, tmp_path, strategy
):
    name = f"evt_{os.getpid()}_{next(_names)}"
    execute(source_server.endpoint, f"CREATE DATABASE {name}")
    source = source_server.endpoint.with_dbname(name)
    try:
        execute(source, EVENT_TRIGGER_SOURCE)
        owner, provider = managed_db
        settings = make_settings(tmp_path, strategy=strategy)
        result = migrate(source, owner, settings, inventory_of(source, settings), provider=provider)
        assert result.ok, result.error
        assert sorted(r["name"] for r in result.refusals) == ["audit_ddl", "everything"]
        pair = pair_of(source, provider, settings)
        results = platform.check(pair, settings, result) + schema.check(pair, settings)
        assert failed_ids(results) == {
            "platform.event_trigger.audit_ddl",
            "platform.publication.everything",
        }
        finding = by_id(results)["platform.event_trigger.audit_ddl"]
        assert "the target refused it: permission denied to create event trigger" in finding.message
        assert "public.audit_ddl()" in finding.message
        publication = by_id(results)["platform.publication.everything"].message
        assert "the target refused it" in publication and "FOR ALL TABLES" in publication
        assert by_id(results)["schema.event_trigger.audit_ddl"].status == "skip"
        assert one(provider, "SELECT count(*) FROM docs") == 20
    finally:
        drop_database(source_server, name)


def test_an_extension_the_target_cannot_provide_is_named_with_what_uses_it(
    target_server, source_server, tmp_path
):
    """PG18 offers pg_trgm, the PG16 server does not: planned and refused before any write."""
    newer, older = f"trgm_{os.getpid()}", f"old_{os.getpid()}"
    execute(target_server.endpoint, f"CREATE DATABASE {newer}")
    execute(source_server.endpoint, f"CREATE DATABASE {older}")
    source = target_server.endpoint.with_dbname(newer)
    target = source_server.endpoint.with_dbname(older)
    try:
        execute(
            source,
            "CREATE EXTENSION vector; CREATE EXTENSION pg_trgm;"
            "CREATE TABLE people (name text); CREATE INDEX people_name_trgm ON people "
            "USING gin (name gin_trgm_ops)",
        )
        settings = make_settings(tmp_path)
        made = plan.build(source, target, settings, provider=False)
        assert any("pg_trgm" in line and "index people_name_trgm" in line for line in made.cannot)
        result = migrate(source, target, settings, inventory_of(source, settings))
        assert not result.ok and result.failed_phase == "preflight"
        assert "pg_trgm" in result.error and "does not offer it" in result.error
        assert "index people_name_trgm" in result.error
        assert "pg_available_extensions" in result.remedy
        assert one(target, "SELECT count(*) FROM pg_class WHERE relname = 'people'") == 0
    finally:
        drop_database(target_server, newer)
        drop_database(source_server, older)


def test_the_issues_failure_names_the_statement_and_the_remedy(
    supabase_source, managed_db, tmp_path
):
    """The guide's step 1 done the old way (vector in the default schema) makes a restore of
    the Supabase dump fail; the error names the statement and says where the extension goes.
    pgcutover's own migration refuses such a target before writing, with the fix."""
    _, provider = managed_db
    execute(provider, "CREATE EXTENSION vector")
    archive = tmp_path / "supabase.pgc"
    run_pipeline(
        [[str(client_binary("pg_dump")), "-Fc", f"--file={archive}"]],
        [supabase_source],
        phase="dump",
        timeout=120,
    )
    restore = [str(client_binary("pg_restore")), "--exit-on-error", "--section=pre-data"]
    with pytest.raises(MigrationError) as failed:
        run_pipeline(
            [[*restore, f"--dbname={provider.dbname}", str(archive)]],
            [provider],
            phase="schema",
            timeout=120,
        )
    assert "on `CREATE FUNCTION public.match_chunks(query extensions.vector" in failed.value.problem
    assert "CREATE EXTENSION vector WITH SCHEMA extensions" in failed.value.remedy

    settings = make_settings(tmp_path)
    refused = migrate(supabase_source, provider, settings, inventory_of(supabase_source, settings))
    assert refused.failed_phase == "preflight"
    assert "installed in schema public on the target" in refused.error
    assert "ALTER EXTENSION vector SET SCHEMA extensions" in refused.remedy


def test_the_restore_role_is_the_managed_owner_unless_self_hosted(seeded_source, tmp_path):
    """The throwaway target: `postgres` without SUPERUSER restores, the provider's superuser
    reads for the checks; --self-hosted restores as the superuser; with a named target the
    flag is refused."""
    (tmp_path / "targets.toml").write_text(
        f"[targets.dev]\nhost = '{seeded_source.host}'\nport = {seeded_source.port}\n"
        f"database = '{seeded_source.dbname}'\nuser = 'postgres'\npassword_env = 'DEV_PW'\n"
        "sslmode = 'disable'\n"
    )
    environ = {"DEV_PW": seeded_source.password or ""}
    values = {option.name: option.default for option in OPTIONS} | {"source": "dev"}
    for self_hosted in (False, True):
        workdir = tmp_path / f"run-{self_hosted}"
        workdir.mkdir()
        settings = build_settings(
            values | {"self_hosted": self_hosted},
            migrate=None,
            allow_destructive=False,
            rootdir=tmp_path,
            environ=environ,
        )
        try:
            sides = open_sides(settings, workdir)
            with connect(sides.restore_as, role="target") as conn:
                restoring = capabilities(conn)
            with connect(sides.target, role="target") as conn:
                reading = capabilities(conn)
        finally:
            stop_servers(workdir)
        assert restoring.superuser == self_hosted
        assert reading.superuser
        assert (sides.provider is None) == self_hosted
        assert restoring.role == "postgres"
        if not self_hosted:
            assert (restoring.createrole, restoring.createdb, restoring.bypassrls) == (
                True,
                True,
                False,
            )
    (tmp_path / "targets.toml").write_text(
        "[targets.prod]\nhost = 'db'\ndatabase = 'app'\nuser = 'u'\n"
    )
    with pytest.raises(ConfigError, match="--self-hosted"):
        build_settings(
            values | {"source": None, "target": "prod", "self_hosted": True},
            migrate=None,
            allow_destructive=False,
            rootdir=tmp_path,
        )


def test_toc_entries_carry_their_dependencies():
    listing = (
        ";\n; Archive created at 2026-12-02\n"
        "7; 2615 16619 SCHEMA - extensions postgres\n"
        "2740; 0 0 ACL - SCHEMA extensions postgres\n;\tdepends on: 7\n"
        "2; 3079 16392 EXTENSION - vector \n;\tdepends on: 7\n"
        "2743; 0 0 COMMENT - EXTENSION vector \n;\tdepends on: 2\n"
        "2721; 6104 16669 PUBLICATION - supabase_realtime postgres\n"
        "2722; 6106 16670 PUBLICATION TABLE public supabase_realtime documents postgres\n"
        ";\tdepends on: 222 2721\n"
    )
    contents = toc.parse(listing)
    extension = contents.objects(toc.EXTENSION)
    assert [e.dump_id for e in contents.with_attached(extension)] == [2, 2743]
    publication = contents.objects(toc.PUBLICATION)[0]
    assert [e.dump_id for e in contents.dependents(publication, [toc.PUBLICATION_REL])] == [2722]
    assert contents.with_attached(contents.objects(toc.NAMESPACE))[1].line == (
        "2740; 0 0 ACL - SCHEMA extensions postgres"
    )


def dump_fingerprint(endpoint: Endpoint) -> str:
    """The whole database as pg_dump writes it (schema and data), without the random
    \\restrict key, plus the server's roles and per-role/database settings."""
    done = subprocess.run(
        [str(client_binary("pg_dump")), "--no-password"],
        env=endpoint.libpq_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    text = [line for line in done.stdout.splitlines() if not line.startswith("\\")]
    with connect(endpoint, role="admin") as conn:
        roles = conn.execute(
            "SELECT r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole, s.setconfig "
            "FROM pg_roles r LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid ORDER BY 1"
        ).fetchall()
        extensions = conn.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1")
        extra = repr(roles) + repr(extensions.fetchall())
    return "\n".join(text) + extra


@pytest.mark.slow
def test_the_plan_is_written_and_touches_nothing(pytester, supabase_source, managed_db):
    from test_rehearsal_e2e import external_entry, leftovers, output, run_suites

    owner, provider = managed_db
    source_admin = replace(supabase_source, user="postgres")
    before = dump_fingerprint(source_admin), dump_fingerprint(provider)
    (pytester.path / "targets.toml").write_text(
        external_entry("supa", supabase_source, "SUPA_PW")
        + external_entry("managed", owner, "MANAGED_PW")
    )
    result = run_suites(
        pytester,
        "--source=supa",
        "--target=managed",
        "--plan",
        env={"SUPA_PW": supabase_source.password, "MANAGED_PW": owner.password},
    )
    text = output(result)
    assert result.ret == 1, text
    assert (dump_fingerprint(source_admin), dump_fingerprint(provider)) == before
    (written,) = [path.parent for path in (pytester.path / "reports").glob(f"*/{plan.PLAN_TEXT}")]
    document = (written / plan.PLAN_TEXT).read_text()
    data = json.loads((written / plan.PLAN_JSON).read_text())
    assert not (written / "signoff.json").exists()
    assert not (pytester.path / "reports" / "latest").exists()
    assert "extension vector 0.6.2 in schema extensions: postgres will try" in document
    assert "extensions (0 table(s)): created, owned by postgres" in document
    assert set(data["blocking"]) >= {
        "platform.vault",
        "platform.storage",
        "platform.event_trigger.pgrst_ddl_watch",
        "platform.role.postgres",
        "platform.role.service_role",
    }
    assert "openai_api_key" in document
    assert "Migration plan: supa -> managed" in text
    for secret in (SECRET, supabase_source.password, owner.password):
        assert secret not in text and secret not in document
    assert leftovers(pytester.path) == []


@pytest.mark.slow
def test_a_supabase_rehearsal_is_go_with_every_platform_finding_acknowledged(
    pytester, supabase_source
):
    from test_rehearsal_e2e import external_entry, leftovers, output, run_suites, signoff

    acknowledged = sorted(BLOCKING | {"platform.role.postgres", "platform.role.service_role"})
    (pytester.path / "targets.toml").write_text(
        external_entry("supa", supabase_source, "SUPA_PW")
        + "[platform]\nacknowledge = ["
        + ", ".join(f"'{finding}'" for finding in acknowledged)
        + "]\n"
    )
    result = run_suites(pytester, "--source=supa", env={"SUPA_PW": supabase_source.password})
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["migration"]["restored_as"]["superuser"] is False
    checks = {check["id"]: check for check in report["checks"]}
    for finding in acknowledged:
        assert checks[finding]["details"]["severity"] == "acknowledged", finding
    assert checks["platform.auth"]["details"]["severity"] == "note"
    assert checks["schema.extension.vector"]["status"] == "pass"
    run_dir = pytester.path / "reports" / report["run_id"]
    for name in ("signoff.json", "signoff.html"):
        assert SECRET not in (run_dir / name).read_text()
    assert leftovers(pytester.path) == []
