"""External provider: a server somebody else runs, reached by DSN or .env settings."""

from __future__ import annotations

from dataclasses import dataclass

from pgcutover.db import Endpoint


@dataclass
class ExternalServer:
    """A database pgcutover did not create: never stopped, never destroyed."""

    endpoint: Endpoint
    capabilities: frozenset[str] = frozenset()

    def stop(self) -> None:
        """Nothing to stop: the server belongs to its owner."""

    def state(self) -> dict[str, object]:
        """External servers need no cross-process bookkeeping."""
        return {"kind": "external"}
