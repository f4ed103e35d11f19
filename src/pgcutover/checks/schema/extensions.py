"""Extensions: each of the source's must be installed on the target, in the same schema.

A different version is a WARNING, not a failure: CREATE EXTENSION during a restore installs
the target server's default version (pgvector 0.6 on the source becomes 0.8 on the target),
which is usually the point of moving. The sign-off contract knows only pass/fail/unknown/skip
and GO means no fail or unknown, so the result passes, carries `details["severity"] =
"warning"`, and says what changed: the project's notes for each version in between
(fixtures/schema.toml) and the objects the extension gained or lost, read from both catalogs.
A column, index or operator class that really depends on a lost object fails in its own
family."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import Side, paired, result
from pgcutover.config import Settings

EXTENSIONS = """
SELECT e.extname, e.extversion, n.nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
"""

MEMBERS = """
SELECT e.extname, pg_describe_object(d.classid, d.objid, 0)
FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
"""

#: Member kinds named one by one in the summary (with their plural); the rest are counted.
NAMED_KINDS = {"type": "types", "access method": "access methods"}
COUNTED_KINDS = {
    "operator class": "operator classes",
    "operator family": "operator families",
    "function": "functions",
    "operator": "operators",
    "cast": "casts",
}


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Order versions like 0.6.2 < 0.7.0 < 0.8.6 < 0.10.0 (numeric parts numerically)."""
    return tuple(
        (int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.\-]", version)
    )


def release_notes(notes: dict[str, str], old: str, new: str) -> dict[str, str]:
    """The configured notes for the versions after `old` up to and including `new`
    (for a downgrade: after `new` up to `old`, which the target loses)."""
    low, high = sorted((old, new), key=version_key)
    return {
        version: text
        for version, text in sorted(notes.items(), key=lambda item: version_key(item[0]))
        if version_key(low) < version_key(version) <= version_key(high)
    }


def _kind(description: str) -> str:
    """`operator class x for access method hnsw` -> `operator class`."""
    for kind in (*NAMED_KINDS, *COUNTED_KINDS):
        if description.startswith(kind + " "):
            return kind
    return description.split(" ", 1)[0]


def summarise(objects: set[str]) -> str:
    """`types halfvec, sparsevec; 120 functions; 30 operators` for a set of descriptions
    (array types left out: they come with their element type)."""
    parts = []
    for kind, plural in NAMED_KINDS.items():
        names = sorted(
            {o[len(kind) + 1 :] for o in objects if _kind(o) == kind and not o.endswith("[]")}
        )
        if names:
            parts.append(f"{plural} {', '.join(names)}")
    counted = Counter(_kind(o) for o in objects if _kind(o) not in NAMED_KINDS)
    parts += [f"{count} {COUNTED_KINDS.get(kind, kind)}" for kind, count in sorted(counted.items())]
    return "; ".join(parts) or "no catalog objects"


def _read(side: Side) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    extensions = {
        name: {"version": version, "schema": schema}
        for name, version, schema in side.rows(EXTENSIONS)
    }
    members: dict[str, set[str]] = {}
    for name, description in side.rows(MEMBERS):
        members.setdefault(name, set()).add(description)
    return extensions, members


def _version_change(
    name: str,
    src: dict[str, str],
    dst: dict[str, str],
    added: set[str],
    removed: set[str],
    notes: dict[str, str],
) -> CheckResult:
    old, new = src["version"], dst["version"]
    direction = "upgrade" if version_key(new) > version_key(old) else "DOWNGRADE"
    between = release_notes(notes, old, new)
    lines = [f"{version}: {text}" for version, text in between.items()]
    message = (
        f"WARNING (does not block): extension {name} {old} on the source, {new} on the target "
        f"({direction}). Catalog: gains {summarise(added)}; loses {summarise(removed)}."
    )
    if lines:
        message += f" {'Gained' if direction == 'upgrade' else 'Lost'} with the versions in "
        message += "between: " + " | ".join(lines)
    newest = max((*notes, min(old, new, key=version_key)), key=version_key)
    if version_key(newest) < version_key(max(old, new, key=version_key)):
        message += (
            f" (no notes configured after {newest}: see the extension's changelog, and add "
            "them under [schema.extension_changes] in targets.toml)"
        )
    return result(
        f"schema.extension.{name}",
        True,
        message,
        source=src,
        target=dst,
        details={
            "severity": "warning",
            "direction": direction,
            "release_notes": between,
            "added_objects": sorted(added),
            "removed_objects": sorted(removed),
        },
    )


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per extension installed on either side."""
    source_extensions, source_members = _read(source)
    target_extensions, target_members = _read(target)
    changes: dict[str, Any] = settings.section("schema").get("extension_changes", {})
    results = []
    for name, src, dst in paired(source_extensions, target_extensions):
        check_id = f"schema.extension.{name}"
        if dst is None:
            results.append(
                result(
                    check_id,
                    False,
                    f"extension {name} {src['version']} is missing on the target",  # type: ignore[index]
                    source=src,
                    remedy=f"CREATE EXTENSION {name} SCHEMA {src['schema']};  (check "  # type: ignore[index]
                    f"pg_available_extensions WHERE name = '{name}' on the target server; a "
                    "managed service may need it enabled in its console)",
                )
            )
        elif src is None:
            results.append(
                result(
                    check_id,
                    True,
                    f"extension {name} {dst['version']} is installed on the target only "
                    "(managed services preinstall some; it does not change the source's objects)",
                    target=dst,
                )
            )
        elif src["schema"] != dst["schema"]:
            results.append(
                result(
                    check_id,
                    False,
                    f"extension {name} lives in schema {src['schema']} on the source, "
                    f"{dst['schema']} on the target: unqualified references to its types and "
                    "functions resolve differently",
                    source=src,
                    target=dst,
                    remedy=f"ALTER EXTENSION {name} SET SCHEMA {src['schema']};",
                )
            )
        elif src["version"] != dst["version"]:
            results.append(
                _version_change(
                    name,
                    src,
                    dst,
                    target_members.get(name, set()) - source_members.get(name, set()),
                    source_members.get(name, set()) - target_members.get(name, set()),
                    changes.get(name, {}),
                )
            )
        else:
            results.append(
                result(
                    check_id,
                    True,
                    f"extension {name} {dst['version']} in schema {dst['schema']} on both sides",
                    source=src,
                    target=dst,
                )
            )
    return results
