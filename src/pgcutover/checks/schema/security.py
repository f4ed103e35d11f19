"""Row-level security: per table, RLS enabled and forced as on the source (a table whose RLS
is off shows every user every row); per policy, its command, permissive/restrictive, roles,
and USING / WITH CHECK expressions (deparsed by the server, white space folded)."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import Side, Spec, compare_each, normalise, not_extension_member
from pgcutover.config import Settings

COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}

TABLES = f"""
SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity,
       format('%%I.%%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%(schemas)s)
  AND {not_extension_member("pg_class", "c.oid")}
"""

POLICIES = f"""
SELECT n.nspname || '.' || c.relname || '.' || pol.polname, pol.polcmd, pol.polpermissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END
             FROM unnest(pol.polroles) r ORDER BY 1),
       pg_get_expr(pol.polqual, pol.polrelid), pg_get_expr(pol.polwithcheck, pol.polrelid),
       format('%%I ON %%I.%%I', pol.polname, n.nspname, c.relname)
FROM pg_policy pol
JOIN pg_class c ON c.oid = pol.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_class", "c.oid")}
"""


def read_rls(side: Side) -> dict[str, dict[str, Any]]:
    """schema.table -> {"enabled", "forced"} (and its SQL name apart)."""
    return {
        name: {"enabled": enabled, "forced": forced, "_sql": quoted}
        for name, enabled, forced, quoted in side.rows(TABLES)
    }


def read_policies(side: Side) -> dict[str, dict[str, Any]]:
    """schema.table.policy -> command, permissive, roles, using, with_check."""
    return {
        name: {
            "command": COMMANDS.get(command, command),
            "permissive": permissive,
            "roles": roles,
            "using": normalise(using),
            "with_check": normalise(check),
            "_sql": quoted,
        }
        for name, command, permissive, roles, using, check, quoted in side.rows(POLICIES)
    }


def _rls_remedy(source: Spec | None, target: Spec | None) -> str:
    if source is None or target is None:
        return "see the table's own result"
    quoted = target["_sql"]
    enable = "ENABLE" if source["enabled"] else "DISABLE"
    force = "FORCE" if source["forced"] else "NO FORCE"
    return (
        f"ALTER TABLE {quoted} {enable} ROW LEVEL SECURITY; "
        f"ALTER TABLE {quoted} {force} ROW LEVEL SECURITY;"
    )


def _policy_sql(spec: Spec) -> str:
    kind = "PERMISSIVE" if spec["permissive"] else "RESTRICTIVE"
    roles = ", ".join(spec["roles"]) or "PUBLIC"
    text = f"CREATE POLICY {spec['_sql']} AS {kind} FOR {spec['command']} TO {roles}"
    if spec["using"]:
        text += f" USING ({spec['using']})"
    if spec["with_check"]:
        text += f" WITH CHECK ({spec['with_check']})"
    return text + ";"


def _policy_remedy(source: Spec | None, target: Spec | None) -> str:
    if source is None:
        return f"DROP POLICY {target['_sql']};"  # type: ignore[index]
    drop = f"DROP POLICY IF EXISTS {source['_sql']}; " if target is not None else ""
    return drop + _policy_sql(source)


def _rls_state(spec: Spec) -> str:
    forced = ", forced" if spec["forced"] else ""
    return f"RLS {'enabled' if spec['enabled'] else 'disabled'}{forced}, as on the source"


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per table present on both sides (RLS state; a missing table is the table
    family's finding) and one per policy."""
    source_tables, target_tables = read_rls(source), read_rls(target)
    both = source_tables.keys() & target_tables.keys()
    return [
        *compare_each(
            "schema.rls",
            "row-level security of",
            {name: source_tables[name] for name in both},
            {name: target_tables[name] for name in both},
            _rls_remedy,
            _rls_state,
        ),
        *compare_each(
            "schema.policy",
            "policy",
            read_policies(source),
            read_policies(target),
            _policy_remedy,
            lambda dst: f"{dst['command']} for {', '.join(dst['roles'])}, same expressions",
        ),
    ]
