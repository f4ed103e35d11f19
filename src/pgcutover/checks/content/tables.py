"""What to compare: every table of the migrated schemas, its key, and how each column is read
so that equal values give equal bytes on two servers of different versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

#: OIDs below this belong to PostgreSQL itself and are the same on every server.
FIRST_USER_OID = 16384
#: pgvector's types: their binary form (dimensions, then IEEE floats) carries no OID, so it is
#: the same on every server and pgvector version, and exact to the last bit of every float.
VECTOR_TYPES = ("vector", "halfvec", "sparsevec")
TEXT_OID = 25

#: Column kinds. builtin: a core type, read as is. domain: a domain over a core type, read as
#: its base type. vector: a pgvector type, read in its binary form. text: anything else (enums,
#: composites, other extensions' types, OID-valued reg* types): compared through its text form,
#: because its binary form embeds OIDs that differ between two servers.
BUILTIN, DOMAIN, VECTOR, TEXT = "builtin", "domain", "vector", "text"

TABLES = """
SELECT c.oid, n.nspname, c.relname, c.reltuples, c.relpages
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> ALL(%s) AND n.nspname !~ '^pg_(temp|toast_temp)_'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
"""

COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, NULL), t.typtype, t.oid,
       b.oid, b.typtype, format_type(b.oid, NULL), b.typname,
       EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
               WHERE d.classid = 'pg_type'::regclass AND d.objid = b.oid AND d.deptype = 'e'
                 AND e.extname = 'vector'),
       quote_ident(sn.nspname) || '.' || quote_ident(sp.proname), a.attgenerated <> ''
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_proc sp ON sp.oid = b.typsend
LEFT JOIN pg_namespace sn ON sn.oid = sp.pronamespace
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

#: Primary keys and unique, valid, non-partial, column-only indexes over NOT NULL columns.
KEYS = """
SELECT i.indrelid, i.indisprimary, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = ANY(%s) AND i.indisunique AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
GROUP BY i.indexrelid, i.indrelid, i.indisprimary
HAVING bool_and(a.attnotnull)
ORDER BY i.indrelid, i.indisprimary DESC, count(*), min(i.indexrelid::regclass::text)
"""


@dataclass(frozen=True)
class Column:
    """One column as one server declares it."""

    name: str
    type_name: str
    kind: str
    base_type: str
    base_oid: int
    send_function: str | None
    generated: bool = False

    @property
    def wire_oid(self) -> int:
        """The type of this column's values in a binary COPY stream (to decode keys)."""
        return TEXT_OID if self.kind == TEXT else self.base_oid


@dataclass(frozen=True)
class Shape:
    """A table as one server holds it."""

    schema: str
    name: str
    columns: dict[str, Column]
    key: tuple[str, ...]
    estimated_rows: float
    pages: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Planned:
    """A column read on both sides: as itself, or as text when the two sides disagree on
    its type (then equal text is equal content, and the schema check reports the type)."""

    source: Column
    target: Column

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def wire_oid(self) -> int:
        """The type of this column's values in the stream (to decode keys for the report)."""
        return TEXT_OID if self.as_text else self.source.wire_oid

    @property
    def as_text(self) -> bool:
        return (
            TEXT in (self.source.kind, self.target.kind)
            or self.source.kind != self.target.kind
            or self.source.base_type != self.target.base_type
        )


@dataclass(frozen=True)
class TablePlan:
    """One table to compare: its key (from the source; empty when it has none) and the
    columns both sides hold, key columns first."""

    schema: str
    name: str
    key: tuple[str, ...]
    columns: tuple[Planned, ...]
    only_on_source: tuple[str, ...]
    only_on_target: tuple[str, ...]
    estimated_rows: float
    pages: int
    generated: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def key_columns(self) -> tuple[Planned, ...]:
        return self.columns[: len(self.key)]


def _column(row: tuple) -> Column:
    """Classify a COLUMNS row: how its values can be read identically on both servers."""
    name, type_name, typtype, type_oid, base_oid, base_typtype, base_type, base_name = row[:8]
    vectorlike, send, generated = row[8], row[9], row[10]
    portable = (
        base_oid < FIRST_USER_OID
        and base_typtype in ("b", "r", "m")
        and not base_name.lstrip("_").startswith("reg")
    )
    if vectorlike and base_name in VECTOR_TYPES and send:
        kind = VECTOR
    elif not portable:
        kind = TEXT
    elif typtype == "d" and type_oid >= FIRST_USER_OID:
        kind = DOMAIN
    else:
        kind = BUILTIN
    return Column(name, type_name, kind, base_type, base_oid, send, generated)


def shapes(conn: psycopg.Connection, ignored: Sequence[str]) -> dict[str, Shape]:
    """Every ordinary table outside `ignored` (partitions included, partitioned parents left
    out: their rows live in the partitions), by `schema.table`."""
    tables = conn.execute(TABLES, (list(ignored),)).fetchall()
    oids = [row[0] for row in tables]
    columns: dict[int, dict[str, Column]] = {oid: {} for oid in oids}
    for row in conn.execute(COLUMNS, (oids,)).fetchall():
        column = _column(row[1:])
        columns[row[0]][column.name] = column
    keys: dict[int, tuple[str, ...]] = {}
    for relid, _primary, names in conn.execute(KEYS, (oids,)).fetchall():
        keys.setdefault(relid, tuple(names))
    return {
        f"{schema}.{name}": Shape(schema, name, columns[oid], keys.get(oid, ()), rows, pages)
        for oid, schema, name, rows, pages in tables
    }


def plan(source: Shape, target: Shape) -> TablePlan:
    """Key columns first, then the other columns both sides have, in the source's order;
    stored generated columns apart (the target's server computes them: see generated.py)."""
    names = [*source.key, *(name for name in source.columns if name not in source.key)]
    both = [name for name in names if name in target.columns]
    computed = {n for n in both if source.columns[n].generated or target.columns[n].generated}
    common = [name for name in both if name not in computed]
    return TablePlan(
        schema=source.schema,
        name=source.name,
        key=source.key if all(name in target.columns for name in source.key) else (),
        columns=tuple(Planned(source.columns[n], target.columns[n]) for n in common),
        only_on_source=tuple(n for n in source.columns if n not in target.columns),
        only_on_target=tuple(n for n in target.columns if n not in source.columns),
        estimated_rows=source.estimated_rows,
        pages=source.pages,
        generated=tuple(name for name in both if name in computed),
    )
