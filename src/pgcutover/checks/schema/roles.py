"""Roles the schema references (owners, grantees, policy roles, and their direct members, as
the migration carries them): each exists on the target with compatible attributes and the
same memberships among them (their settings: the settings check). SUPERUSER, BYPASSRLS or
REPLICATION the source has and the target lacks is judged by the platform check
(platform.role.*), with its consequence (the migration never creates superusers; a managed
server's owner cannot give the other two); the reverse fails, since such a role bypasses
every policy. Memberships PostgreSQL grants a CREATEROLE role in the roles it creates
(PostgreSQL 16+) are not the source's and not a difference."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import Side, differences, explain, result
from pgcutover.config import Settings
from pgcutover.migrate.capabilities import PRIVILEGED_ATTRIBUTES
from pgcutover.migrate.roles import Membership, referenced_roles, role_memberships

ATTRIBUTES = """
SELECT rolname, rolcanlogin, rolinherit, rolbypassrls, rolcreatedb, rolcreaterole, rolsuper,
       rolreplication, rolconnlimit
FROM pg_roles WHERE rolname = ANY(%(names)s)
"""


def _membership(membership: Membership, options: bool) -> str:
    flags = ["admin"] if membership.admin else []
    if options:
        flags += [
            "inherit" if membership.inherit else "noinherit",
            "set" if membership.set else "noset",
        ]
    return f"{membership.role} ({', '.join(flags)})" if flags else membership.role


def _profile(row: tuple[Any, ...], memberships: list[Membership], options: bool) -> dict[str, Any]:
    name, login, inherit, bypassrls, createdb, createrole, superuser, replication, limit = row
    return {
        "login": login,
        "inherit": inherit,
        "bypassrls": bypassrls,
        "createdb": createdb,
        "createrole": createrole,
        "superuser": superuser,
        "replication": replication,
        "connection_limit": limit,
        "member_of": sorted(_membership(m, options) for m in memberships if m.member == name),
    }


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per carried role."""
    wanted = referenced_roles(source.conn, settings.ignored_schemas)
    names = [role.name for role in wanted if role.name not in source.ignored_roles]
    options = source.version >= 160000 and target.version >= 160000
    source_memberships = role_memberships(source.conn, names)
    on_source = {(m.role, m.member) for m in source_memberships}
    target_memberships = [
        m
        for m in role_memberships(target.conn, names)
        if not m.implicit or (m.role, m.member) in on_source
    ]
    source_rows = {row[0]: row for row in source.rows(ATTRIBUTES, names=names)}
    target_rows = {row[0]: row for row in target.rows(ATTRIBUTES, names=names)}
    results = []
    for name in names:
        check_id = f"schema.role.{name}"
        src = _profile(source_rows[name], source_memberships, options)
        if name not in target_rows:
            results.append(
                result(
                    check_id,
                    False,
                    f"role {name} (referenced by the schema) does not exist on the target: "
                    "grants and policies naming it could not be restored",
                    source=src,
                    remedy=f"CREATE ROLE {name} with the source's attributes (pgcutover's "
                    "migration does this), then re-migrate the grants",
                )
            )
            continue
        dst = _profile(target_rows[name], target_memberships, options)
        diffs = differences(src, dst)
        withheld = [a for a in PRIVILEGED_ATTRIBUTES if src[a] and not dst[a]]
        for attribute in withheld:
            diffs.pop(attribute)
        if diffs:
            results.append(
                result(
                    check_id,
                    False,
                    f"role {name} differs: {explain(diffs)}",
                    source=src,
                    target=dst,
                    remedy=f"ALTER ROLE {name} ... / GRANT ... TO {name} until it matches the "
                    "source (never make it a superuser)",
                    details={"differences": diffs},
                )
            )
            continue
        note = (
            f" ({', '.join(a.upper() for a in withheld)} on the source only: judged by "
            f"platform.role.{name})"
            if withheld
            else ""
        )
        results.append(
            result(
                check_id,
                True,
                f"role {name} exists with the source's attributes and memberships{note}",
                source=src,
                target=dst,
            )
        )
    return results
