"""One table's differences, gathered range by range and settled at the end."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field


@dataclass
class TableDiff:
    """Rows per side and keys found only on the source, only on the target, or changed.

    Rows missing from one range may turn up in another range on the other side when the two
    servers order keys differently (a collation change); `settle` pairs those up by key and
    row hash, so the verdict never depends on how keys were ranged.
    """

    rows_source: int = 0
    rows_target: int = 0
    segments: int = 0
    differing_segments: int = 0
    only_source: dict[Hashable, Hashable] = field(default_factory=dict)
    only_target: dict[Hashable, Hashable] = field(default_factory=dict)
    changed: list[Hashable] = field(default_factory=list)

    def equal(self, rows_source: int, rows_target: int) -> None:
        """A range whose content is the same on both sides."""
        self.segments += 1
        self.rows_source += rows_source
        self.rows_target += rows_target

    def rows(
        self, source: Mapping[Hashable, Hashable], target: Mapping[Hashable, Hashable]
    ) -> None:
        """A range compared row by row: key -> row hash on each side."""
        self.segments += 1
        self.rows_source += len(source)
        self.rows_target += len(target)
        self.differing_segments += self.keys(source, target)

    def keys(
        self, source: Mapping[Hashable, Hashable], target: Mapping[Hashable, Hashable]
    ) -> bool:
        """Record the keys of rows read again on both sides that differ (key -> row hash);
        True when any does. Rows are counted elsewhere."""
        differs = False
        for key, digest in source.items():
            other = target.get(key)
            if other is None:
                self.only_source[key] = digest
                differs = True
            elif other != digest:
                self.changed.append(key)
                differs = True
        for key, digest in target.items():
            if key not in source:
                self.only_target[key] = digest
                differs = True
        return differs

    def compared(self, units: int, differing: int) -> None:
        """Units (ranges or buckets) compared whole, of which `differing` differ."""
        self.segments += units
        self.differing_segments += differing

    def settle(self) -> None:
        """Pair keys seen only on the source in one range and only on the target in another."""
        for key in [key for key in self.only_source if key in self.only_target]:
            if self.only_source.pop(key) != self.only_target.pop(key):
                self.changed.append(key)

    @property
    def differences(self) -> int:
        return len(self.only_source) + len(self.only_target) + len(self.changed)
