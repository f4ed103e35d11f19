"""Privileges on schemas, tables, views, sequences, columns and functions, per grantee.

An object without an explicit ACL has its owner's and PUBLIC's defaults (acldefault), so
"never granted" and "granted the defaults" compare equal. The owner is shown as `(owner)`:
ownership is not what this family compares. Privilege kinds the source's server does not
have (MAINTAIN arrived in PostgreSQL 17 and `GRANT ALL` includes it there) are left out of
the target's side. A missing privilege for `authenticated` is exactly what breaks a Supabase
app after a move; an extra one widens access. Both fail."""

from __future__ import annotations

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import Side, failures_or, not_extension_member, result
from pgcutover.config import Settings

#: acldefault() object kinds per family.
KINDS = {"table": "r", "sequence": "s", "function": "f", "schema": "n"}

GRANTEE = """CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
     WHEN acl.grantee = {owner} THEN '(owner)'
     ELSE pg_get_userbyid(acl.grantee) END"""

RELATIONS = f"""
SELECT n.nspname || '.' || c.relname,
       CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END,
       format('%%I.%%I', n.nspname, c.relname),
       {GRANTEE.format(owner="c.relowner")}, acl.privilege_type, acl.is_grantable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     aclexplode(coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                                               c.relowner))) acl
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND n.nspname = ANY(%(schemas)s)
  AND {not_extension_member("pg_class", "c.oid")}
UNION ALL
SELECT n.nspname || '.' || c.relname, 'table', format('%%I.%%I', n.nspname, c.relname),
       {GRANTEE.format(owner="c.relowner")},
       acl.privilege_type || '(' || quote_ident(a.attname) || ')', acl.is_grantable
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(a.attacl) acl
WHERE a.attacl IS NOT NULL AND NOT a.attisdropped AND n.nspname = ANY(%(schemas)s)
  AND {not_extension_member("pg_class", "c.oid")}
"""

FUNCTIONS = f"""
SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
       format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       {GRANTEE.format(owner="p.proowner")}, acl.privilege_type, acl.is_grantable
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
     aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) acl
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_proc", "p.oid")}
"""

SCHEMAS = f"""
SELECT n.nspname, 'schema', quote_ident(n.nspname), {GRANTEE.format(owner="n.nspowner")},
       acl.privilege_type, acl.is_grantable
FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) acl
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_namespace", "n.oid")}
"""

KNOWN = """SELECT DISTINCT privilege_type FROM aclexplode(acldefault(%(kind)s::"char", 10))"""

Grants = dict[str, dict[str, set[str]]]


def read_grants(side: Side) -> tuple[Grants, dict[str, tuple[str, str]]]:
    """object -> grantee -> {"SELECT", "INSERT*" (* = with grant option), "SELECT(col)"};
    and object -> (kind, SQL name)."""
    grants: Grants = {}
    objects: dict[str, tuple[str, str]] = {}
    for query in (SCHEMAS, RELATIONS, FUNCTIONS):
        for name, kind, quoted, grantee, privilege, grantable in side.rows(query):
            objects[name] = (kind, quoted)
            grants.setdefault(name, {}).setdefault(grantee, set()).add(
                privilege + ("*" if grantable else "")
            )
    return grants, objects


def known_privileges(side: Side) -> dict[str, set[str]]:
    """kind -> the privilege types the server knows for it (everything the owner gets)."""
    return {kind: {row[0] for row in side.rows(KNOWN, kind=code)} for kind, code in KINDS.items()}


def _is_known(privilege: str, known: set[str]) -> bool:
    return privilege.split("(")[0].rstrip("*") in known


def _grant_sql(privileges: set[str], kind: str, quoted: str, grantee: str, verb: str) -> str:
    """GRANT (or REVOKE) statements for a set of privileges, column ones apart; `*` marks a
    privilege held WITH GRANT OPTION."""
    on = {"sequence": "SEQUENCE ", "function": "FUNCTION ", "procedure": "PROCEDURE "}
    on |= {"schema": "SCHEMA "}
    who = {"PUBLIC": "PUBLIC", "(owner)": f"<owner of {quoted}>"}.get(grantee, f'"{grantee}"')
    preposition = "TO" if verb == "GRANT" else "FROM"
    statements = []
    for option in (False, True):
        chosen = sorted(p.rstrip("*") for p in privileges if p.endswith("*") == option)
        suffix = " WITH GRANT OPTION" if option and verb == "GRANT" else ""
        whole = [p for p in chosen if "(" not in p]
        if whole:
            statements.append(
                f"{verb} {', '.join(whole)} ON {on.get(kind, '')}{quoted} {preposition} {who}"
                f"{suffix};"
            )
        for column in (p for p in chosen if "(" in p):
            privilege, _, name = column.partition("(")
            statements.append(
                f"{verb} {privilege} ({name} ON {quoted} {preposition} {who}{suffix};"
            )
    return " ".join(statements)


def _grantee_result(
    name: str, kind: str, quoted: str, grantee: str, source: set[str], target: set[str]
) -> CheckResult:
    missing, extra = source - target, target - source
    parts = [f"lacks {', '.join(sorted(missing))}"] if missing else []
    parts += [f"has extra {', '.join(sorted(extra))}"] if extra else []
    fixes = [_grant_sql(missing, kind, quoted, grantee, "GRANT")] if missing else []
    fixes += [_grant_sql(extra, kind, quoted, grantee, "REVOKE")] if extra else []
    return result(
        f"schema.grant.{name}.{grantee}",
        source == target,
        f"{grantee} on {kind} {name}: the target {' and '.join(parts)} (* = WITH GRANT OPTION)",
        source=sorted(source),
        target=sorted(target),
        remedy=" ".join(fixes),
    )


def _object_results(
    name: str,
    kind: str,
    quoted: str,
    source: dict[str, set[str]],
    target: dict[str, set[str]],
    known: set[str],
) -> list[CheckResult]:
    """Failures per grantee whose privileges differ, else one pass for the object."""
    # Privilege kinds the source's server lacks (MAINTAIN before 17) are not compared.
    target = {grantee: {p for p in held if _is_known(p, known)} for grantee, held in target.items()}
    verdicts = [
        _grantee_result(
            name, kind, quoted, grantee, source.get(grantee, set()), target.get(grantee, set())
        )
        for grantee in sorted(source.keys() | target.keys())
    ]

    def summary() -> CheckResult:
        return result(
            f"schema.grant.{name}",
            True,
            f"{kind} {name}: privileges of {len(source)} grantees match",
            source={grantee: sorted(held) for grantee, held in sorted(source.items())},
            target={grantee: sorted(held) for grantee, held in sorted(target.items()) if held},
        )

    return failures_or(verdicts, summary)


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """Per object present on both sides: one pass, or one failure per differing grantee.
    Missing objects are reported by their own family."""
    source_grants, objects = read_grants(source)
    target_grants, _ = read_grants(target)
    known = known_privileges(source)
    results: list[CheckResult] = []
    for name in sorted(source_grants.keys() & target_grants.keys()):
        kind, quoted = objects[name]
        family = "function" if kind == "procedure" else kind
        results += _object_results(
            name, kind, quoted, source_grants[name], target_grants[name], known[family]
        )
    return results
