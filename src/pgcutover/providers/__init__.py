"""Where PostgreSQL comes from. Providers differ only in how a server starts and stops;
each registers a starter and a stopper here and nothing else changes. A scratch database
on a server pgcutover does not own is stopped (dropped) the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgcutover import scratch
from pgcutover.db import DataRole
from pgcutover.errors import ConfigError
from pgcutover.providers.base import ControllableServer, ServerSpec
from pgcutover.providers.daemon import remove_container
from pgcutover.providers.docker import start_docker
from pgcutover.providers.embedded import SHIPS, EmbeddedServer, start_embedded

if TYPE_CHECKING:
    from pgcutover.config import Settings

#: The rehearsal's versions: an older "dev" source and a newer "production" target.
SIDE_FLAVORS: dict[DataRole, str] = {"source": "pg16", "target": "pg18"}
#: provider name -> start(spec): a fresh, ephemeral, running server.
STARTERS: dict[str, Callable[[ServerSpec], ControllableServer]] = {
    "embedded": lambda spec: start_embedded(
        spec.flavor, spec.base_dir, f"{spec.label} ({SHIPS[spec.flavor]})", spec.superuser
    ),
    "docker": start_docker,
}
#: Providers that can name the bootstrap superuser (ServerSpec.superuser): a managed-like
#: target keeps `postgres` for the customer's role.
NAMED_SUPERUSER = frozenset({"embedded"})
#: state["kind"] -> stop a server another process started, from its recorded state.
STOPPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "embedded": lambda state: EmbeddedServer.from_state(state, state["password"]).stop(),
    scratch.KIND: scratch.drop,
    "docker": lambda state: remove_container(str(state["container"])),
}


def start_server(
    settings: Settings, side: DataRole, base_dir: Path, label: str, superuser: str = "postgres"
) -> ControllableServer:
    """Start an ephemeral server for one side with the run's provider; `superuser` names its
    bootstrap superuser (only where the provider can: NAMED_SUPERUSER)."""
    if settings.provider not in STARTERS:
        raise ConfigError(
            f"--provider={settings.provider} cannot start servers for pgcutover",
            f"use one of {', '.join(sorted(STARTERS))}, or name both environments from "
            "targets.toml with --source and --target",
        )
    spec = ServerSpec(
        SIDE_FLAVORS[side],
        base_dir,
        label,
        settings.image(side),
        settings.docker_network,
        superuser,
    )
    return STARTERS[settings.provider](spec)


def stop_from_state(state: dict[str, Any]) -> None:
    """Stop a server recorded by `Server.state()` (plus its password)."""
    STOPPERS[str(state["kind"])](state)
