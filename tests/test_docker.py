"""--provider=docker for real: a daemon (started here as root when none runs), the project's
own images (built once, cached by the daemon), containers on the host network. The rehearsal
ends GO with every check family the embedded one owes; process faults strike containers; a
container the user already runs is verified end to end; nothing is left after a run, a failed
run, a failed start or a signal."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container

import dockerd
from helpers import make_settings
from pgcutover.checks import registry
from pgcutover.config import Settings, resolve_environment
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import seed
from pgcutover.db import Endpoint
from pgcutover.environment import _remember_server
from pgcutover.errors import ConfigError, ServerStartError
from pgcutover.providers import images, start_server
from pgcutover.providers.base import local_superuser, wait_until_accepting
from pgcutover.providers.daemon import (
    LABEL_PID,
    LABEL_SERVER,
    docker_client,
    owner_labels,
    remove,
    remove_stale,
)
from pgcutover.providers.embedded import free_port
from test_rehearsal_e2e import output, run_suites, signoff, start_suites

pytestmark = pytest.mark.slow

SOURCE_IMAGE = images.LOCAL_IMAGES["pg16"]
TARGET_IMAGE = images.LOCAL_IMAGES["pg18"]
DOCKER = ("--provider=docker", f"--source-image={SOURCE_IMAGE}", f"--target-image={TARGET_IMAGE}")
ROWS = "200"


def ours(client: docker.DockerClient) -> list[str]:
    """Containers pgcutover started that still exist (running or not)."""
    return [c.name for c in client.containers.list(all=True, filters={"label": LABEL_SERVER})]


@pytest.fixture(scope="module")
def client(request: pytest.FixtureRequest) -> Iterator[docker.DockerClient]:
    """The daemon with the project's images built (a later run finds them cached); how long
    starting the daemon and building took is printed."""
    with dockerd.daemon() as startup:
        client = docker_client()
        remove_stale(client)  # what a killed earlier run may have left
        timings = ["daemon running" if startup is None else f"daemon started in {startup:.1f} s"]
        for flavor, tag in images.LOCAL_IMAGES.items():
            began = time.monotonic()
            what = "built" if images.ensure(client, flavor) else "cached"
            timings.append(f"{tag} {what} in {time.monotonic() - began:.1f} s")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\ndocker: {'; '.join(timings)}")
        yield client
        client.close()


@pytest.fixture(autouse=True)
def nothing_left(client: docker.DockerClient) -> Iterator[None]:
    """After every test: no container of pgcutover's, no new network, no new volume."""
    networks = {network.name for network in client.networks.list()}
    volumes = {volume.name for volume in client.volumes.list()}
    yield
    assert ours(client) == []
    assert {network.name for network in client.networks.list()} == networks
    assert {volume.name for volume in client.volumes.list()} == volumes


def docker_settings(tmp_path: Path, **overrides: object) -> Settings:
    values = {"provider": "docker", "source_image": SOURCE_IMAGE, "target_image": TARGET_IMAGE}
    return make_settings(tmp_path, **{**values, **overrides})


def run_folders(folder: Path) -> list[Path]:
    return list(folder.rglob("pgcutover-run-*"))


def test_the_rehearsal_in_containers_is_go_with_every_check_family(pytester):
    """The design card's command as it is: the default images, or where no registry can be
    reached (CI, our machines) the project's own ones standing in for them."""
    result = run_suites(pytester, f"--rows={ROWS}", "--provider=docker")
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["completeness"]["required"] == list(registry.NAMES), "what embedded owes too"
    assert report["completeness"]["missing"] == []
    assert report["migration"]["performed"] and report["migration"]["ok"]
    label = report["source"]["label"]
    assert f"container {SOURCE_IMAGE}" in label or "container pgvector/pgvector:pg16" in label
    assert report["source"]["server_version"].startswith("16.")
    assert report["source"]["extensions"]["vector"].startswith("0.6")
    assert report["target"]["server_version"].startswith("18.")
    assert report["target"]["extensions"]["vector"].startswith("0.8")
    assert "Traceback" not in text
    assert run_folders(pytester.path) == []


def test_a_failed_run_removes_its_containers_and_names_the_image(pytester):
    missing = "pgcutover/no-such-image:1"
    result = run_suites(pytester, f"--rows={ROWS}", *DOCKER[:2], f"--target-image={missing}")
    text = output(result)
    assert result.ret == 1, text
    report = signoff(pytester)
    assert report["verdict"] == "NO-GO"
    provision = next(c for c in report["checks"] if c["id"] == "environment.provision")
    assert f"cannot pull the image {missing}" in provision["message"]
    assert TARGET_IMAGE in provision["remedy"]
    assert "Traceback" not in text
    assert run_folders(pytester.path) == []


def test_sigterm_leaves_no_container_and_no_run_folder(client, tmp_path):
    tmp_path.chmod(0o755)
    process = start_suites(tmp_path, f"--rows={ROWS}", *DOCKER)
    try:
        deadline = time.monotonic() + 120
        while not ours(client):
            assert process.poll() is None, "the run ended before its containers started"
            assert time.monotonic() < deadline, "no container started in time"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) != 0
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 15
    while ours(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ours(client) == []
    assert run_folders(tmp_path) == []


def test_another_process_removes_a_container_from_the_runs_record(client, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    server = start_server(docker_settings(tmp_path), "source", workdir / "source", "record")
    try:
        _remember_server(workdir, server)
        assert server.endpoint.password not in json.dumps(server.state())
        stopper = "from pathlib import Path; import sys; from pgcutover.environment import "
        stopper += "stop_servers; stop_servers(Path(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", stopper, str(workdir)], check=True, timeout=60)
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(str(server.state()["container"]))
    finally:
        server.stop()


def test_containers_of_a_gone_process_are_removed_and_live_ones_kept(client):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = client.containers.create(
        SOURCE_IMAGE, labels={**owner_labels(), LABEL_PID: str(gone.pid), LABEL_SERVER: "stale"}
    )
    live = client.containers.create(SOURCE_IMAGE, labels={**owner_labels(), LABEL_SERVER: "live"})
    try:
        removed = remove_stale(client)
        assert stale.name in removed
        assert live.name not in removed
        live.reload()
    finally:
        remove(live)
        remove(stale)


def test_a_container_that_cannot_start_reports_its_log_and_is_removed(client, tmp_path):
    base = client.containers.create(SOURCE_IMAGE)
    as_root = base.commit(repository="pgcutover-test/as-root", tag="1", changes=["USER root"])
    remove(base)
    settings = docker_settings(tmp_path, source_image="pgcutover-test/as-root:1")
    try:
        with pytest.raises(ServerStartError) as raised:
            start_server(settings, "source", tmp_path / "source", "as root")
    finally:
        client.images.remove(as_root.id)
    assert "did not start" in raised.value.problem
    assert "cannot be run as root" in raised.value.problem, raised.value.problem


def test_process_faults_strike_the_containers(pytester, client):
    began = int(time.time())
    scenarios = "server_kill_restart or server_pause_resume or server_disk_full"
    result = run_suites(pytester, "-m", "chaos", "-k", scenarios, *DOCKER)
    text = output(result)
    assert result.ret == 0, text
    checks = {check["id"]: check for check in signoff(pytester)["checks"]}
    for name in ("server_kill_restart", "server_pause_resume"):
        assert checks[f"chaos.{name}"]["status"] == "pass", checks[f"chaos.{name}"]
    events = client.events(
        since=began,
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "label": LABEL_SERVER},
    )
    assert {"kill", "start", "pause", "unpause"} <= {event["Action"] for event in events}
    disk = checks["chaos.server_disk_full"]
    assert disk["status"] == "skip"
    assert "not on this host" in disk["message"]
    assert run_folders(pytester.path) == []


@pytest.fixture(scope="module")
def user_container(
    client: docker.DockerClient, settings: Settings
) -> Iterator[tuple[Container, Endpoint]]:
    """A container the user already runs, as the guide's development database does: not
    started by pgcutover (no labels), host network, its app database seeded."""
    port, password = free_port(), secrets.token_urlsafe(16)
    container = client.containers.run(
        SOURCE_IMAGE,
        ["postgres", "-p", str(port), "-c", "listen_addresses=127.0.0.1"],
        name=f"pgcutover-test-dev-{os.getpid()}",
        environment={"POSTGRES_PASSWORD": password},
        network="host",
        detach=True,
    )
    try:
        server = local_superuser("dev", port, password)
        wait_until_accepting(server, timeout=60)
        embedder = Embedder(settings.embedding_model, settings.cache_dir)
        try:
            seed(server, "rag_app", int(ROWS), embedder)
        finally:
            embedder.close()
        yield container, server.with_dbname("rag_app")
    finally:
        remove(container)


def test_a_named_container_resolves_through_the_docker_api(client, user_container, tmp_path):
    container, app = user_container
    stopped = client.containers.create(SOURCE_IMAGE)
    (tmp_path / ".env").write_text(
        "RELATIONAL_DB_HOST=localhost\nRELATIONAL_DB_PORT=1\nRELATIONAL_DB_DATABASE=rag_app\n"
        f"RELATIONAL_DB_USERNAME=postgres\nRELATIONAL_DB_PASSWORD={app.password}\n"
        "VECTOR_DB_DIMENSIONS=384\n"
    )
    targets = tmp_path / "targets.toml"
    targets.write_text(
        f"[targets.dev]\ncontainer = '{container.name}'\ndatabase = 'rag_app'\n"
        f"[targets.app]\ncontainer = '{container.name}'\nenv_file = '.env'\n"
        "[targets.gone]\ncontainer = 'pgcutover-no-such-container'\n"
        f"[targets.stopped]\ncontainer = '{stopped.name}'\n"
    )
    try:
        dev = resolve_environment("dev", targets, environ={}).endpoint
        assert (dev.host, dev.port, dev.dbname, dev.user) == (
            "127.0.0.1",
            app.port,
            "rag_app",
            "postgres",
        )
        assert dev.password == app.password, "the password comes from the container's environment"
        from_env = resolve_environment("app", targets, environ={})
        assert (from_env.endpoint.host, from_env.endpoint.port) == ("127.0.0.1", app.port)
        assert from_env.vector_dimensions == 384
        with pytest.raises(ConfigError, match="no container named 'pgcutover-no-such-container'"):
            resolve_environment("gone", targets, environ={})
        with pytest.raises(ConfigError, match=f"docker start {stopped.name}"):
            resolve_environment("stopped", targets, environ={})
    finally:
        remove(stopped)


def test_a_container_the_user_runs_is_verified_end_to_end(pytester, user_container):
    container, app = user_container
    (pytester.path / "targets.toml").write_text(
        f"[targets.dev]\ncontainer = '{container.name}'\ndatabase = 'rag_app'\n"
    )
    result = run_suites(pytester, "--source=dev", *DOCKER)
    text = output(result)
    assert result.ret == 0, text
    report = signoff(pytester)
    assert report["verdict"] == "GO"
    assert report["source"]["label"] == "dev"
    assert report["source"]["server_version"].startswith("16.")
    assert f"container {TARGET_IMAGE}" in report["target"]["label"]
    assert report["migration"]["performed"] and report["seed"] is None
    assert app.password not in text
    assert app.password not in json.dumps(report)
    container.reload()
    assert container.status == "running", "pgcutover never stops a container it did not start"
