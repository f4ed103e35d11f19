"""Database-wide facts: encoding, default collation and character classification (and the
locale provider), every schema of the source present on the target, and user-defined
collations. A different collation changes ORDER BY on text and what a unique text index
considers equal."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import (
    Side,
    compare_each,
    compared,
    not_extension_member,
    result,
)
from pgcutover.config import Settings

PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin", "d": "database default"}

DATABASE = """
SELECT pg_encoding_to_char(d.encoding), to_jsonb(d)
FROM pg_database d WHERE d.datname = current_database()
"""

SCHEMAS = f"""
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_namespace", "n.oid")}
"""

COLLATIONS = f"""
SELECT n.nspname || '.' || c.collname, to_jsonb(c)
FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_collation", "c.oid")}
"""


def _locale(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Provider, collate, ctype, locale and ICU rules from a pg_database or pg_collation row
    (column names differ between PostgreSQL versions: daticulocale became datlocale)."""
    provider = row.get(f"{prefix}locprovider") or row.get(f"{prefix}provider")
    return {
        "provider": PROVIDERS.get(provider, provider),
        "collate": row.get(f"{prefix}collate"),
        "ctype": row.get(f"{prefix}ctype"),
        "locale": row.get(f"{prefix}locale") or row.get(f"{prefix}iculocale"),
        "icu_rules": row.get(f"{prefix}icurules"),
    }


def _database(side: Side) -> tuple[str, dict[str, Any]]:
    encoding, row = side.rows(DATABASE)[0]
    return encoding, _locale(row, "dat")


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """Encoding, database collation, schemas, user-defined collations."""
    source_encoding, source_locale = _database(source)
    target_encoding, target_locale = _database(target)
    recreate = (
        f"create the target database with ENCODING '{source_encoding}' LC_COLLATE "
        f"'{source_locale['collate']}' LC_CTYPE '{source_locale['ctype']}' LOCALE_PROVIDER "
        f"{source_locale['provider']} TEMPLATE template0, then re-migrate"
    )
    results = [
        result(
            "schema.database.encoding",
            source_encoding == target_encoding,
            f"database encoding {source_encoding} on the source, {target_encoding} on the target",
            source=source_encoding,
            target=target_encoding,
            remedy=recreate,
        ),
        compared(
            "schema.database.collation",
            "default collation",
            source_locale,
            target_locale,
            what="database",
            remedy=recreate,
            passed=f"{target_locale['provider']} {target_locale['collate']} on both sides",
        ),
    ]
    source_schemas = {row[0] for row in source.rows(SCHEMAS)}
    target_schemas = {row[0] for row in target.rows(SCHEMAS)}
    for schema in sorted(source_schemas):
        results.append(
            result(
                f"schema.namespace.{schema}",
                schema in target_schemas,
                f"schema {schema} "
                + (
                    "exists on the target"
                    if schema in target_schemas
                    else "is missing on the target"
                ),
                remedy=f"re-migrate; pg_dump must not exclude schema {schema}",
            )
        )
    results += compare_each(
        "schema.collation",
        "collation",
        {name: _locale(row, "coll") for name, row in source.rows(COLLATIONS)},
        {name: _locale(row, "coll") for name, row in target.rows(COLLATIONS)},
        lambda src, dst: (
            "CREATE COLLATION ... as on the source (an ICU collation needs ICU on "
            "the target server)"
            if src
            else "DROP COLLATION ... if it is not intended"
        ),
        lambda dst: "same provider and locale",
    )
    return results
