"""Privileges on schemas, tables, views, sequences, columns and functions, per grantee, and
the default privileges future objects will get (ALTER DEFAULT PRIVILEGES).

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
KINDS = {"table": "r", "sequence": "s", "function": "f", "schema": "n", "type": "T"}
#: pg_default_acl.defaclobjtype -> (what the statement names, family in KINDS).
DEFAULT_OBJECTS = {
    "r": ("tables", "table"),
    "S": ("sequences", "sequence"),
    "f": ("functions", "function"),
    "T": ("types", "type"),
    "n": ("schemas", "schema"),
}
DEFAULT_KIND = "default privileges on"
#: Marks a built-in default privilege a database-wide default ACL takes away.
REVOKED = "REVOKED "

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

#: ALTER DEFAULT PRIVILEGES: what future objects get (Supabase grants its API roles this way).
#: A per-schema entry only adds privileges. A database-wide entry (schema '*') replaces the
#: built-in defaults, so it is read as its difference from them: the privileges it adds, and
#: `REVOKED x` for the built-in ones it takes away (REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC).
DEFAULTS = f"""
WITH d AS (
    SELECT d.defaclrole, d.defaclnamespace, d.defaclacl, d.defaclobjtype::text AS objtype,
           acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END,
                      d.defaclrole) AS builtin,
           n.nspname
    FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
    WHERE d.defaclnamespace = 0 OR n.nspname = ANY(%(schemas)s)
), items AS (
    SELECT d.*, a.grantee, a.privilege_type, a.is_grantable
    FROM d, aclexplode(d.defaclacl) a
    WHERE d.defaclnamespace <> 0 OR NOT EXISTS (
        SELECT 1 FROM aclexplode(d.builtin) b
        WHERE (b.grantee, b.privilege_type, b.is_grantable)
              = (a.grantee, a.privilege_type, a.is_grantable))
    UNION ALL
    SELECT d.*, b.grantee, 'REVOKED ' || b.privilege_type, b.is_grantable
    FROM d, aclexplode(d.builtin) b
    WHERE d.defaclnamespace = 0 AND NOT EXISTS (
        SELECT 1 FROM aclexplode(d.defaclacl) a
        WHERE (a.grantee, a.privilege_type, a.is_grantable)
              = (b.grantee, b.privilege_type, b.is_grantable))
)
SELECT pg_get_userbyid(defaclrole) || '.' || coalesce(nspname, '*') || '.' || objtype,
       '{DEFAULT_KIND} ' || objtype,
       format('FOR ROLE %%I', pg_get_userbyid(defaclrole))
       || coalesce(' IN SCHEMA ' || quote_ident(nspname), ''),
       {GRANTEE.format(owner="defaclrole")}, privilege_type, is_grantable
FROM items acl
"""

KNOWN = """SELECT DISTINCT privilege_type FROM aclexplode(acldefault(%(kind)s::"char", 10))"""

Grants = dict[str, dict[str, set[str]]]


def read_grants(side: Side) -> tuple[Grants, dict[str, tuple[str, str, str]]]:
    """object -> grantee -> {"SELECT", "INSERT*" (* = with grant option), "SELECT(col)"};
    and object -> (kind, SQL name, family in KINDS)."""
    grants: Grants = {}
    objects: dict[str, tuple[str, str, str]] = {}
    for query in (SCHEMAS, RELATIONS, FUNCTIONS, DEFAULTS):
        for name, kind, quoted, grantee, privilege, grantable in side.rows(query):
            if grantee in side.ignored_roles:
                continue
            family = "function" if kind == "procedure" else kind
            if kind.startswith(DEFAULT_KIND):
                what, family = DEFAULT_OBJECTS[kind.rsplit(" ", 1)[1]]
                name, kind = f"{name[:-1]}{what}", f"{DEFAULT_KIND} {what}"
            objects[name] = (kind, quoted, family)
            grants.setdefault(name, {}).setdefault(grantee, set()).add(
                privilege + ("*" if grantable else "")
            )
    return grants, objects


def known_privileges(side: Side) -> dict[str, set[str]]:
    """kind -> the privilege types the server knows for it (everything the owner gets)."""
    return {kind: {row[0] for row in side.rows(KNOWN, kind=code)} for kind, code in KINDS.items()}


def _is_known(privilege: str, known: set[str]) -> bool:
    return privilege.removeprefix(REVOKED).split("(")[0].rstrip("*") in known


#: The word GRANT puts before an object's name, per kind.
ON = {"sequence": "SEQUENCE ", "function": "FUNCTION ", "procedure": "PROCEDURE "}
ON |= {"schema": "SCHEMA ", "type": "TYPE "}


def _statement(kind: str, quoted: str, verb: str, privileges: str, who: str, suffix: str) -> str:
    """One GRANT/REVOKE, or ALTER DEFAULT PRIVILEGES ... GRANT/REVOKE for default ACLs."""
    preposition = "TO" if verb == "GRANT" else "FROM"
    if kind.startswith(DEFAULT_KIND):
        what = kind.rsplit(" ", 1)[1].upper()
        return (
            f"ALTER DEFAULT PRIVILEGES {quoted} {verb} {privileges} ON {what} "
            f"{preposition} {who}{suffix};"
        )
    return f"{verb} {privileges} ON {ON.get(kind, '')}{quoted} {preposition} {who}{suffix};"


def _grant_sql(privileges: set[str], kind: str, quoted: str, grantee: str, verb: str) -> str:
    """GRANT (or REVOKE) statements for a set of privileges, column ones apart; `*` marks a
    privilege held WITH GRANT OPTION."""
    who = {"PUBLIC": "PUBLIC", "(owner)": "<the owner>"}.get(grantee, f'"{grantee}"')
    revoked = {p.removeprefix(REVOKED) for p in privileges if p.startswith(REVOKED)}
    if revoked:
        flipped = "REVOKE" if verb == "GRANT" else "GRANT"
        plain = {p for p in privileges if not p.startswith(REVOKED)}
        undo = _grant_sql(revoked, kind, quoted, grantee, flipped)
        return f"{_grant_sql(plain, kind, quoted, grantee, verb)} {undo}".strip()
    statements = []
    for option in (False, True):
        chosen = sorted(p.rstrip("*") for p in privileges if p.endswith("*") == option)
        suffix = " WITH GRANT OPTION" if option and verb == "GRANT" else ""
        whole = ", ".join(p for p in chosen if "(" not in p)
        if whole:
            statements.append(_statement(kind, quoted, verb, whole, who, suffix))
        for column in (p for p in chosen if "(" in p):
            privilege, _, name = column.partition("(")
            statements.append(_statement(kind, quoted, verb, f"{privilege} ({name}", who, suffix))
    return " ".join(statements)


def _check_id(kind: str, name: str) -> str:
    family = "default_grant" if kind.startswith(DEFAULT_KIND) else "grant"
    return f"schema.{family}.{name}"


def _label(kind: str, name: str) -> str:
    """`table public.documents`, or `future tables of postgres in schema public`."""
    if not kind.startswith(DEFAULT_KIND):
        return f"{kind} {name}"
    role, schema, what = name.rsplit(".", 2)
    where = "in every schema" if schema == "*" else f"in schema {schema}"
    return f"default privileges for future {what} of {role} {where}"


def _grantee_result(
    name: str, kind: str, quoted: str, grantee: str, source: set[str], target: set[str]
) -> CheckResult:
    missing, extra = source - target, target - source
    parts = [f"lacks {', '.join(sorted(missing))}"] if missing else []
    parts += [f"has extra {', '.join(sorted(extra))}"] if extra else []
    fixes = [_grant_sql(missing, kind, quoted, grantee, "GRANT")] if missing else []
    fixes += [_grant_sql(extra, kind, quoted, grantee, "REVOKE")] if extra else []
    legend = " (* = WITH GRANT OPTION)" if any("*" in p for p in missing | extra) else ""
    return result(
        f"{_check_id(kind, name)}.{grantee}",
        source == target,
        f"{grantee} on {_label(kind, name)}: the target {' and '.join(parts)}{legend}",
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
            _check_id(kind, name),
            True,
            f"{_label(kind, name)}: privileges of {len(source)} grantees match",
            source={grantee: sorted(held) for grantee, held in sorted(source.items())},
            target={grantee: sorted(held) for grantee, held in sorted(target.items()) if held},
        )

    return failures_or(verdicts, summary)


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """Per object present on both sides: one pass, or one failure per differing grantee
    (missing objects are reported by their own family). Default privileges are compared on
    either side: they have no other family."""
    source_grants, source_objects = read_grants(source)
    target_grants, target_objects = read_grants(target)
    objects = {**target_objects, **source_objects}
    known = known_privileges(source)
    defaults = {name for name, (kind, _, _) in objects.items() if kind.startswith(DEFAULT_KIND)}
    names = (source_grants.keys() & target_grants.keys()) | defaults
    results: list[CheckResult] = []
    for name in sorted(names):
        kind, quoted, family = objects[name]
        results += _object_results(
            name,
            kind,
            quoted,
            source_grants.get(name, {}),
            target_grants.get(name, {}),
            known[family],
        )
    return results
