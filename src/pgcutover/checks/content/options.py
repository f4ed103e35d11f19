"""The content check's settings: fixtures/content.toml, targets.toml overrides, --content-mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgcutover.config import Settings
from pgcutover.errors import ConfigError

MODES = ("stream", "bisect")


@dataclass(frozen=True)
class ContentOptions:
    """How content is compared; see fixtures/content.toml for what each value means."""

    mode: str
    segments: int
    min_segment_rows: int
    connections: int
    max_keys_reported: int
    bisect_factor: int
    bisect_rows: int
    rows_per_bucket: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ContentOptions:
        """The [content] section, with --content-mode winning over its `mode`."""
        section = settings.section("content")
        mode = settings.content_mode or section.get("mode")
        if mode not in MODES:
            raise ConfigError(
                f"[content] mode = {mode!r} is not one of {', '.join(MODES)}",
                "set mode to stream (servers near this machine) or bisect (a slow link)",
            )
        return cls(
            mode=mode,
            segments=_at_least(section, "segments", 1),
            min_segment_rows=_at_least(section, "min_segment_rows", 1),
            connections=_at_least(section, "connections", 1),
            max_keys_reported=_at_least(section, "max_keys_reported", 0),
            bisect_factor=_at_least(section, "bisect_factor", 2),
            bisect_rows=_at_least(section, "bisect_rows", 1),
            rows_per_bucket=_at_least(section, "rows_per_bucket", 1),
        )


def _at_least(section: dict[str, Any], name: str, minimum: int) -> int:
    """An integer setting of at least `minimum`; the defaults live in fixtures/content.toml."""
    if name not in section:
        raise ConfigError(
            f"[content] {name} is not set",
            f"restore {name} in fixtures/content.toml or set it in targets.toml",
        )
    value = section[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(
            f"[content] {name} = {value!r} must be an integer of at least {minimum}",
            f"fix {name} in targets.toml [content] (fixtures/content.toml has the default)",
        )
    return value
