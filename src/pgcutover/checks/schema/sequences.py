"""Sequences: same definition as on the source, and a target position beyond every value
already stored by a column that draws from it (OWNED BY, identity, or a nextval default).
A restore that did not advance a sequence is a NO-GO: the app's next insert hits a duplicate
key. A sequence no column uses must at least have reached the source's position."""

from __future__ import annotations

from typing import Any

from psycopg import sql

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

SEQUENCES = f"""
SELECT n.nspname || '.' || c.relname, n.nspname, c.relname,
       format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND {not_extension_member("pg_class", "c.oid")}
"""

#: Columns that draw from a sequence: OWNED BY / identity links, and nextval() defaults.
#: Only numeric columns, whose max() is comparable with the sequence's position.
USERS = """
WITH links AS (
    SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS attnum
    FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
    UNION
    SELECT d.refobjid, ad.adrelid, ad.adnum
    FROM pg_depend d
    JOIN pg_attrdef ad ON ad.oid = d.objid
    JOIN pg_sequence s ON s.seqrelid = d.refobjid
    WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
)
SELECT sn.nspname || '.' || sc.relname, tn.nspname || '.' || tc.relname || '.' || a.attname,
       format('%%I.%%I', tn.nspname, tc.relname), quote_ident(a.attname), s.seqincrement > 0
FROM links
JOIN pg_sequence s ON s.seqrelid = links.seq
JOIN pg_class sc ON sc.oid = links.seq JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_class tc ON tc.oid = links.rel JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_attribute a ON a.attrelid = links.rel AND a.attnum = links.attnum
JOIN pg_type t ON t.oid = a.atttypid
WHERE sn.nspname = ANY(%(schemas)s) AND t.typcategory = 'N' AND tc.relkind IN ('r', 'p')
ORDER BY 1, 2, 3, 4
"""

DEFINITION = ("type", "start", "increment", "min", "max", "cache", "cycle")


def read_sequences(side: Side) -> dict[str, dict[str, Any]]:
    """schema.sequence -> definition, and the next value nextval() would return."""
    sequences = {}
    for name, schema, relname, *definition in side.rows(SEQUENCES):
        spec = dict(zip(DEFINITION, definition, strict=True))
        query = sql.SQL("SELECT last_value, is_called FROM {}").format(
            sql.Identifier(schema, relname)
        )
        last_value, is_called = side.conn.execute(query).fetchone()  # type: ignore[misc]
        spec["_next"] = last_value + spec["increment"] if is_called else last_value
        spec["_sql"] = sql.Identifier(schema, relname).as_string()
        sequences[name] = spec
    return sequences


def column_extremes(side: Side) -> dict[str, list[tuple[str, Any, str]]]:
    """schema.sequence -> [(schema.table.column, its max (min when descending), the SQL
    that reads it)] on `side`."""
    users: dict[str, list[tuple[str, Any, str]]] = {}
    for sequence, column, qualified_table, quoted_column, ascending in side.rows(USERS):
        read = f"SELECT {'max' if ascending else 'min'}({quoted_column}) FROM {qualified_table}"
        value = side.conn.execute(sql.SQL(read)).fetchone()[0]  # type: ignore[arg-type,index]
        users.setdefault(sequence, []).append((column, value, read))
    return users


def _position(
    spec: dict[str, Any], used: list[tuple[str, Any, str]], source_next: int
) -> tuple[bool, str, str]:
    """(ok, message, remedy) for where the target's sequence stands."""
    ascending = spec["increment"] > 0
    stored = [(column, value) for column, value, _ in used if value is not None]
    if stored:
        column, extreme = (max if ascending else min)(stored, key=lambda item: item[1])
        ahead = spec["_next"] > extreme if ascending else spec["_next"] < extreme
        if ahead:
            return True, f"next value {spec['_next']} is beyond {column}'s {extreme}", ""
        reads = ", ".join(f"({read})" for _, _, read in used)
        pick = "greatest" if ascending else "least"
        return (
            False,
            f"next value {spec['_next']} on the target, but {column} already holds {extreme}: "
            "the app's next insert fails with a duplicate key (the restore did not advance "
            "the sequence)",
            f"SELECT setval('{spec['_sql']}', {pick}({reads}));",
        )
    ahead = spec["_next"] >= source_next if ascending else spec["_next"] <= source_next
    users = "no column holds a value from it" if used else "no column draws from it"
    if ahead:
        return True, f"{users}; next value {spec['_next']} (source: {source_next})", ""
    return (
        False,
        f"{users}, and its next value {spec['_next']} is behind the source's {source_next}: "
        "values the source already handed out would be handed out again",
        f"SELECT setval('{spec['_sql']}', {source_next}, false);",
    )


def compare(source: Side, target: Side, settings: Settings) -> list[CheckResult]:
    """One result per sequence: definition and position."""
    source_sequences, target_sequences = read_sequences(source), read_sequences(target)
    users = column_extremes(target)
    results = []
    for name, src, dst in paired(source_sequences, target_sequences):
        check_id = f"schema.sequence.{name}"
        if dst is None:
            results.append(
                result(
                    check_id,
                    False,
                    f"sequence {name} is missing on the target",
                    source=src,
                    remedy="re-migrate; then SELECT setval(...) to the source's position",
                )
            )
            continue
        if src is None:
            results.append(
                result(
                    check_id,
                    False,
                    f"sequence {name} exists only on the target",
                    target=dst,
                    remedy="drop it if it is not intended",
                )
            )
            continue
        definition, target_definition = visible(src) or {}, visible(dst) or {}
        diffs = differences(definition, target_definition)
        ok, message, remedy = _position(dst, users.get(name, []), src["_next"])
        if diffs:
            ok = False
            message = f"definition differs ({explain(diffs)}); {message}"
            remedy = f"ALTER SEQUENCE {dst['_sql']} ... as on the source; {remedy}".rstrip("; ")
        results.append(
            result(
                check_id,
                ok,
                f"sequence {name}: {message}",
                source={**definition, "next_value": src["_next"]},
                target={**target_definition, "next_value": dst["_next"]},
                remedy=remedy,
                details={"columns": [column for column, _, _ in users.get(name, [])]},
            )
        )
    return results
