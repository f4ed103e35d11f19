"""Network faults: a toxic on the FaultProxy that sits between a client tool and a server."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pgcutover.db import Endpoint
from pgcutover.faults.history import History
from pgcutover.faults.proxy import FaultProxy, Side, Toxic


def through(proxy: FaultProxy, endpoint: Endpoint) -> Endpoint:
    """The same database, reached through the proxy (same credentials, proxy's port)."""
    host, port = proxy.address
    return replace(endpoint, label=f"{endpoint.label} via fault proxy", host=host, port=port)


@dataclass
class NetworkFault:
    """One toxic on one proxy, in one direction, for as long as the fault lasts."""

    proxy: FaultProxy
    toxic: Toxic
    direction: Side
    label: str
    _name: str | None = field(default=None, init=False)
    _event: int | None = field(default=None, init=False)

    def inject(self, history: History) -> None:
        self._name = self.proxy.add(self.toxic, self.direction)
        self._event = history.open(self.label, "network")

    def heal(self, history: History) -> None:
        if self._name is not None:
            self.proxy.remove(self._name)
            self._name = None
        if self._event is not None:
            history.close(self._event)
