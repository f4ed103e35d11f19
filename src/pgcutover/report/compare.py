"""Since the last run: what changed against the previous sign-off of the same target, so
nightly rehearsals show trends (new failures, fixed checks, numbers moving)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BLOCKING = ("fail", "unknown")
LATEST = "latest"


def previous_signoff(reports_dir: Path, run_id: str, target_label: str) -> dict[str, Any] | None:
    """The newest earlier signoff.json in reports_dir whose target has the same label."""
    candidates = []
    for path in reports_dir.glob("*/signoff.json"):
        if path.parent.name in (run_id, LATEST):
            continue
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        if document.get("target", {}).get("label") != target_label:
            continue
        candidates.append((str(document.get("started_at", "")), path.parent.name, document))
    return max(candidates, key=lambda item: item[:2])[2] if candidates else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _change(check_id: str, before: float, after: float, now: Mapping[str, Any]) -> dict[str, Any]:
    relative = (after - before) / abs(before) if before else None
    return {
        "id": check_id,
        "area": now.get("area"),
        "before": before,
        "after": after,
        "delta": after - before,
        "relative": relative,
    }


def compare(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """What moved between two signoff.json documents, matched by check id."""
    before = {check["id"]: check for check in previous.get("checks", [])}
    after = {check["id"]: check for check in current.get("checks", [])}
    new_failures, fixed, changed = [], [], []
    for check_id, now in sorted(after.items()):
        then = before.get(check_id)
        blocking_now = now["status"] in BLOCKING
        blocking_then = then is not None and then["status"] in BLOCKING
        if blocking_now and not blocking_then:
            new_failures.append(
                {"id": check_id, "status": now["status"], "message": now.get("message", "")}
            )
        elif blocking_then and now["status"] == "pass":
            fixed.append({"id": check_id, "message": now.get("message", "")})
        if then is not None:
            old, new = _number(then.get("actual")), _number(now.get("actual"))
            if old is not None and new is not None and old != new:
                changed.append(_change(check_id, old, new, now))
    # changes from zero (no relative size) first, then the largest relative moves
    changed.sort(key=lambda c: (c["relative"] is not None, -abs(c["relative"] or 0.0)))
    return {
        "previous_run_id": previous.get("run_id"),
        "previous_verdict": previous.get("verdict"),
        "previous_started_at": previous.get("started_at"),
        "new_failures": new_failures,
        "fixed": fixed,
        "changed": changed,
        "new_checks": sorted(after.keys() - before.keys()),
        "removed_checks": sorted(before.keys() - after.keys()),
    }
