"""The plan before the move (`--plan`): what the migration will do with each schema,
extension, role, publication, event trigger and platform part, and what it cannot do on the
chosen target, so an owner can decide before a maintenance window.

Nothing is written to the source or the target: the source is read through its read-only
connection, the target through a session the server keeps read-only
(default_transaction_read_only), and the migration's own preflight only reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgcutover.catalog import server_version, user_schema_oids
from pgcutover.checks.platform import acknowledged, judged, privileged_roles, source_findings
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connection
from pgcutover.environment import managed_like
from pgcutover.errors import MigrationError
from pgcutover.inventory import discover
from pgcutover.migrate.capabilities import PRIVILEGED_ATTRIBUTES, Capabilities, capabilities
from pgcutover.migrate.extensions import BLOCKING, plan_extensions
from pgcutover.migrate.roles import RoleSpec, referenced_roles
from pgcutover.migrate.runner import preflight
from pgcutover.platform import parts
from pgcutover.platform.findings import (
    Finding,
    event_trigger_missing,
    publication_missing,
    role_finding,
    wal_level_finding,
)

PLAN_JSON = "plan.json"
PLAN_TEXT = "plan.md"
READ_ONLY = "-c default_transaction_read_only=on"

SCHEMAS = """
SELECT n.nspname, pg_get_userbyid(n.nspowner),
       (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p'))
FROM pg_namespace n WHERE n.nspname = ANY(%(names)s) ORDER BY 1
"""

TARGET_ROLES = """
SELECT rolname, rolsuper, rolbypassrls, rolreplication FROM pg_roles
WHERE rolname = ANY(%(names)s)
"""


@dataclass
class Plan:
    """The plan as data: one line per object and what happens to it."""

    source: dict[str, Any]
    target: dict[str, Any]
    schemas: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    publications: list[str] = field(default_factory=list)
    event_triggers: list[str] = field(default_factory=list)
    #: Every platform finding as the platform check will judge it (status, id, message).
    findings: list[dict[str, Any]] = field(default_factory=list)
    #: What the migration cannot do on this target.
    cannot: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[str]:
        """Findings that will hold the GO until acknowledged, and what cannot be done."""
        return [f["id"] for f in self.findings if f["status"] == "fail"]

    def to_json(self) -> dict[str, Any]:
        """plan.json."""
        return {**self.__dict__, "blocking": self.blocking}

    def to_text(self) -> str:
        """plan.md: the same, for a person."""
        lines = [
            f"# Migration plan: {self.source['label']} -> {self.target['label']}",
            "",
            f"Source: {self.source['label']} (PostgreSQL {self.source['server_version']}). "
            f"Target: {self.target['label']} (PostgreSQL {self.target['server_version']}, "
            f"{self.target['kind']}), restoring as {self.target['restores_as']}.",
            "Nothing was written to either side to make this plan.",
        ]
        sections = (
            ("Schemas", self.schemas),
            ("Extensions", self.extensions),
            ("Roles", self.roles),
            ("Database settings", self.settings),
            ("Publications", self.publications),
            ("Event triggers", self.event_triggers),
            (
                "Platform findings",
                [f"[{f['status']}] {f['id']}: {f['message']}" for f in self.findings],
            ),
            ("What the migration cannot do on this target", self.cannot),
        )
        for title, items in sections:
            lines += ["", f"## {title}", ""]
            lines += [f"- {item}" for item in items] or ["- nothing"]
        blocking = self.blocking
        lines += [
            "",
            "## Before the cutover",
            "",
            f"- {len(blocking)} finding(s) will hold the GO until handled and acknowledged in "
            f"targets.toml ([platform] acknowledge): {', '.join(blocking)}"
            if blocking
            else "- no platform finding will hold the GO",
        ]
        if self.cannot:
            lines.append(f"- {len(self.cannot)} thing(s) the migration cannot do: see above")
        return "\n".join(lines) + "\n"


def _schemas(src: psycopg.Connection, dst: psycopg.Connection, settings: Settings) -> list[str]:
    names = list(user_schema_oids(src, settings.ignored_schemas))
    present = user_schema_oids(dst, ())
    lines = []
    for name, owner, tables in src.execute(SCHEMAS, {"names": names}):
        if name in present:
            lines.append(
                f"{name} ({tables} table(s)): already on the target, kept as it is; the "
                "source's objects are restored into it"
            )
        else:
            lines.append(f"{name} ({tables} table(s)): created, owned by {owner}")
    lines += [f"{name}: left out (--exclude-schemas)" for name in settings.exclude_schemas]
    return lines


def _role_line(role: RoleSpec, there: tuple[bool, ...] | None, may: Capabilities) -> str:
    held = [a.upper() for a in PRIVILEGED_ATTRIBUTES if getattr(role, a)]
    if there is not None:
        return f"{role.name}: exists on the target, left as it is"
    withheld = role.withheld(may)
    kept = [a for a in held if a.lower() not in withheld]
    line = f"{role.name}: created" + (f" with {', '.join(kept)}" if kept else "")
    if withheld:
        line += f", without {', '.join(a.upper() for a in withheld)} ({may.role} may not give it)"
    if role.login:
        line += "; a login role: set its password on the target"
    return line


def _roles(
    src: psycopg.Connection, dst: psycopg.Connection, settings: Settings, may: Capabilities
) -> tuple[list[str], list[Finding]]:
    wanted = referenced_roles(src, settings.ignored_schemas)
    privileged = {role.name for role in privileged_roles(src, settings)}
    present = {
        row[0]: row[1:] for row in dst.execute(TARGET_ROLES, {"names": [r.name for r in wanted]})
    }
    tables = parts.rls_tables(src, settings.ignored_schemas)
    lines, findings = [], []
    for role in wanted:
        there = present.get(role.name)
        lines.append(_role_line(role, there, may))
        if there is None:
            lost = role.withheld(may)
        else:
            target = dict(zip(PRIVILEGED_ATTRIBUTES, there, strict=True))
            lost = [a for a in PRIVILEGED_ATTRIBUTES if getattr(role, a) and not target[a]]
        if lost and role.name in privileged:
            findings.append(role_finding(role.name, lost, tables))
    return lines, findings


def _publications(src: psycopg.Connection, may: Capabilities) -> tuple[list[str], list[Finding]]:
    lines, findings = [], []
    for publication in parts.publications(src):
        if not may.superuser and (publication.needs_superuser or not may.create_on_database):
            why = (
                "it needs a superuser"
                if publication.needs_superuser
                else f"{may.role} may not create in the database"
            )
            lines.append(f"{publication.describe()}: will be refused ({why}) and left out")
            findings.append(publication_missing(publication, f"the target will refuse it: {why}"))
            continue
        lines.append(f"{publication.describe()}: moved, created by {may.role}")
        if may.wal_level != "logical":
            findings.append(wal_level_finding(publication, may.wal_level))
    return lines, findings


def _event_triggers(src: psycopg.Connection, may: Capabilities) -> tuple[list[str], list[Finding]]:
    lines, findings = [], []
    for trigger in parts.event_triggers(src):
        if may.superuser:
            lines.append(f"{trigger.describe()}: moved")
            continue
        lines.append(
            f"{trigger.describe()}: tried on its own; PostgreSQL lets only superusers create "
            f"event triggers and {may.role} is not one, so unless the provider allows it "
            "(Supabase does for postgres) it is left out and reported"
        )
        findings.append(
            event_trigger_missing(
                trigger, f"the target will refuse it unless the provider lets {may.role} create it"
            )
        )
    return lines, findings


def _kind(settings: Settings) -> str:
    if settings.target is not None:
        return "named in targets.toml"
    return "throwaway, managed-like" if managed_like(settings) else "throwaway, self-hosted"


def build(source: Endpoint, target: Endpoint, settings: Settings, *, provider: bool) -> Plan:
    """Read both sides and say what the migration into `target` (as its user) will do;
    `provider` when a provider step can enable extensions (the managed-like throwaway)."""
    with (
        connection(source, role="source") as src,
        connection(target, role="target", options=READ_ONLY) as dst,
    ):
        may = capabilities(dst)
        plan = Plan(
            source={"label": source.label, "server_version": server_version(src)},
            target={
                "label": target.label,
                "server_version": server_version(dst),
                "kind": _kind(settings),
                "restores_as": may.describe(),
                "capabilities": may.to_json(),
            },
        )
        plan.schemas = _schemas(src, dst, settings)
        steps = plan_extensions(src, dst, may, provider=provider)
        plan.extensions = [step.describe() for step in steps]
        plan.cannot += [
            f"{step.describe()} (used by {', '.join(step.dependents) or 'no other objects'})"
            for step in steps
            if step.action in BLOCKING
        ]
        plan.roles, findings = _roles(src, dst, settings, may)
        plan.settings = [
            f"ALTER DATABASE ... SET {setting.name} = {setting.value}"
            for setting in discover(src, settings).settings
            if setting.scope == "database"
        ]
        plan.publications, more = _publications(src, may)
        findings += more
        plan.event_triggers, more = _event_triggers(src, may)
        findings += more
        findings += source_findings(src, settings)
    plan.cannot += _preflight(source, target, settings)
    patterns = acknowledged(settings)
    plan.findings = [
        {"id": r.id, "status": r.status, "message": r.message, "remedy": r.remedy}
        for r in (judged(finding, patterns) for finding in findings)
    ]
    return plan


def _preflight(source: Endpoint, target: Endpoint, settings: Settings) -> list[str]:
    """The migration's own preflight (it only reads): what would stop it at once."""
    try:
        preflight(
            source,
            target,
            settings.ignored_schemas,
            clean=settings.allow_destructive,
            timeout=settings.phase_timeout,
        )
    except MigrationError as error:
        return [f"{error.problem} (fix: {error.remedy})"]
    return []


def write(plan: Plan, folder: Path) -> dict[str, Path]:
    """plan.json and plan.md in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / PLAN_JSON, "text": folder / PLAN_TEXT}
    paths["json"].write_text(json.dumps(plan.to_json(), indent=2, default=str))
    paths["text"].write_text(plan.to_text())
    return paths
