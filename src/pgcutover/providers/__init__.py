"""Where PostgreSQL comes from. Providers differ only in how a server starts and stops;
a new one (docker) registers a starter and a stopper here and nothing else changes. A scratch
database on a server pgcutover does not own is stopped (dropped) the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgcutover import scratch
from pgcutover.errors import ConfigError
from pgcutover.providers.base import Server
from pgcutover.providers.embedded import EmbeddedServer, start_embedded

#: provider name -> start(flavor, base_dir, label): a fresh, ephemeral, running server.
STARTERS: dict[str, Callable[[str, Path, str], Server]] = {"embedded": start_embedded}
#: state["kind"] -> stop a server another process started, from its recorded state.
STOPPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "embedded": lambda state: EmbeddedServer.from_state(state, state["password"]).stop(),
    scratch.KIND: scratch.drop,
}


def start_server(provider: str, flavor: str, base_dir: Path, label: str) -> Server:
    """Start an ephemeral server with the chosen provider."""
    if provider not in STARTERS:
        raise ConfigError(
            f"--provider={provider} cannot start servers for pgcutover",
            f"use one of {', '.join(sorted(STARTERS))}, or name both environments from "
            "targets.toml with --source and --target",
        )
    return STARTERS[provider](flavor, base_dir, label)


def stop_from_state(state: dict[str, Any]) -> None:
    """Stop a server recorded by `Server.state()` (plus its password)."""
    STOPPERS[str(state["kind"])](state)
