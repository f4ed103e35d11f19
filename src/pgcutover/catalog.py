"""Catalog queries shared by the migration and the checks: what a database holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

#: pgvector's approximate-nearest-neighbour index methods.
VECTOR_METHODS = ("hnsw", "ivfflat")
#: pgvector operator classes and the distance operator each one serves.
OPCLASS_OPERATORS = {
    "vector_cosine_ops": "<=>",
    "vector_l2_ops": "<->",
    "vector_ip_ops": "<#>",
    "vector_l1_ops": "<+>",
}


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


def user_schemas(conn: psycopg.Connection, ignored: Sequence[str]) -> list[str]:
    """Schemas the migration carries: everything but system schemas, temp/toast and `ignored`."""
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname <> ALL(%s)"
        " AND nspname !~ '^pg_(temp|toast_temp)_' ORDER BY 1",
        (list(ignored),),
    ).fetchall()
    return [row[0] for row in rows]


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
    """An HNSW or ivfflat index on one vector column, with its operator class."""

    schema: str
    table: str
    name: str
    method: str
    column: str | None
    opclass: str
    valid: bool
    definition: str

    @property
    def operator(self) -> str | None:
        return OPCLASS_OPERATORS.get(self.opclass)


def ann_indexes(conn: psycopg.Connection, ignored: Sequence[str]) -> list[AnnIndex]:
    """HNSW and ivfflat indexes with the column and operator class they serve (column None
    for an expression index, e.g. on `embedding::halfvec(384)`)."""
    rows = conn.execute(
        """
        SELECT n.nspname, t.relname, i.relname, am.amname, a.attname, oc.opcname,
               x.indisvalid, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = i.relam
        LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
        JOIN pg_opclass oc ON oc.oid = x.indclass[0]
        WHERE am.amname = ANY(%s) AND n.nspname <> ALL(%s)
        ORDER BY 1, 2, 3
        """,
        (list(VECTOR_METHODS), list(ignored)),
    ).fetchall()
    return [AnnIndex(*row) for row in rows]
