"""Views, materialized views and functions/procedures, compared by the definition text the
server deparses (pg_get_viewdef, pg_get_functiondef: the body plus language, volatility,
SECURITY DEFINER, SET options), white space folded. A materialized view must also be
populated as on the source. Aggregates have no pg_get_functiondef: their signature and
result type are compared."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import Side, Spec, compare_each, normalise, not_extension_member
from pgcutover.config import Settings

VIEWS = f"""
SELECT n.nspname || '.' || c.relname, c.relkind, pg_get_viewdef(c.oid, true), c.relispopulated,
       format('%%I.%%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY(%(schemas)s)
  AND {not_extension_member("pg_class", "c.oid")}
"""

FUNCTIONS = f"""
SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       p.prokind,
       CASE WHEN p.prokind = 'a'
            THEN 'aggregate ' || pg_get_function_arguments(p.oid) || ' returns '
                 || pg_get_function_result(p.oid)
            ELSE pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_proc", "p.oid")}
"""

PROKINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}


def read_views(side: Side) -> dict[str, dict[str, Any]]:
    """schema.view -> kind, definition (folded), populated (materialized views)."""
    return {
        name: {
            "kind": "materialized view" if kind == "m" else "view",
            "definition": normalise(definition),
            "populated": populated if kind == "m" else None,
            "_sql": (kind, quoted, definition),
        }
        for name, kind, definition, populated, quoted in side.rows(VIEWS)
    }


def read_functions(side: Side) -> dict[str, dict[str, Any]]:
    """schema.name(args) -> kind, definition (folded)."""
    return {
        name: {
            "kind": PROKINDS.get(kind, kind),
            "definition": normalise(definition),
            "_sql": definition,
        }
        for name, kind, definition in side.rows(FUNCTIONS)
    }


def _view_remedy(source: Spec | None, target: Spec | None) -> str:
    if source is None:
        kind, quoted, _ = target["_sql"]  # type: ignore[index]
        return f"DROP {'MATERIALIZED VIEW' if kind == 'm' else 'VIEW'} {quoted};"
    kind, quoted, definition = source["_sql"]
    if kind == "m":
        refresh = f"REFRESH MATERIALIZED VIEW {quoted};"
        if target is not None and target["definition"] == source["definition"]:
            return refresh
        return (
            f"DROP MATERIALIZED VIEW IF EXISTS {quoted}; "
            f"CREATE MATERIALIZED VIEW {quoted} AS {definition}"
        )
    return f"CREATE OR REPLACE VIEW {quoted} AS {definition}"


def _function_remedy(source: Spec | None, target: Spec | None) -> str:
    if source is None:
        return "DROP FUNCTION ... on the target if it is not intended"
    return f"{source['_sql'].strip()};  (the source's definition)"


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per view and per function."""
    return [
        *compare_each(
            "schema.view",
            "view",
            read_views(source),
            read_views(target),
            _view_remedy,
            lambda _: "same definition",
        ),
        *compare_each(
            "schema.function",
            "function",
            read_functions(source),
            read_functions(target),
            _function_remedy,
            lambda _: "same definition",
        ),
    ]
