"""The Docker daemon as pgcutover uses it: one way to reach it, the labels that say which
process started a container, and removal (one container, or every stale one)."""

from __future__ import annotations

import os
import socket

import docker
import docker.errors
import psutil
from docker.models.containers import Container
from testcontainers.core.docker_client import DockerClient

from pgcutover.errors import PgcutoverError, ServerStartError

#: Labels on every container pgcutover starts: who started it, so a later run can tell
#: whether it is stale.
LABEL_SERVER = "pgcutover.server"
LABEL_HOST = "pgcutover.owner-host"
LABEL_PID = "pgcutover.owner-pid"
LABEL_STARTED = "pgcutover.owner-started"
#: Container states in which the postmaster exists.
ALIVE = ("running", "paused", "restarting")


def docker_client(error: type[PgcutoverError] = ServerStartError) -> docker.DockerClient:
    """The Docker API where testcontainers finds it (DOCKER_HOST, ~/.testcontainers.properties,
    the local socket), checked with a ping; `error` is raised when no daemon answers."""
    try:
        client = DockerClient().client
        client.ping()
    except docker.errors.DockerException as problem:
        raise error(
            f"no Docker daemon answers ({os.environ.get('DOCKER_HOST', 'the local socket')}): "
            f"{problem}",
            "start Docker (as root without a bridge: dockerd --iptables=false --ip6tables=false "
            "--bridge=none), or use --provider=embedded",
        ) from None
    return client


def owner_labels() -> dict[str, str]:
    me = psutil.Process()
    return {
        LABEL_HOST: socket.gethostname(),
        LABEL_PID: str(me.pid),
        LABEL_STARTED: f"{me.create_time():.2f}",
    }


def _owner_alive(labels: dict[str, str]) -> bool:
    """True unless the container's starting process is gone from this machine (a process on
    another machine sharing the daemon cannot be judged, so it counts as alive)."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return True
    try:
        process = psutil.Process(int(labels.get(LABEL_PID, "0")))
    except (psutil.NoSuchProcess, ValueError):
        return False
    return f"{process.create_time():.2f}" == labels.get(LABEL_STARTED)


def remove(container: Container) -> None:
    """Remove a container with its anonymous volumes (the official image declares one)."""
    try:
        if container.status == "paused":
            container.unpause()
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        return


def remove_stale(client: docker.DockerClient) -> list[str]:
    """Remove pgcutover's containers whose starting process is gone; their names."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL_PID}):
        if not _owner_alive(container.labels):
            remove(container)
            removed.append(container.name)
    return removed


def remove_container(container_id: str) -> None:
    """Remove one container by id, from any process (servers.json, a signal handler)."""
    try:
        container = docker_client().containers.get(container_id)
    except docker.errors.NotFound:
        return
    remove(container)


def log_tail(container: Container, lines: int = 20) -> str:
    try:
        return container.logs(tail=lines).decode(errors="replace").strip()
    except docker.errors.APIError:
        return "(no log: the container is gone)"
