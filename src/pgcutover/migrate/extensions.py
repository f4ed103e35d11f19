"""Extensions where the source has them: each one created in the source's schema, at the
source's version where the target offers it (else the target's default), before the objects
that use it are restored. The guide's step 1 (`CREATE EXTENSION vector`) in the default
schema would leave a dump's `CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions`
doing nothing, and every object naming `extensions.vector` failing.

Who creates it: the restoring role when it may (a superuser, or a trusted extension); on the
rehearsal's managed-like target, the provider (its superuser stands for the provider's console,
as Supabase's dashboard, RDS's rds_superuser or Azure's allow-list let the owner enable an
extension it could not create itself); on a named target, the configured role tries, and a
refusal names the extension and the provider step that fixes it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

from pgcutover.db import Endpoint
from pgcutover.errors import MigrationError
from pgcutover.migrate.capabilities import Capabilities
from pgcutover.migrate.tools import bounded

#: present: installed in the source's schema already; create: the restoring role creates it;
#: provider: the provider's step creates it; try: the role tries (a managed provider may
#: allow it); unavailable: the target does not offer it; elsewhere: installed in another
#: schema on the target.
Action = Literal["present", "create", "provider", "try", "unavailable", "elsewhere"]
BLOCKING: tuple[Action, ...] = ("unavailable", "elsewhere")

#: Extensions created by users (not built in: plpgsql comes with every database), oldest first
#: so that one another requires is created before it; `owns_schema` when the extension's script
#: created its schema itself.
SOURCE_EXTENSIONS = """
SELECT e.extname, e.extversion, n.nspname,
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
               AND d.objid = n.oid AND d.refobjid = e.oid AND d.deptype = 'e')
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.oid >= 16384
ORDER BY e.oid
"""

#: Objects outside the extension that use one of its members: columns of its types,
#: functions taking or returning them, indexes on its operator classes, casts...
DEPENDENTS = """
WITH members AS (
    SELECT classid, objid FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = %(name)s)
)
SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid)
FROM pg_depend d JOIN members m ON m.classid = d.refclassid AND m.objid = d.refobjid
WHERE d.deptype IN ('n', 'a')
  AND d.classid NOT IN ('pg_amop'::regclass, 'pg_amproc'::regclass)
  AND NOT (d.classid = 'pg_type'::regclass
           AND EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = d.objid AND t.typelem <> 0))
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = d.classid AND x.objid = d.objid
                  AND x.deptype = 'e')
ORDER BY 1
"""

TARGET_OFFER = """
SELECT a.name, a.default_version,
       ARRAY(SELECT v.version FROM pg_available_extension_versions v
             WHERE v.name = a.name ORDER BY 1),
       ARRAY(SELECT v.version FROM pg_available_extension_versions v
             WHERE v.name = a.name AND (v.trusted OR NOT v.superuser) ORDER BY 1)
FROM pg_available_extensions a WHERE a.name = ANY(%(names)s)
"""

TARGET_INSTALLED = """
SELECT e.extname, e.extversion, n.nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = ANY(%(names)s)
"""


@dataclass(frozen=True)
class ExtensionStep:
    """What the migration does with one of the source's extensions."""

    name: str
    schema: str
    source_version: str
    action: Action
    #: The version CREATE EXTENSION asks for (None: not created).
    version: str | None
    reason: str
    #: The extension's script creates its schema itself (no WITH SCHEMA).
    owns_schema: bool = False
    dependents: tuple[str, ...] = field(default=())

    def statement(self) -> sql.Composed:
        """CREATE EXTENSION IF NOT EXISTS ... [WITH SCHEMA ...] VERSION ..."""
        schema = (
            sql.SQL("")
            if self.owns_schema
            else sql.SQL(" WITH SCHEMA {}").format(sql.Identifier(self.schema))
        )
        return sql.SQL("CREATE EXTENSION IF NOT EXISTS {}{} VERSION {}").format(
            sql.Identifier(self.name), schema, sql.Literal(self.version)
        )

    def describe(self) -> str:
        """One line for the plan and the migration notes."""
        return f"extension {self.name} {self.source_version} in schema {self.schema}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """For the plan and signoff.json."""
        return asdict(self)


def _dependents(conn: psycopg.Connection, name: str) -> tuple[str, ...]:
    return tuple(row[0] for row in conn.execute(DEPENDENTS, {"name": name}))


def _decide(
    name: str,
    version: str,
    offer: tuple[str, list[str], list[str]] | None,
    installed: tuple[str, str] | None,
    schema: str,
    may: Capabilities,
    provider: bool,
) -> tuple[Action, str | None, str]:
    """(action, version to create, why) for one extension."""
    if installed is not None:
        have, where = installed
        if where != schema:
            return (
                "elsewhere",
                None,
                f"installed in schema {where} on the target: objects naming {schema}.* would "
                "not find its types and functions",
            )
        return "present", None, f"already installed on the target ({have}): kept"
    if offer is None:
        return "unavailable", None, "the target server does not offer it"
    default, versions, unprivileged = offer
    wanted = version if version in versions else default
    at = (
        f"at {wanted}, as on the source"
        if wanted == version
        else f"at {wanted} (the target does not offer {version})"
    )
    if may.superuser or wanted in unprivileged:
        return "create", wanted, f"created by {may.role} {at}"
    if provider:
        return (
            "provider",
            wanted,
            f"enabled by the provider {at}: {may.role} may not create it (it needs a "
            "superuser), as on a managed service where the console enables it",
        )
    return (
        "try",
        wanted,
        f"{may.role} will try to create it {at}; it needs a superuser, which managed services "
        "replace with their own allow-list: if refused, enable it in the provider's console",
    )


def plan_extensions(
    src: psycopg.Connection, dst: psycopg.Connection, may: Capabilities, *, provider: bool
) -> list[ExtensionStep]:
    """What happens to each of the source's extensions on this target (read-only)."""
    source = src.execute(SOURCE_EXTENSIONS).fetchall()
    names = [row[0] for row in source]
    offers = {
        row[0]: (row[1], list(row[2]), list(row[3]))
        for row in dst.execute(TARGET_OFFER, {"names": names})
    }
    installed = {
        row[0]: (row[1], row[2]) for row in dst.execute(TARGET_INSTALLED, {"names": names})
    }
    steps = []
    for name, version, schema, owns_schema in source:
        action, wanted, reason = _decide(
            name, version, offers.get(name), installed.get(name), schema, may, provider
        )
        steps.append(
            ExtensionStep(
                name=name,
                schema=schema,
                source_version=version,
                action=action,
                version=wanted,
                reason=reason,
                owns_schema=owns_schema,
                dependents=_dependents(src, name),
            )
        )
    return steps


def refuse_blocking(steps: Sequence[ExtensionStep], target: str) -> None:
    """Stop before anything is written when an extension cannot be had on the target."""
    blocking = [step for step in steps if step.action in BLOCKING]
    if not blocking:
        return
    lines = []
    for step in blocking:
        uses = ", ".join(step.dependents[:8]) or "no other objects"
        more = f" and {len(step.dependents) - 8} more" if len(step.dependents) > 8 else ""
        lines.append(f"{step.describe()} (used by {uses}{more})")
    unavailable = [step.name for step in blocking if step.action == "unavailable"]
    elsewhere = [step for step in blocking if step.action == "elsewhere"]
    remedies = []
    if unavailable:
        remedies.append(
            f"install {', '.join(unavailable)} on the target server or pick a managed plan "
            "that offers it (SELECT * FROM pg_available_extensions on the target)"
        )
    remedies += [
        f"ALTER EXTENSION {step.name} SET SCHEMA {step.schema} on the target (or drop it there "
        "and let the migration create it)"
        for step in elsewhere
    ]
    raise MigrationError(
        f"the target {target} cannot hold the source's extensions as they are: "
        + "; ".join(lines)
        + "; nothing was written",
        "; ".join(remedies),
    )


def create_extensions(
    target: Endpoint,
    steps: Sequence[ExtensionStep],
    provider: Endpoint | None,
    timeout: float,
) -> list[str]:
    """Create each extension the plan creates; returns notes for the report."""
    notes = []
    for step in steps:
        if step.action not in ("create", "provider", "try"):
            continue
        by_provider = step.action == "provider" and provider is not None
        endpoint = provider if by_provider and provider else target
        with bounded(endpoint, "admin" if by_provider else "target", "extensions", timeout) as conn:
            try:
                conn.execute(step.statement())
            except psycopg.errors.InsufficientPrivilege as error:
                raise MigrationError(
                    f"{target.user} may not create extension {step.name} in schema "
                    f"{step.schema} ({error.diag.message_primary}); used by "
                    f"{', '.join(step.dependents[:8]) or 'no other objects'}",
                    f"enable {step.name} in schema {step.schema} in the provider's console "
                    f"(Supabase: Database > Extensions; RDS, Cloud SQL, Azure: CREATE EXTENSION "
                    f"{step.name} WITH SCHEMA {step.schema} as the admin user once the "
                    "extension is allowed), then rerun",
                    phase="extensions",
                ) from None
        who = (
            "the provider (standing in for a managed service's console)"
            if by_provider
            else (target.user)
        )
        notes.append(
            f"extension {step.name} {step.version} created in schema {step.schema} by {who}"
        )
    return notes
