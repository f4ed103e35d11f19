"""The run history of one chaos scenario: when each fault was injected and healed, and
what else happened, in seconds from the migration start (the report's timeline)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """Events with start/end times relative to `origin` (time.monotonic())."""

    origin: float = field(default_factory=time.monotonic)
    _events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        """Seconds since the origin."""
        return round(time.monotonic() - self.origin, 3)

    def open(self, name: str, kind: str) -> int:
        """Start an event (a fault injected, a phase begun); returns its handle for close()."""
        with self._lock:
            self._events.append({"name": name, "kind": kind, "start": self.now(), "end": None})
            return len(self._events) - 1

    def close(self, handle: int) -> None:
        """End an open event; closing twice keeps the first end."""
        with self._lock:
            if self._events[handle]["end"] is None:
                self._events[handle]["end"] = self.now()

    def mark(self, name: str, kind: str) -> None:
        """An instant event (a backend terminated, an attempt's verdict)."""
        moment = self.now()
        with self._lock:
            self._events.append({"name": name, "kind": kind, "start": moment, "end": moment})

    def timeline(self) -> list[dict[str, Any]]:
        """The report contract: [{"name", "start", "end", "kind"}]; still-open events end now."""
        now = self.now()
        with self._lock:
            return [
                {**event, "end": now if event["end"] is None else event["end"]}
                for event in self._events
            ]
