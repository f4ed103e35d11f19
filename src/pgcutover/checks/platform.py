"""Platform parts, judged against the target: roles that lost SUPERUSER, BYPASSRLS or
REPLICATION, publications and event triggers that did not move (a managed target refuses
what needs a superuser) or moved to a server that cannot use them, Supabase Vault's secrets
and Storage's files (which never move with the database), and GoTrue's auth schema (a note
on what depends on the platform).

Each finding fails until the owner acknowledges it in targets.toml (`[platform] acknowledge`,
ids or shell-style patterns); an acknowledged one passes, marked as such, and stays listed.
pgcutover's own rehearsal seed comes with its findings acknowledged (fixtures/platform.toml)."""

from __future__ import annotations

from typing import Any

import psycopg

from pgcutover.checks.base import FAIL, PASS, CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import connection
from pgcutover.inventory import inventory_config
from pgcutover.migrate.capabilities import PRIVILEGED_ATTRIBUTES, capabilities
from pgcutover.migrate.roles import RoleSpec, referenced_roles
from pgcutover.migrate.runner import MigrationResult
from pgcutover.platform import parts
from pgcutover.platform.findings import (
    Finding,
    acknowledgement,
    auth_note,
    event_trigger_missing,
    publication_missing,
    role_finding,
    storage_finding,
    vault_finding,
    wal_level_finding,
)

AREA = "platform"

ROLE_ATTRIBUTES = """
SELECT rolname, rolsuper, rolbypassrls, rolreplication FROM pg_roles
WHERE rolname = ANY(%(names)s)
"""


def acknowledged(settings: Settings) -> dict[str, str]:
    """Acknowledge pattern -> where it was given (targets.toml, or the rehearsal seed's own)."""
    section = settings.section("platform")
    found = {pattern: "targets.toml" for pattern in section.get("acknowledge", [])}
    if settings.rehearsal:
        for pattern in section.get("seed_acknowledge", []):
            found.setdefault(pattern, "fixtures/platform.toml, for pgcutover's rehearsal seed")
    return found


def judged(finding: Finding, patterns: dict[str, str]) -> CheckResult:
    """A finding as a result: failed until acknowledged, a note when it never blocks."""
    if not finding.blocking:
        return CheckResult(
            id=finding.id,
            area=AREA,
            status=PASS,
            message=f"NOTE (does not block): {finding.message}",
            details={"severity": "note", **finding.details},
        )
    pattern = acknowledgement(finding.id, patterns)
    if pattern is None:
        return CheckResult(
            id=finding.id,
            area=AREA,
            status=FAIL,
            message=finding.message,
            remedy=finding.remedy,
            details=finding.details,
        )
    return CheckResult(
        id=finding.id,
        area=AREA,
        status=PASS,
        message=f"ACKNOWLEDGED ({pattern!r} in {patterns[pattern]}; does not block): "
        f"{finding.message}",
        details={"severity": "acknowledged", "acknowledged_by": pattern, **finding.details},
    )


def _refusals(migration: MigrationResult | None, kind: str) -> dict[str, str]:
    refusals = migration.refusals if migration else []
    return {
        r["name"]: f"the target refused it: {r['error']}" for r in refusals if r["kind"] == kind
    }


def privileged_roles(src: psycopg.Connection, settings: Settings) -> list[RoleSpec]:
    """The roles the migration carries that have SUPERUSER, BYPASSRLS or REPLICATION on the
    source, less those [inventory] ignore_roles leaves out."""
    ignored = set(inventory_config(settings).ignore_roles)
    return [
        role
        for role in referenced_roles(src, settings.ignored_schemas)
        if role.name not in ignored and any(getattr(role, a) for a in PRIVILEGED_ATTRIBUTES)
    ]


def _roles(
    src: psycopg.Connection, dst: psycopg.Connection, settings: Settings
) -> tuple[list[Finding], list[CheckResult]]:
    carried = privileged_roles(src, settings)
    names = [role.name for role in carried]
    on_target = {row[0]: row[1:] for row in dst.execute(ROLE_ATTRIBUTES, {"names": names})}
    tables = parts.rls_tables(dst, settings.ignored_schemas)
    findings, kept = [], []
    for role in carried:
        if role.name not in on_target:
            continue  # a missing role is schema.role's failure
        target = dict(zip(PRIVILEGED_ATTRIBUTES, on_target[role.name], strict=True))
        lost = [a for a in PRIVILEGED_ATTRIBUTES if getattr(role, a) and not target[a]]
        if lost:
            findings.append(role_finding(role.name, lost, tables))
        else:
            held = [a.upper() for a in PRIVILEGED_ATTRIBUTES if getattr(role, a)]
            kept.append(
                outcome(
                    f"platform.role.{role.name}",
                    AREA,
                    True,
                    f"role {role.name} keeps {', '.join(held)} on the target",
                )
            )
    return findings, kept


def _publications(
    src: psycopg.Connection, dst: psycopg.Connection, migration: MigrationResult | None
) -> tuple[list[Finding], list[CheckResult]]:
    refused = _refusals(migration, "publication")
    wal_level = capabilities(dst).wal_level
    target = {publication.name: publication for publication in parts.publications(dst)}
    findings, moved = [], []
    for publication in parts.publications(src):
        there = target.get(publication.name)
        if there is None:
            findings.append(publication_missing(publication, refused.get(publication.name)))
            continue
        same = (there.all_tables, there.actions, there.tables, there.schemas) == (
            publication.all_tables,
            publication.actions,
            publication.tables,
            publication.schemas,
        )
        if not same:
            findings.append(
                Finding(
                    id=f"platform.publication.{publication.name}",
                    message=f"{publication.describe()} on the source is {there.describe()} on "
                    "the target: subscribers get other changes than before",
                    remedy=f"ALTER PUBLICATION {publication.name} SET TABLE ... as on the source",
                    details={"source": publication.describe(), "target": there.describe()},
                )
            )
        elif wal_level != "logical":
            findings.append(wal_level_finding(publication, wal_level))
        else:
            moved.append(
                outcome(
                    f"platform.publication.{publication.name}",
                    AREA,
                    True,
                    f"{publication.describe()} moved; the target decodes (wal_level=logical)",
                )
            )
    return findings, moved


def _event_triggers(
    src: psycopg.Connection, dst: psycopg.Connection, migration: MigrationResult | None
) -> tuple[list[Finding], list[CheckResult]]:
    refused = _refusals(migration, "event trigger")
    target = {trigger.name for trigger in parts.event_triggers(dst)}
    findings, moved = [], []
    for trigger in parts.event_triggers(src):
        if trigger.name in target:
            moved.append(
                outcome(
                    f"platform.event_trigger.{trigger.name}",
                    AREA,
                    True,
                    f"{trigger.describe()}: moved (schema.event_trigger compares it)",
                )
            )
        else:
            findings.append(event_trigger_missing(trigger, refused.get(trigger.name)))
    return findings, moved


def source_findings(src: psycopg.Connection, settings: Settings) -> list[Finding]:
    """Findings the source alone decides: Vault, Storage, the auth schema."""
    findings = []
    secrets = parts.vault_secret_names(src)
    if secrets:
        findings.append(vault_finding(secrets, parts.pgsodium_key_names(src)))
    buckets = parts.storage_buckets(src)
    if buckets and any(bucket.objects for bucket in buckets):
        findings.append(storage_finding(buckets))
    auth = parts.auth_schema(src, settings.ignored_schemas)
    if auth is not None:
        findings.append(auth_note(auth))
    return findings


def _check(pair: Pair, settings: Settings, migration: MigrationResult | None) -> list[CheckResult]:
    patterns = acknowledged(settings)
    with (
        connection(pair.source, role="source") as src,
        connection(pair.target, role="target") as dst,
    ):
        findings, passed = _roles(src, dst, settings)
        for judge in (_publications, _event_triggers):
            more, fine = judge(src, dst, migration)
            findings += more
            passed += fine
        findings += source_findings(src, settings)
    results = [judged(finding, patterns) for finding in findings] + passed
    return results or [
        outcome("platform", AREA, True, "no platform parts on the source: nothing to judge")
    ]


def check(
    pair: Pair, settings: Settings, migration: MigrationResult | None = None
) -> list[CheckResult]:
    """Every platform part of the source, judged on the target; `migration` (when this run
    migrated) says what the target refused."""
    return guarded("platform", AREA, lambda: _check(pair, settings, migration), pair)


def summary(results: list[CheckResult]) -> dict[str, Any]:
    """Counts for the plan and tests: blocking, acknowledged, notes."""
    return {
        "blocking": sorted(r.id for r in results if r.status == FAIL),
        "acknowledged": sorted(
            r.id for r in results if r.details.get("severity") == "acknowledged"
        ),
        "notes": sorted(r.id for r in results if r.details.get("severity") == "note"),
    }
