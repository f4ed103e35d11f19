"""Docker provider: the source and target PostgreSQL as containers, started by testcontainers.

Networking: by default a container shares the host's network (our machines and CI have no
Docker bridge) and its server listens on 127.0.0.1 on a free port of its own, so every byte of
the rehearsal stays on 127.0.0.1 and the fault proxy sits on the path exactly as with embedded
servers. `--docker-network=bridge` publishes the server's 5432 on 127.0.0.1:<free port>
instead, for Docker installs that have a bridge.

Readiness, the testcontainers way: the server's "ready to accept connections" log line, then a
real login with the generated superuser password (the official image logs that line for its
temporary init server too). A start that fails carries the container's log.

Clean-up: every container carries labels naming the process that started it. pgcutover removes
its containers itself: `stop()`, the run's servers.json through `stop_from_state` (the owning
process at the end or on a signal), and at every start any container whose starting process is
gone (a run killed with SIGKILL). testcontainers' own reaper (Ryuk) is off: its image comes from
a registry, which our machines cannot reach.

pg_dump and pg_restore run on this machine, never inside a container: the newest major
version's client tools (migrate/tools.py) dump any older server and read their own archives,
the same tools serve every provider (so a run's evidence does not depend on where the servers
live), network faults need the tools' traffic to cross the fault proxy on this machine, and a
user's image (Supabase's, a slim one) may carry other versions or no client tools at all.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace

import docker
import docker.errors
from docker.models.containers import Container
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import CompositeWaitStrategy, LogMessageWaitStrategy
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from pgcutover.db import Endpoint
from pgcutover.errors import ConfigError, ServerStartError
from pgcutover.providers import images
from pgcutover.providers.base import (
    KILL,
    PAUSE,
    RESTART,
    ServerSpec,
    local_superuser,
    wait_until_accepting,
)
from pgcutover.providers.daemon import (
    ALIVE,
    LABEL_SERVER,
    docker_client,
    log_tail,
    owner_labels,
    remove,
    remove_container,
    remove_stale,
)
from pgcutover.providers.embedded import SERVER_SETTINGS, free_port

HOST_NETWORK = "host"
BRIDGE_NETWORK = "bridge"
#: --docker-network: the host's network (a free 127.0.0.1 port per server), or the bridge.
NETWORKS = (HOST_NETWORK, BRIDGE_NETWORK)
CONTAINER_PORT = 5432
READY_LINE = "database system is ready to accept connections"
START_TIMEOUT = 120.0
POLL_S = 0.1


@dataclass
class DockerServer:
    """One PostgreSQL server in a container, reached on 127.0.0.1:port."""

    label: str
    image: str
    container_id: str
    port: int
    password: str = field(repr=False)
    network: str = HOST_NETWORK
    capabilities: frozenset[str] = frozenset({KILL, PAUSE, RESTART})

    @property
    def endpoint(self) -> Endpoint:
        """Superuser endpoint over TCP with password authentication."""
        return local_superuser(self.label, self.port, self.password)

    def container(self) -> Container:
        """The container, as the daemon sees it now."""
        return docker_client().containers.get(self.container_id)

    def running(self) -> bool:
        """True while the postmaster exists (a paused container included)."""
        try:
            return self.container().status in ALIVE
        except docker.errors.NotFound:
            return False

    def stop(self) -> None:
        """Remove the container and its volumes (nothing of it is kept)."""
        remove_container(self.container_id)

    def kill(self) -> None:
        """`docker kill`: SIGKILL to the postmaster (PID 1); its children die with it."""
        container = self.container()
        if container.status in ALIVE:
            container.kill()

    def pause(self) -> None:
        """`docker pause`: the cgroup freezer stops every server process."""
        self.container().pause()

    def resume(self) -> None:
        """`docker unpause`."""
        container = self.container()
        if container.status == "paused":
            container.unpause()

    def restart(self, timeout: float = 60.0) -> None:
        """Start the container again (same command, same port, same data: crash recovery
        runs) and wait for a real login; the log already holds the ready line of the first
        start, so only the login decides here."""
        container = self.container()
        if container.status in ALIVE:
            container.restart()
        else:
            container.start()
        wait_until_accepting(self.endpoint, timeout, alive=self.running)

    def state(self) -> dict[str, object]:
        """What another process needs to reach and remove this server (password excluded)."""
        return {
            "kind": "docker",
            "container": self.container_id,
            "label": self.label,
            "image": self.image,
            "port": self.port,
            "network": self.network,
        }

    @classmethod
    def from_state(cls, state: dict[str, object], password: str) -> DockerServer:
        """Rebuild a handle on a container another process started."""
        return cls(
            label=str(state["label"]),
            image=str(state["image"]),
            container_id=str(state["container"]),
            port=int(str(state["port"])),
            password=password,
            network=str(state["network"]),
        )


@dataclass(frozen=True)
class RunningContainer:
    """A container somebody else runs: where its PostgreSQL answers from this machine, and
    the container's environment (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB)."""

    host: str
    port: int
    environment: dict[str, str] = field(repr=False)


def _server_port(command: list[str], environment: dict[str, str], where: str) -> int:
    """The port the container's postgres listens on: `-p N`, `-c port=N` or `--port=N` in
    its command, else PGPORT, else 5432."""
    found = environment.get("PGPORT", str(CONTAINER_PORT))
    for flag, value in zip(command, [*command[1:], ""], strict=True):
        if flag == "-p":
            found = value
        elif flag == "-c" and value.startswith("port="):
            found = value.removeprefix("port=")
        elif flag.startswith("--port="):
            found = flag.removeprefix("--port=")
    try:
        return int(found)
    except ValueError:
        raise ConfigError(
            f"{where}: cannot tell the container's PostgreSQL port from {found!r}",
            "name the environment by host and port (or a dsn) instead of `container`",
        ) from None


def running_container(name: str, where: str) -> RunningContainer:
    """Look a running container up by name through the Docker API: with host networking its
    server answers on 127.0.0.1, otherwise on the host port Docker publishes for it."""
    client = docker_client(ConfigError)
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        raise ConfigError(
            f"{where}: no container named {name!r}", "fix `container` (`docker ps` lists them)"
        ) from None
    if container.status != "running":
        raise ConfigError(
            f"{where}: the container {name!r} is {container.status}", f"docker start {name}"
        )
    config = container.attrs["Config"]
    environment = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    port = _server_port(list(config.get("Cmd") or []), environment, where)
    if container.attrs["HostConfig"]["NetworkMode"] == HOST_NETWORK:
        return RunningContainer("127.0.0.1", port, environment)
    published = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp")
    if not published:
        raise ConfigError(
            f"{where}: the container {name!r} does not publish PostgreSQL's port {port}/tcp",
            "publish it (docker run -p 127.0.0.1:5432:5432 ...) or run it with --network host",
        )
    host = published[0]["HostIp"]
    return RunningContainer(
        "127.0.0.1" if host in ("", "0.0.0.0", "::") else host,
        int(published[0]["HostPort"]),
        environment,
    )


class AcceptsLogin(WaitStrategy):
    """testcontainers wait strategy: a real login with the superuser password succeeds; gives
    up as soon as the container exits."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        wrapped = container.get_wrapped_container()

        def alive() -> bool:
            wrapped.reload()
            return wrapped.status in ("created", *ALIVE)

        wait_until_accepting(self.endpoint, self._startup_timeout, alive)


def _command(port: int, network: str) -> list[str]:
    """`postgres` with the rehearsal settings the embedded servers get, on `port`."""
    settings = {key: value.strip("'") for key, value in SERVER_SETTINGS.items()}
    settings["listen_addresses"] = "127.0.0.1" if network == HOST_NETWORK else "*"
    command = ["postgres", "-p", str(port if network == HOST_NETWORK else CONTAINER_PORT)]
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    return command


#: The official images the project's own stand in for where no registry can be reached.
STANDS_IN_FOR = "pgvector/pgvector:"


def _ensure_image(client: docker.DockerClient, image: str, flavor: str) -> str:
    """The image to run: the project's own images are built here when missing; others are
    pulled. Where the default pgvector/pgvector image cannot be pulled (no registry), the
    project's image of the same PostgreSQL and pgvector line is built and run instead, and
    the server's label says so; any other image the user named must be pullable."""
    own = images.flavor_of(image)
    if own is not None:
        images.ensure(client, own)
        return image
    try:
        client.images.get(image)
        return image
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except docker.errors.APIError as error:
        if image.startswith(STANDS_IN_FOR):
            images.ensure(client, flavor)
            return images.LOCAL_IMAGES[flavor]
        raise ServerStartError(
            f"cannot pull the image {image}: {error.explanation or error}",
            "without a registry, use the project's own images (built on first use from the "
            f"installed packages): --source-image={images.LOCAL_IMAGES['pg16']} "
            f"--target-image={images.LOCAL_IMAGES['pg18']}",
        ) from None
    return image


def _container(
    spec: ServerSpec, name: str, label: str, port: int, password: str
) -> DockerContainer:
    """The testcontainers description of one server container."""
    container = (
        DockerContainer(spec.image)
        .with_name(name)
        .with_env("POSTGRES_PASSWORD", password)
        .with_command(_command(port, spec.network))
        .with_kwargs(
            network=spec.network,
            shm_size="1g",
            labels={LABEL_SERVER: label, **owner_labels()},
        )
    )
    if spec.network == BRIDGE_NETWORK:
        container.ports[f"{CONTAINER_PORT}/tcp"] = ("127.0.0.1", port)  # type: ignore[assignment]
    endpoint = DockerServer(label, spec.image, "", port, password).endpoint
    ready = CompositeWaitStrategy(LogMessageWaitStrategy(READY_LINE), AcceptsLogin(endpoint))
    ready = ready.with_startup_timeout(int(START_TIMEOUT)).with_poll_interval(POLL_S)
    return container.waiting_for(ready)


def _created(client: docker.DockerClient, name: str) -> Container | None:
    """The container if the daemon created it, whatever failed after (looked up by name: an
    interrupt can land after the daemon created it but before testcontainers holds it)."""
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def start_docker(spec: ServerSpec) -> DockerServer:
    """Start a fresh server container and wait until it accepts a login; on failure (or an
    interrupt) the container is removed and the error carries its log. A port taken between
    choosing it and the server binding it is retried on another port, twice."""
    testcontainers_config.ryuk_disabled = True  # removal is pgcutover's (see the docstring)
    client = docker_client()
    remove_stale(client)
    image = _ensure_image(client, spec.image, spec.flavor)
    label = f"{spec.label} (container {image})"
    if image != spec.image:
        label += f"; {spec.image} could not be pulled here"
        spec = replace(spec, image=image)
    password = secrets.token_urlsafe(24)
    retries = 2
    while True:
        port = free_port()
        name = f"pgcutover-{spec.base_dir.name}-{os.getpid()}-{secrets.token_hex(3)}"
        container = _container(spec, name, label, port, password)
        try:
            container.start()
        except BaseException as error:
            created = _created(client, name)
            log = log_tail(created) if created is not None else ""
            if created is not None:
                remove(created)
            if not isinstance(error, Exception):
                raise
            if "Address already in use" in log and retries:
                retries -= 1
                continue
            what = next(iter(str(error).splitlines()), type(error).__name__)[:300]
            raise ServerStartError(
                f"the container for {label} did not start: {what}\ncontainer log:\n{log}",
                "read the log above; an image that does not follow the official postgres "
                "image's contract (POSTGRES_PASSWORD, `postgres` as the command) or a full "
                "disk are the usual causes",
            ) from None
        return DockerServer(
            label, spec.image, container.get_container_id(), port, password, spec.network
        )
