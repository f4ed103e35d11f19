"""Indexes by name: table, access method, uniqueness, key columns or expressions with their
operator classes, collations and ordering, INCLUDE columns, predicate, and options taken
with the access method's defaults (HNSW m / ef_construction, ivfflat lists). An index that
is invalid on the target (a failed or interrupted build) fails even where the rest matches."""

from __future__ import annotations

from typing import Any

from pgcutover.checks.base import CheckResult
from pgcutover.checks.schema.common import (
    Side,
    differences,
    explain,
    not_extension_member,
    paired,
    result,
    visible,
)
from pgcutover.config import Settings

#: pg_index.indoption bits.
DESC, NULLS_FIRST = 1, 2
BOOLEAN_WORDS = {"true": "on", "yes": "on", "false": "off", "no": "off"}

INDEXES = f"""
SELECT n.nspname || '.' || i.relname, tn.nspname || '.' || t.relname, am.amname,
       x.indisunique, x.indisvalid, x.indnkeyatts,
       ARRAY(
           SELECT pg_get_indexdef(x.indexrelid, k, true)
                  || CASE WHEN k <= x.indnkeyatts THEN
                         coalesce(' COLLATE ' || quote_ident(nullif(co.collname, 'default')), '')
                         || ' ' || opc.opcname
                         || CASE WHEN x.indoption[k - 1] & {DESC} <> 0 THEN ' DESC' ELSE '' END
                         || CASE WHEN x.indoption[k - 1] & {NULLS_FIRST} <> 0
                                 THEN ' NULLS FIRST' ELSE '' END
                     ELSE '' END
           FROM generate_series(1, x.indnatts) AS k
           LEFT JOIN pg_opclass opc ON opc.oid = x.indclass[k - 1]
           LEFT JOIN pg_collation co ON co.oid = x.indcollation[k - 1]
           ORDER BY k
       ),
       pg_get_expr(x.indpred, x.indrelid), coalesce(i.reloptions, '{{}}'),
       pg_get_indexdef(x.indexrelid), format('%%I.%%I', n.nspname, i.relname),
       {{nulls_not_distinct}}
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_class", "t.oid")}
"""


def _options(method: str, reloptions: list[str], defaults: dict[str, Any]) -> dict[str, str]:
    """Effective options: the access method's defaults overridden by the index's own."""
    options = {key: str(value) for key, value in defaults.get(method, {}).items()}
    for item in reloptions:
        key, _, value = item.partition("=")
        options[key] = BOOLEAN_WORDS.get(value.lower(), value)
    return options


def read_indexes(side: Side, defaults: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """schema.index -> its definition in parts, plus validity and the full CREATE INDEX."""
    nulls = "x.indnullsnotdistinct" if side.version >= 150000 else "false"
    indexes = {}
    for row in side.rows(INDEXES.replace("{nulls_not_distinct}", nulls)):
        name, table, method, unique, valid, nkey, columns, predicate, reloptions = row[:9]
        definition, qualified, nulls_not_distinct = row[9:]
        indexes[name] = {
            "table": table,
            "method": method,
            "unique": unique,
            "nulls_not_distinct": nulls_not_distinct,
            "columns": columns[:nkey],
            "include": columns[nkey:],
            "predicate": predicate,
            "options": _options(method, reloptions, defaults),
            "_valid": valid,
            "_definition": definition,
            "_qualified": qualified,
        }
    return indexes


def _summary(index: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted(index["options"].items()))
    unique = "unique " if index["unique"] else ""
    return f"{unique}{index['method']} ({', '.join(index['columns'])}) [{options}]"


def _judge(name: str, src: dict[str, Any] | None, dst: dict[str, Any] | None) -> CheckResult:
    """Missing, extra, invalid on the target, different, or the same."""
    check_id = f"schema.index.{name}"
    if dst is None and src is not None:
        if not src["_valid"]:
            return result(
                check_id,
                True,
                f"index {name} is invalid on the source (a failed build) and, as pg_dump skips "
                "invalid indexes, absent on the target",
                source=src["_definition"],
            )
        return result(
            check_id,
            False,
            f"index {name} ({_summary(src)}) is missing on the target",
            source=src["_definition"],
            remedy=f"{src['_definition']};",
        )
    if src is None and dst is not None:
        invalid = ", and INVALID" if not dst["_valid"] else ""
        return result(
            check_id,
            False,
            f"index {name} ({_summary(dst)}) exists only on the target{invalid}: it slows "
            "every write (and a unique one rejects rows the source accepts)",
            target=dst["_definition"],
            remedy=f"DROP INDEX {dst['_qualified']}; if it is not intended",
        )
    if not dst["_valid"]:
        return result(
            check_id,
            False,
            f"index {name} is INVALID on the target (indisvalid = false: a failed or interrupted "
            "build); the planner ignores it, yet writes still maintain it",
            source=src["_definition"],
            target=dst["_definition"] + " -- INVALID",
            remedy=f"REINDEX INDEX CONCURRENTLY {dst['_qualified']};",
        )
    diffs = differences(visible(src) or {}, visible(dst) or {})
    if diffs:
        return result(
            check_id,
            False,
            f"index {name} differs: {explain(diffs)}",
            source=src["_definition"],
            target=dst["_definition"],
            remedy=f"DROP INDEX {dst['_qualified']}; {src['_definition']}; (or CREATE the new "
            "one under another name first, then drop the old, to keep queries fast meanwhile)",
            details={"differences": diffs},
        )
    return result(
        check_id,
        True,
        f"index {name}: {_summary(dst)}, valid, as on the source",
        source=src["_definition"],
        target=dst["_definition"],
    )


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per index found on either side."""
    defaults = settings.section("schema").get("index_option_defaults", {})
    source_indexes = read_indexes(source, defaults)
    target_indexes = read_indexes(target, defaults)
    return [_judge(name, src, dst) for name, src, dst in paired(source_indexes, target_indexes)]
