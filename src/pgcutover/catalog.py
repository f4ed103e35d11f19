"""Catalog queries shared by the migration and the checks: what a database holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

#: pgvector's approximate-nearest-neighbour index methods.
VECTOR_METHODS = ("hnsw", "ivfflat")
#: pgvector operator classes and the distance operator each one serves.
OPCLASS_OPERATORS = {
    f"{kind}_{metric}_ops": operator
    for kind in ("vector", "halfvec", "sparsevec")
    for metric, operator in (("cosine", "<=>"), ("l2", "<->"), ("ip", "<#>"), ("l1", "<+>"))
} | {"bit_hamming_ops": "<~>", "bit_jaccard_ops": "<%>"}
#: pgvector's distance operators, by a short name for shape names.
OPERATOR_NAMES = {
    "<=>": "cosine",
    "<->": "l2",
    "<#>": "ip",
    "<+>": "l1",
    "<~>": "hamming",
    "<%>": "jaccard",
}
#: The operator a search orders by when no index tells which one the app uses.
DEFAULT_OPERATORS = {"vector": "<=>", "halfvec": "<=>", "sparsevec": "<=>", "bit": "<~>"}
#: Operator classes of text-search indexes, by the kind of search they serve.
TRIGRAM_OPCLASSES = ("gin_trgm_ops", "gist_trgm_ops")


@dataclass(frozen=True)
class VectorColumn:
    """A pgvector column and its declared dimension (None when declared without one)."""

    schema: str
    table: str
    column: str
    type_name: str
    dimensions: int | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


def user_schema_oids(conn: psycopg.Connection, ignored: Sequence[str]) -> dict[str, int]:
    """Schemas the migration carries, name -> OID, by name: everything but system schemas,
    temp/toast and `ignored`."""
    rows = conn.execute(
        "SELECT nspname, oid FROM pg_namespace WHERE nspname <> ALL(%s)"
        " AND nspname !~ '^pg_(temp|toast_temp)_' ORDER BY 1",
        (list(ignored),),
    ).fetchall()
    return {name: int(oid) for name, oid in rows}


def user_schemas(conn: psycopg.Connection, ignored: Sequence[str]) -> list[str]:
    """The names of the schemas the migration carries (see user_schema_oids)."""
    return list(user_schema_oids(conn, ignored))


def user_tables(conn: psycopg.Connection, ignored: Sequence[str]) -> list[tuple[str, str]]:
    """Ordinary and partitioned tables outside `ignored`, excluding extension members."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s)
          AND n.nspname !~ '^pg_(temp|toast_temp)_'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.deptype = 'e')
        ORDER BY 1, 2
        """,
        (list(ignored),),
    ).fetchall()
    return [(schema, table) for schema, table in rows]


def vector_columns(conn: psycopg.Connection, ignored: Sequence[str]) -> list[VectorColumn]:
    """Columns of pgvector's types (vector, halfvec, sparsevec) with their declared typmod."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, a.attname, t.typname,
               CASE WHEN a.atttypmod > 0 THEN a.atttypmod END
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE t.typname IN ('vector', 'halfvec', 'sparsevec') AND a.attnum > 0
          AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s)
        ORDER BY 1, 2, 3
        """,
        (list(ignored),),
    ).fetchall()
    return [VectorColumn(*row) for row in rows]


def extension_version(conn: psycopg.Connection, name: str) -> str | None:
    """Installed version of an extension in this database, or None."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (name,)).fetchone()
    return row[0] if row else None


def available_extension(conn: psycopg.Connection, name: str) -> str | None:
    """The version CREATE EXTENSION would install on this server, or None (the guide's
    `pg_available_extensions` check)."""
    row = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = %s", (name,)
    ).fetchone()
    return row[0] if row else None


def server_version(conn: psycopg.Connection) -> str:
    """`server_version`, e.g. '18.6'."""
    return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


@dataclass(frozen=True)
class AnnIndex:
    """An HNSW or ivfflat index on one vector column, with its operator class; `expression`
    is the indexed expression of an expression index (e.g. `(embedding)::halfvec(384)`), and
    `input_type` the type its operator class takes (what a query must cast its value to)."""

    schema: str
    table: str
    name: str
    method: str
    column: str | None
    opclass: str
    valid: bool
    definition: str
    expression: str | None = None
    input_type: str = "vector"
    input_type_schema: str = "public"
    options: tuple[str, ...] = ()

    @property
    def operator(self) -> str | None:
        return OPCLASS_OPERATORS.get(self.opclass)


#: The column an index reads: its first key column, or for an expression index the column
#: the expression depends on.
_INDEXED_COLUMN = """
coalesce(a.attname, (SELECT da.attname FROM pg_depend d
         JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = i.oid
           AND d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid
           AND d.refobjsubid > 0 ORDER BY d.refobjsubid LIMIT 1))
"""


def ann_indexes(conn: psycopg.Connection, ignored: Sequence[str]) -> list[AnnIndex]:
    """HNSW and ivfflat indexes with the column and operator class they serve (and, for an
    expression index such as one on `embedding::halfvec(384)`, the expression)."""
    rows = conn.execute(
        f"""
        SELECT n.nspname, t.relname, i.relname, am.amname, {_INDEXED_COLUMN}, oc.opcname,
               x.indisvalid, pg_get_indexdef(i.oid),
               CASE WHEN x.indkey[0] = 0 THEN pg_get_indexdef(i.oid, 1, true) END,
               it.typname, itn.nspname, coalesce(i.reloptions, '{{}}')
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = i.relam
        LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
            AND x.indkey[0] <> 0
        JOIN pg_opclass oc ON oc.oid = x.indclass[0]
        JOIN pg_type it ON it.oid = oc.opcintype
        JOIN pg_namespace itn ON itn.oid = it.typnamespace
        WHERE am.amname = ANY(%s) AND n.nspname <> ALL(%s)
        ORDER BY 1, 2, 3
        """,
        (list(VECTOR_METHODS), list(ignored)),
    ).fetchall()
    return [AnnIndex(*row[:-1], options=tuple(row[-1])) for row in rows]


@dataclass(frozen=True)
class TextIndex:
    """A GIN or GiST index serving text search: `trigram` (pg_trgm, LIKE/ILIKE/similarity)
    or `tsvector` (full text, @@); `expression` is what it indexes, as SQL."""

    schema: str
    table: str
    name: str
    method: str
    kind: str
    opclass: str
    expression: str
    valid: bool
    definition: str


def text_indexes(conn: psycopg.Connection, ignored: Sequence[str]) -> list[TextIndex]:
    """Trigram and tsvector indexes (the keyword half of hybrid search)."""
    rows = conn.execute(
        """
        SELECT n.nspname, t.relname, i.relname, am.amname,
               CASE WHEN oc.opcname = ANY(%s) THEN 'trigram' ELSE 'tsvector' END, oc.opcname,
               pg_get_indexdef(i.oid, 1, true), x.indisvalid, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = i.relam
        JOIN pg_opclass oc ON oc.oid = x.indclass[0]
        WHERE am.amname IN ('gin', 'gist') AND x.indnkeyatts = 1 AND n.nspname <> ALL(%s)
          AND (oc.opcname = ANY(%s) OR oc.opcintype = 'tsvector'::regtype)
          AND t.relkind IN ('r', 'p') AND NOT t.relispartition
        ORDER BY 1, 2, 3
        """,
        (list(TRIGRAM_OPCLASSES), list(ignored), list(TRIGRAM_OPCLASSES)),
    ).fetchall()
    return [TextIndex(*row) for row in rows]


def sample_clause(schema: str, table: str, rows: int, seed: int | None = None) -> sql.Composed:
    """`schema.table TABLESAMPLE SYSTEM (p)` with p sized from the planner's row estimate
    to give about `rows` rows: a few pages read, never the whole table (a table never
    analyzed is read whole). `seed` makes the sample repeat (REPEATABLE) on the same data."""
    qualified = sql.Identifier(schema, table)
    share = sql.SQL(
        "(SELECT least(100, 100.0 * {rows} / greatest(reltuples, 1)) FROM pg_class"
        " WHERE oid = {name}::regclass)"
    ).format(rows=sql.Literal(rows), name=sql.Literal(qualified.as_string()))
    repeat = sql.SQL("") if seed is None else sql.SQL(" REPEATABLE ({})").format(sql.Literal(seed))
    return sql.SQL("{} TABLESAMPLE SYSTEM ({}){}").format(qualified, share, repeat)
