"""`pytest suites/` run as a user runs it: a GO rehearsal, xdist sharing, a NO-GO on a broken
named target, every kind of bad input, clean-up after Ctrl-C, and the logical cutover (GO with
the writer, lag and rollback; Ctrl-C while replicating leaves no slot on a named source)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from helpers import REPO, clone_database, drop_database, execute
from pgcutover.db import connect, connection

pytestmark = pytest.mark.slow

SUITES = str(REPO / "suites")
#: The embedding cache's home as this session found it: pytester moves HOME, and a run that
#: missed the cache would embed every chunk again.
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
E2E_ROWS = "400"


def run_suites(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None):
    """Run the suites in a subprocess with reports and work folders under the test's folder."""
    work = pytester.path / "tmp"
    work.mkdir(exist_ok=True)
    shared = {"TMPDIR": str(work), "XDG_CACHE_HOME": str(CACHE_HOME)}
    for key, value in {**shared, **(env or {})}.items():
        pytester._monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess(
        SUITES,
        f"--reports-dir={pytester.path / 'reports'}",
        f"--targets-file={pytester.path / 'targets.toml'}",
        "-p",
        "no:cacheprovider",
        "-m",
        "not chaos",
        *args,
        timeout=900,
    )


def signoff(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "reports" / "latest" / "signoff.json").read_text())


def output(result) -> str:
    return "\n".join(result.outlines + result.errlines)


def leftovers(folder: Path) -> list[str]:
    """Server processes and work folders of runs under `folder` that are still there."""
    found = [str(path) for path in folder.rglob("pgcutover-run-*")]
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "postgres" and str(folder) in cmdline:
            found.append(f"pid {process.pid}: {cmdline}")
    return found


def write_targets(pytester: pytest.Pytester, text: str) -> None:
    (pytester.path / "targets.toml").write_text(text)


def external_entry(name: str, endpoint, password_env: str) -> str:
    return (
        f"[targets.{name}]\nhost = '{endpoint.host}'\nport = {endpoint.port}\n"
        f"database = '{endpoint.dbname}'\nuser = '{endpoint.user}'\n"
        f"password_env = '{password_env}'\nsslmode = 'disable'\n"
    )


def test_default_rehearsal_is_go_and_writes_the_three_reports(pytester):
    result = run_suites(pytester, f"--rows={E2E_ROWS}")
    text = output(result)
    assert result.ret == 0, text
    assert "verdict: GO" in text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["migration"]["performed"] and report["migration"]["ok"]
    assert report["source"]["server_version"].startswith("16.")
    assert report["target"]["server_version"].startswith("18.")
    assert report["target"]["extensions"]["vector"].startswith("0.8")
    ids = {check["id"] for check in report["checks"]}
    assert {
        "migration.completed",
        "row_counts.public.vector_embeddings",
        "vector_index.public.idx_embedding_hnsw",
    } <= ids
    run_dir = pytester.path / "reports" / report["run_id"]
    for name in ("signoff.json", "signoff.html", "junit.xml", "pytest-report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    assert "Traceback" not in text
    assert leftovers(pytester.path) == []
    assert report["completeness"]["missing"] == [] and report["mode"].startswith("rehearsal")
    assert "What pgcutover found in the source" in (run_dir / "signoff.html").read_text()
    assert report["inventory"]["vectors"][0]["app"] is True
    for phase in ("seeding public.vector_embeddings", "dump", "restore data", "content parity"):
        assert f"\n{phase}: " in text, f"no progress line for {phase}"
    window = report["migration"]["window"]
    assert window["basis"] == "the source itself" and window["projected_seconds"] > 0
    assert "cutover window for the source itself: about" in text
    assert "id='cutover-window'" in (run_dir / "signoff.html").read_text()

    filtered = run_suites(pytester, f"--rows={E2E_ROWS}", "-k", "connectivity")
    assert filtered.ret != 0, output(filtered)
    assert "Not a sign-off" in output(filtered)
    assert signoff(pytester)["run_id"] == report["run_id"], "a filtered run replaced the GO"
    runs = sorted((pytester.path / "reports").glob("*/signoff.json"))
    partial = [json.loads(path.read_text()) for path in runs]
    partial = [r for r in partial if r["run_id"] != report["run_id"]]
    assert [r["verdict"] for r in partial] == ["NO-GO"]
    assert "content" in partial[0]["completeness"]["missing"]
    assert leftovers(pytester.path) == []


def test_xdist_workers_share_one_environment_and_one_report(pytester):
    result = run_suites(pytester, f"--rows={E2E_ROWS}", "-n", "2", "--strategy=plain")
    assert result.ret == 0, output(result)
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["migration"]["strategy"] == "plain"
    phases = [phase["name"] for phase in report["migration"]["phases"]]
    assert phases.count("data") == 1, "the migration must run once, not once per worker"
    ids = {check["id"] for check in report["checks"]}
    assert {
        "connectivity.source",
        "row_counts.public.users",
        "vector_dimensions.public.vector_embeddings.embedding",
    } <= ids
    assert leftovers(pytester.path) == []


def test_named_broken_target_is_no_go_naming_the_check(pytester, seeded_source, target_copy):
    first_document = "SELECT id FROM documents ORDER BY id LIMIT 1"
    execute(target_copy, f"DELETE FROM documents WHERE id = ({first_document})")
    write_targets(
        pytester,
        external_entry("dev", seeded_source, "DEV_PW")
        + external_entry("staging", target_copy, "STAGING_PW"),
    )
    result = run_suites(
        pytester,
        "--source=dev",
        "--target=staging",
        env={"DEV_PW": seeded_source.password, "STAGING_PW": target_copy.password},
    )
    text = output(result)
    assert result.ret == 1, text
    report = signoff(pytester)
    assert report["verdict"] == "NO-GO"
    failed = {c["id"] for c in report["checks"] if c["status"] == "fail"}
    assert "row_counts.public.documents" in failed
    assert report["migration"]["performed"] is False
    assert seeded_source.password not in text
    assert (
        seeded_source.password
        not in (pytester.path / "reports").joinpath(report["run_id"], "signoff.html").read_text()
    )


@pytest.mark.parametrize(
    ("targets", "args", "expected"),
    [
        ("", ["--target=nope"], "unknown environment 'nope'"),
        ("[targets.x\nhost=", ["--target=x"], "is not valid TOML"),
        ("[targets.x]\nport = 5432\n", ["--target=x"], "missing host, database, user"),
        (
            "[targets.a]\nhost='db'\ndatabase='app'\nuser='u'\n",
            ["--source=a", "--target=a"],
            "both name 'a'",
        ),
        (
            "[targets.a]\nhost='db'\ndatabase='app'\nuser='u'\n"
            "[targets.b]\nhost='db2'\ndatabase='app'\nuser='u'\nsource='a'\n",
            ["--target=b", "--migrate"],
            "add --allow-destructive",
        ),
        (
            "[targets.b]\ndsn='postgresql://u:secret@db/app'\n",
            ["--target=b"],
            "gives a secret (password)",
        ),
        (
            "[targets.b]\nhost='db'\ndatabase='app'\nuser='u'\npassword_env='PGCUTOVER_UNSET_PW'\n",
            ["--target=b"],
            "PGCUTOVER_UNSET_PW is not set",
        ),
    ],
)
def test_bad_configuration_is_one_clear_message(pytester, targets, args, expected):
    write_targets(pytester, targets)
    result = run_suites(pytester, *args)
    text = output(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert expected in text
    assert "fix:" in text
    assert "Traceback" not in text


def test_wrong_password_is_no_go_without_leaking_it(pytester, seeded_source, target_server):
    write_targets(
        pytester,
        external_entry("dev", seeded_source, "DEV_PW")
        + external_entry("prod", target_server.endpoint, "PROD_PW"),
    )
    wrong = "definitely-not-the-password-42"
    result = run_suites(
        pytester,
        "--source=dev",
        "--target=prod",
        env={"DEV_PW": seeded_source.password, "PROD_PW": wrong},
    )
    text = output(result)
    assert result.ret == 3, text
    assert "authentication failed for prod" in text
    assert "fix:" in text and "Traceback" not in text
    assert wrong not in text
    report = signoff(pytester)
    assert report["verdict"] == "NO-GO"
    assert wrong not in json.dumps(report)


def test_unreachable_host_is_no_go(pytester, seeded_source):
    from pgcutover.providers.embedded import free_port

    write_targets(
        pytester,
        external_entry("dev", seeded_source, "DEV_PW")
        + f"[targets.gone]\nhost='127.0.0.1'\nport={free_port()}\ndatabase='x'\nuser='u'\n",
    )
    result = run_suites(
        pytester, "--source=dev", "--target=gone", env={"DEV_PW": seeded_source.password}
    )
    text = output(result)
    assert result.ret == 3, text
    assert "cannot reach gone" in text and "pg_isready" in text
    assert "Traceback" not in text


def test_target_without_pgvector_is_no_go_with_the_guides_remedy(
    pytester, seeded_source, target_server, tmp_path
):
    empty = tmp_path / "no-extensions"
    empty.mkdir()
    empty.chmod(0o755)
    tmp_path.chmod(0o755)
    name = f"no_vector_{os.getpid()}"
    execute(target_server.endpoint, f"CREATE DATABASE {name}")
    try:
        execute(
            target_server.endpoint, f"ALTER DATABASE {name} SET extension_control_path = '{empty}'"
        )
        write_targets(
            pytester,
            external_entry("dev", seeded_source, "DEV_PW")
            + external_entry("bare", target_server.endpoint.with_dbname(name), "BARE_PW"),
        )
        result = run_suites(
            pytester,
            "--source=dev",
            "--target=bare",
            "--migrate",
            "--allow-destructive",
            env={"DEV_PW": seeded_source.password, "BARE_PW": target_server.endpoint.password},
        )
    finally:
        execute(target_server.endpoint, f"DROP DATABASE {name} WITH (FORCE)")
    text = output(result)
    assert result.ret == 1, text
    report = signoff(pytester)
    migration = next(c for c in report["checks"] if c["id"] == "migration.completed")
    assert migration["status"] == "fail"
    assert "pgvector extension not available" in migration["message"]
    assert "install pgvector" in migration["remedy"]


def start_suites(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`pytest suites/` as a user starts it, in the background, reports under tmp_path."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            SUITES,
            "--rows",
            E2E_ROWS,
            "-p",
            "no:cacheprovider",
            f"--reports-dir={tmp_path / 'reports'}",
            "-m",
            "not chaos",
            *args,
        ],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_ctrl_c_stops_the_servers_and_removes_the_work_folder(tmp_path):
    tmp_path.chmod(0o755)
    process = start_suites(tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not [line for line in leftovers(tmp_path) if line.startswith("pid")]:
            assert process.poll() is None, "the run ended before its servers started"
            assert time.monotonic() < deadline, "servers did not start in time"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 15
    while leftovers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(tmp_path) == []
    assert process.returncode != 0


@pytest.mark.parametrize("ending", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_the_checks_is_no_go_and_leaves_nothing(tmp_path, ending):
    tmp_path.chmod(0o755)
    reports = tmp_path / "reports"
    process = start_suites(tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob("pgcutover-run-*/results/*.jsonl")):
            assert process.poll() is None, "the run ended before its checks started"
            assert time.monotonic() < deadline, "the checks did not start in time"
            time.sleep(0.2)
        process.send_signal(ending)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    deadline = time.monotonic() + 15
    while leftovers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(tmp_path) == []
    written = [json.loads(path.read_text()) for path in reports.glob("*/signoff.json")]
    assert written and all(r["verdict"] == "NO-GO" for r in written)
    assert all(r["completeness"]["interrupted"] for r in written)


def test_a_dead_runs_servers_and_folder_are_cleaned_by_the_next_run(tmp_path):
    from pgcutover import runfolder
    from pgcutover.providers.embedded import start_embedded

    tmp_path.chmod(0o755)
    stale = tmp_path / "pgcutover-run-dead"
    stale.mkdir()
    server = start_embedded("pg18", stale / "target", "a dead run's target")
    try:
        finished = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        (stale / runfolder.OWNER).write_text(
            json.dumps({"pid": int(finished.stdout), "started": 0.0, "host": socket.gethostname()})
        )
        (stale / "servers.json").write_text(
            json.dumps([{**server.state(), "password": server.endpoint.password}])
        )
        collected = subprocess.run(
            [sys.executable, "-m", "pytest", SUITES, "--co", "-q", "-p", "no:cacheprovider"],
            cwd=tmp_path,
            env={**os.environ, "TMPDIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "left by a run that died" in collected.stdout + collected.stderr
        assert not stale.exists()
        assert server.postmaster() is None
    finally:
        server.stop()


def test_a_target_under_another_name_is_refused_before_writing(pytester, seeded_source):
    alias = replace(seeded_source, host="LOCALHOST")
    write_targets(
        pytester,
        external_entry("dev", seeded_source, "PW") + external_entry("prod", alias, "PW"),
    )
    before = count_rows(seeded_source)
    result = run_suites(
        pytester,
        "--source=dev",
        "--target=prod",
        "--migrate",
        "--allow-destructive",
        env={"PW": seeded_source.password},
    )
    text = output(result)
    assert result.ret == 3, text
    assert "under another name" in text
    assert count_rows(seeded_source) == before
    assert signoff(pytester)["verdict"] == "NO-GO"


def test_target_alone_verifies_against_its_configured_source(pytester, seeded_source, target_copy):
    write_targets(
        pytester,
        external_entry("dev", seeded_source, "DEV_PW")
        + external_entry("staging", target_copy, "STAGING_PW")
        + 'source = "dev"\n',
    )
    result = run_suites(
        pytester,
        "--target=staging",
        env={"DEV_PW": seeded_source.password, "STAGING_PW": target_copy.password},
    )
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["mode"] == "staging verified against its source dev"
    assert report["migration"]["performed"] is False
    smoke = next(c for c in report["checks"] if c["id"] == "search.smoke.app")
    assert smoke["status"] == "skip" and "--test-writes" in smoke["message"]


def test_target_alone_without_a_source_rehearses_in_a_scratch_database(pytester, target_server):
    write_targets(pytester, external_entry("staging", target_server.endpoint, "STAGING_PW"))
    result = run_suites(
        pytester,
        f"--rows={E2E_ROWS}",
        "--target=staging",
        env={"STAGING_PW": target_server.endpoint.password},
    )
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["mode"].startswith("scratch rehearsal on staging's server")
    assert report["migration"]["performed"] and report["migration"]["ok"]
    with connection(target_server.endpoint, role="admin") as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pgcutover_scratch_%'"
        ).fetchall()
    assert left == []
    assert leftovers(pytester.path) == []


def test_a_scratch_rehearsal_without_createdb_fails_clearly(pytester, target_server):
    role, password = f"no_createdb_{os.getpid()}", "scratch-test-password"
    execute(target_server.endpoint, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        write_targets(
            pytester,
            external_entry("staging", replace(target_server.endpoint, user=role), "PW"),
        )
        result = run_suites(pytester, "--target=staging", env={"PW": password})
    finally:
        execute(target_server.endpoint, f"DROP ROLE {role}")
    text = output(result)
    assert result.ret == 3, text
    assert "no CREATEDB" in text and f"ALTER ROLE {role} CREATEDB" in text
    assert "Traceback" not in text


def count_rows(endpoint) -> int:
    with connection(endpoint, role="source") as conn:
        return int(conn.execute("SELECT count(*) FROM vector_embeddings").fetchone()[0])


def guide_env(endpoint, password: str, ssl: bool) -> str:
    """The app's .env in the migration guide's format, pointing at `endpoint`."""
    return (
        f"RELATIONAL_DB_HOST={endpoint.host}\nRELATIONAL_DB_PORT={endpoint.port}\n"
        f"RELATIONAL_DB_DATABASE={endpoint.dbname}\nRELATIONAL_DB_USERNAME={endpoint.user}\n"
        f"RELATIONAL_DB_PASSWORD={password}\nRELATIONAL_DB_SSL={str(ssl).lower()}\n"
        "VECTOR_DB_DIMENSIONS=384\nEMBEDDINGS_XENOVA_MODEL=Xenova/all-MiniLM-L6-v2\n"
    )


def test_targets_from_the_apps_env_files_verify_to_go(pytester, seeded_source, target_copy):
    (pytester.path / ".env.dev").write_text(guide_env(seeded_source, seeded_source.password, False))
    (pytester.path / ".env.staging").write_text(guide_env(target_copy, target_copy.password, False))
    write_targets(
        pytester,
        "[targets.dev]\nenv_file = '.env.dev'\n[targets.staging]\nenv_file = '.env.staging'\n",
    )
    result = run_suites(pytester, "--source=dev", "--target=staging")
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["migration"]["performed"] is False, "named targets are verified, not migrated"
    assert report["target"]["label"] == "staging"
    assert target_copy.password not in text


def test_ssl_true_requires_tls(pytester, seeded_source, target_copy):
    (pytester.path / ".env.dev").write_text(guide_env(seeded_source, seeded_source.password, False))
    (pytester.path / ".env.prod").write_text(guide_env(target_copy, target_copy.password, True))
    write_targets(
        pytester, "[targets.dev]\nenv_file = '.env.dev'\n[targets.prod]\nenv_file = '.env.prod'\n"
    )
    result = run_suites(pytester, "--source=dev", "--target=prod")
    text = output(result)
    assert result.ret == 3, text
    assert "TLS negotiation failed for prod" in text
    assert "RELATIONAL_DB_SSL" in text and "Traceback" not in text


def test_a_named_source_migrates_into_a_throwaway_target(pytester, seeded_source):
    # The throwaway target is managed-like: the source's superuser `postgres` and its
    # BYPASSRLS service_role lose those attributes there, findings the owner acknowledges.
    lost = ["platform.role.postgres", "platform.role.service_role"]
    write_targets(
        pytester,
        external_entry("dev", seeded_source, "DEV_PW") + f"[platform]\nacknowledge = {lost!r}\n",
    )
    result = run_suites(pytester, "--source=dev", env={"DEV_PW": seeded_source.password})
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["migration"]["performed"] and report["migration"]["ok"]
    assert report["source"]["label"] == "dev"
    assert report["target"]["server_version"].startswith("18.")
    assert report["seed"] is None, "a named source is never seeded"
    checks = {check["id"]: check for check in report["checks"]}
    assert all(checks[finding]["details"]["severity"] == "acknowledged" for finding in lost)
    assert leftovers(pytester.path) == []


def test_logical_rehearsal_is_go_with_the_writer_lag_and_rollback(pytester):
    result = run_suites(pytester, f"--rows={E2E_ROWS}", "--strategy=logical")
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    evidence = report["migration"]["logical"]
    assert evidence["writes"]["count"] > 0 and evidence["rollback"]["proved"]
    statuses = {c["id"]: c["status"] for c in report["checks"] if c["id"].startswith("cutover.")}
    assert statuses == {
        "cutover.replication": "pass",
        "cutover.switchover": "pass",
        "cutover.downtime": "pass",
        "cutover.rollback": "pass",
        "cutover.source_left_clean": "pass",
    }
    drift = next(c for c in report["checks"] if c["id"] == "drift.source")
    assert "zero drift" in drift["message"]
    page = (pytester.path / "reports" / "latest" / "signoff.html").read_text()
    assert "rollback: proved by" in page and "write pause" in page
    assert leftovers(pytester.path) == []


@pytest.mark.parametrize("ending", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_replicating_leaves_no_slot_on_a_named_source(
    ending, tmp_path, source_server, seeded_source
):
    tmp_path.chmod(0o755)
    name = f"signalled_source_{os.getpid()}_{ending.name.lower()}"
    source = clone_database(source_server, seeded_source.dbname, name)
    (tmp_path / "targets.toml").write_text(
        external_entry("dev", source, "DEV_PW") + "\n[logical]\nstream_seconds = 600\n"
    )
    process = start_suites(
        tmp_path,
        "--source=dev",
        "--strategy=logical",
        "--allow-source-writes=publication,slot",
        f"--targets-file={tmp_path / 'targets.toml'}",
        env={"DEV_PW": source.password or ""},
    )
    slots = "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            with connect(source, role="admin") as conn:
                if conn.execute(slots).fetchone()[0]:
                    break
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it replicated"
        time.sleep(2.0)  # into the copy and the streaming
        process.send_signal(ending)
        process.wait(timeout=120)
        with connect(source, role="admin") as conn:
            assert conn.execute(slots).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM pg_publication").fetchone()[0] == 0
        assert leftovers(tmp_path) == []
    finally:
        if process.poll() is None:
            process.kill()
        drop_database(source_server, name)
