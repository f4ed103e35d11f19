"""Table constraints by name: primary keys, unique, foreign keys, checks, exclusions, with
their definition and whether they are validated (NOT VALID on the target when the source's is
validated means existing rows were never checked). PostgreSQL 18 also lists NOT NULL as
constraints; nullability is compared with the columns instead, so versions agree."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import (
    Side,
    Spec,
    compare_each,
    differences,
    failures_or,
    not_extension_member,
    paired,
    result,
    visible,
)
from pgcutover.config import Settings

KINDS = {
    "p": "primary key",
    "u": "unique",
    "f": "foreign key",
    "c": "check",
    "x": "exclusion",
    "t": "constraint trigger",
}
NOT_VALID = re.compile(r"\s+NOT VALID$")

CONSTRAINTS = f"""
SELECT n.nspname || '.' || c.relname, con.conname, con.contype,
       pg_get_constraintdef(con.oid), con.convalidated,
       format('%%I.%%I', n.nspname, c.relname), quote_ident(con.conname)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype <> 'n' AND n.nspname = ANY(%(schemas)s)
  AND {not_extension_member("pg_class", "c.oid")}
"""


def read_constraints(side: Side) -> dict[str, dict[str, dict[str, Any]]]:
    """schema.table -> schema.table.constraint -> kind, definition (without NOT VALID),
    validated."""
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for table, name, kind, definition, validated, qtable, qname in side.rows(CONSTRAINTS):
        tables.setdefault(table, {})[f"{table}.{name}"] = {
            "kind": KINDS.get(kind, kind),
            "definition": NOT_VALID.sub("", definition),
            "validated": validated,
            "_sql": (qtable, qname, definition),
        }
    return tables


def _remedy(source: Spec | None, target: Spec | None) -> str:
    if source is None:
        qtable, qname, _ = target["_sql"]  # type: ignore[index]
        return f"ALTER TABLE {qtable} DROP CONSTRAINT {qname}"
    qtable, qname, definition = source["_sql"]
    add = f"ALTER TABLE {qtable} ADD CONSTRAINT {qname} {definition}"
    if target is None:
        return f"{add} (fix or remove violating rows first)"
    if set(differences(visible(source) or {}, visible(target) or {})) == {"validated"}:
        return (
            f"ALTER TABLE {qtable} VALIDATE CONSTRAINT {qname} (existing rows were never "
            "checked against it; fix violating rows first)"
        )
    return f"ALTER TABLE {qtable} DROP CONSTRAINT {qname}; {add}"


def _summary(table: str, source: dict[str, Spec], target: dict[str, Spec]) -> CheckResult:
    kinds = sorted({spec["kind"] for spec in source.values()})
    return result(
        f"schema.constraint.{table}",
        True,
        f"{table}: {len(source)} constraints ({', '.join(kinds)}) match in definition and are "
        "validated as on the source",
        source=sorted(source),
        target=sorted(target),
    )


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """Per table with constraints: one pass, or one failure per differing constraint."""
    source_tables, target_tables = read_constraints(source), read_constraints(target)
    results: list[CheckResult] = []
    for table, src, dst in paired(source_tables, target_tables):
        src, dst = src or {}, dst or {}
        verdicts = compare_each(
            "schema.constraint", "constraint", src, dst, _remedy, lambda _: "same"
        )
        results += failures_or(verdicts, partial(_summary, table, src, dst))
    return results
