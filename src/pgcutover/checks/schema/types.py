"""User-defined types: enum labels in order (a lost label makes inserts of that value fail),
domains (base type, NOT NULL, default, constraints), composite types (attributes) and range
types (subtype). Columns name their type; this is where the type itself is compared."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import Side, Spec, compare_each, not_extension_member
from pgcutover.config import Settings

KINDS = {"e": "enum", "d": "domain", "c": "composite", "r": "range", "b": "base"}

TYPES = f"""
SELECT n.nspname || '.' || t.typname, t.typtype,
       CASE t.typtype
         WHEN 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
         WHEN 'd' THEN ARRAY[format_type(t.typbasetype, t.typtypmod),
                             CASE WHEN t.typnotnull THEN 'NOT NULL' ELSE 'NULL' END,
                             'DEFAULT ' || coalesce(t.typdefault, 'none')]
                       || ARRAY(SELECT con.conname || ' ' || pg_get_constraintdef(con.oid)
                                FROM pg_constraint con WHERE con.contypid = t.oid ORDER BY 1)
         WHEN 'c' THEN ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                             FROM pg_attribute a WHERE a.attrelid = t.typrelid
                               AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
         WHEN 'r' THEN ARRAY(SELECT format_type(r.rngsubtype, NULL) FROM pg_range r
                             WHERE r.rngtypid = t.oid)
         ELSE ARRAY[]::text[] END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('e', 'd', 'c', 'r', 'b')
  AND (t.typrelid = 0 OR c.relkind = 'c')
  AND NOT (t.typtype = 'b' AND t.typcategory = 'A')
  AND {not_extension_member("pg_type", "t.oid")}
"""


def read_types(side: Side) -> dict[str, dict[str, Any]]:
    """schema.type -> kind and definition (labels, domain parts, attributes, subtype)."""
    return {
        name: {"kind": KINDS.get(kind, kind), "definition": list(definition), "_name": name}
        for name, kind, definition in side.rows(TYPES)
    }


def _remedy(source: Spec | None, target: Spec | None) -> str:
    spec = source or target
    name = spec["_name"] if spec else ""
    if source is not None and source["kind"] == "enum":
        return f"ALTER TYPE {name} ADD VALUE ... for each missing label, in the source's order"
    return (
        f"recreate type {name} as on the source (DROP/CREATE, or ALTER DOMAIN / ALTER TYPE), "
        "then re-migrate the columns that use it"
    )


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per user-defined type."""
    return compare_each(
        "schema.type",
        "type",
        read_types(source),
        read_types(target),
        _remedy,
        lambda dst: f"{dst['kind']} with the same definition",
    )
