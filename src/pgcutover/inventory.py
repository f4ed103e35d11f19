"""The application's database as pgcutover found it: discovered once from the source's catalog,
overridden by configuration (fixtures/inventory.toml, targets.toml [inventory] and [search]
shapes), shared by every check and written into signoff.json, so that checks judge what is
there instead of assuming the rehearsal's own tables.

It holds the tables and their keys; the pgvector columns with their dimensions, the model and
the text column their embeddings came from (the app's own columns are those configured, by
default those of VECTOR_DB_DIMENSIONS); the ANN and text-search indexes; the filter columns;
database- and role-level settings; and the query shapes the search checks and the load test
run: nearest-neighbour per vector column with the operator its index serves, filtered
variants, text-search shapes on trigram/tsvector indexes, and lookups by filter column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgcutover.catalog import (
    DEFAULT_OPERATORS,
    OPERATOR_NAMES,
    AnnIndex,
    TextIndex,
    ann_indexes,
    text_indexes,
    user_schemas,
)
from pgcutover.config import Settings
from pgcutover.errors import ConfigError
from pgcutover.migrate.roles import referenced_roles

WHERE = "fixtures/inventory.toml (or [inventory] in targets.toml)"
SEARCH_WHERE = "fixtures/search.toml (or [search] in targets.toml)"
#: k for discovered nearest-neighbour and text-search shapes.
DISCOVERED_K = 10
#: Vector types whose values the search checks can read as dense float32 vectors.
DENSE_TYPES = ("vector", "halfvec")

TABLES = """
SELECT n.nspname, c.relname, c.relkind = 'p', c.relispartition,
       (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i
        JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE i.inhrelid = c.oid LIMIT 1),
       coalesce((SELECT array_agg(a.attname ORDER BY array_position(x.indkey::int2[], a.attnum))
                 FROM pg_index x JOIN pg_attribute a
                   ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)
                 WHERE x.indrelid = c.oid AND x.indisprimary), '{}'),
       c.relreplident, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
       greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%(ignored)s)
  AND n.nspname !~ '^pg_(temp|toast_temp)_'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

#: Columns of pgvector's types (found through the extension, whatever schema it lives in),
#: and bit columns an ANN index serves.
VECTOR_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, t.typname, tn.nspname,
       CASE WHEN a.atttypmod > 0 THEN a.atttypmod END, c.relispartition
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_namespace tn ON tn.oid = t.typnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname <> ALL(%(ignored)s) AND n.nspname !~ '^pg_(temp|toast_temp)_'
  AND ((t.typname IN ('vector', 'halfvec', 'sparsevec')
        AND EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                    WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                      AND d.deptype = 'e' AND e.extname = 'vector'))
       OR (t.typname = 'bit' AND EXISTS (
            SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_am am ON am.oid = i.relam
            WHERE x.indrelid = c.oid AND a.attnum = ANY(x.indkey)
              AND am.amname IN ('hnsw', 'ivfflat'))))
ORDER BY 1, 2, 3
"""

#: Text columns per table (candidates for the text an embedding was made from), domains over
#: text included.
TEXT_COLUMNS = """
SELECT n.nspname || '.' || c.relname, a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname <> ALL(%(ignored)s)
  AND (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)
      IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
"""

#: Candidate filter columns, with why each is one: a column a row-level security policy reads,
#: the first column of a foreign key that a btree index leads with, or the leading column of a
#: non-unique btree index.
FILTER_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, 'row-level security policy' AS reason, 1 AS rank
FROM pg_policy p
JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid
  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = p.polrelid AND d.refobjsubid > 0
JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
WHERE n.nspname <> ALL(%(ignored)s)
UNION
SELECT n.nspname, c.relname, a.attname, 'indexed foreign key', 2
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1]
WHERE k.contype = 'f' AND n.nspname <> ALL(%(ignored)s)
  AND EXISTS (SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
              JOIN pg_am am ON am.oid = i.relam
              WHERE x.indrelid = c.oid AND x.indkey[0] = k.conkey[1] AND am.amname = 'btree')
UNION
SELECT n.nspname, c.relname, a.attname, 'btree index', 3
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0]
WHERE am.amname = 'btree' AND NOT x.indisunique AND x.indkey[0] <> 0
  AND n.nspname <> ALL(%(ignored)s)
ORDER BY 1, 2, 5, 3
"""

#: Settings of this database, and of the given roles (everywhere or in this database).
SETTINGS = """
SELECT CASE WHEN s.setrole = 0 THEN 'database'
            WHEN s.setdatabase = 0 THEN 'role' ELSE 'role in database' END,
       r.rolname, cfg
FROM pg_db_role_setting s
LEFT JOIN pg_roles r ON r.oid = s.setrole
CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
   OR (s.setdatabase = 0 AND r.rolname = ANY(%(roles)s))
ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class Table:
    """A table of the application's schemas, with its key and its row-level security."""

    schema: str
    name: str
    partitioned: bool
    partition: bool
    partition_of: str | None
    primary_key: tuple[str, ...]
    replica_identity: str
    rls: bool
    rls_forced: bool
    owner: str
    estimated_rows: int
    bytes: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class EmbeddingColumn:
    """A pgvector column and what pgcutover knows of its embeddings: the app's own columns
    (`app`) are judged against the configured dimension and model; every other one against
    the source only. `text_column` is the text its embeddings were made from, when known."""

    schema: str
    table: str
    column: str
    type_name: str
    type_schema: str
    dimensions: int | None
    partition: bool
    app: bool
    model: str | None
    text_column: str | None
    text_column_from: str
    #: The dimension the column is declared with (None: `vector` without one); `dimensions`
    #: is that, or for an undeclared column the dimension of its stored vectors.
    declared: int | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"

    @property
    def dense(self) -> bool:
        """True when its values read as dense float vectors (the recall checks need that)."""
        return self.type_name in DENSE_TYPES


@dataclass(frozen=True)
class FilterColumn:
    """A column the app filters a vector table by, and why pgcutover thinks so."""

    schema: str
    table: str
    column: str
    reasons: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass(frozen=True)
class Setting:
    """One `name=value` of ALTER DATABASE ... SET, ALTER ROLE ... SET or ALTER ROLE ... IN
    DATABASE ... SET (`role` None for the database's own)."""

    scope: str
    role: str | None
    name: str
    value: str

    @property
    def key(self) -> str:
        """How both sides' settings are paired: scope, role and setting name."""
        return f"{self.scope}:{self.role or ''}:{self.name}"


@dataclass(frozen=True)
class Shape:
    """One nearest-neighbour query of the app:
    `SELECT ... FROM table [WHERE filter_column = $f] ORDER BY <order> <op> $q LIMIT k`,
    where <order> is the column, or the expression an expression index is built on (e.g.
    `(embedding)::halfvec(384)`) so that the index can serve it."""

    name: str
    schema: str
    table: str
    column: str
    operator: str
    k: int
    filter_column: str | None = None
    discovered: bool = False
    type_name: str = "vector"
    type_schema: str = "public"
    expression: str | None = None
    column_type: str = "vector"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"

    @property
    def dense(self) -> bool:
        """True when the column's values read as dense float vectors (recall needs that)."""
        return self.column_type in DENSE_TYPES and self.type_name in DENSE_TYPES

    def stored(self) -> sql.Composable:
        """The column's values as pgvector `vector` (a halfvec column is cast), for reading
        them as float32 vectors."""
        column = sql.Identifier(self.column)
        if self.column_type == "vector":
            return column
        return sql.SQL("{}::{}.vector").format(column, sql.Identifier(self.type_schema))

    def ordered(self) -> sql.Composable:
        """The expression the query orders by."""
        return sql.SQL(self.expression) if self.expression else sql.Identifier(self.column)

    def query_type(self) -> sql.Composable:
        """The type the query value is cast to, schema-qualified (pgvector may live in any
        schema, e.g. Supabase's `extensions`)."""
        return sql.SQL("{}.{}").format(
            sql.Identifier(self.type_schema), sql.Identifier(self.type_name)
        )

    def query(self, filter_expression: sql.Composable | None = None) -> sql.Composed:
        """The shape as SQL returning each row's distance; parameters %(q)s, %(f)s, %(k)s.
        `filter_expression` replaces the filter column (e.g. a cast the btree cannot serve)."""
        distance = sql.SQL("{} {} %(q)s::{}").format(
            self.ordered(), sql.SQL(self.operator), self.query_type()
        )
        where = sql.SQL("")
        if self.filter_column is not None:
            left = filter_expression or sql.Identifier(self.filter_column)
            where = sql.SQL(" WHERE {} = %(f)s").format(left)
        return sql.SQL("SELECT {d} FROM {t}{w} ORDER BY {d} LIMIT %(k)s").format(
            d=distance, t=sql.Identifier(self.schema, self.table), w=where
        )


@dataclass(frozen=True)
class TextShape:
    """A keyword or fuzzy search the app's text-search index serves (hybrid search):
    trigram `<expr> ILIKE %(t)s` or full text `<expr> @@ plainto_tsquery('simple', %(t)s)`."""

    name: str
    schema: str
    table: str
    index: str
    kind: str
    expression: str
    k: int = DISCOVERED_K

    def query(self) -> sql.Composed:
        """The search as SQL with the parameter %(t)s (see `term`)."""
        match = (
            sql.SQL("{} ILIKE %(t)s")
            if self.kind == "trigram"
            else sql.SQL("{} @@ plainto_tsquery('simple', %(t)s)")
        ).format(sql.SQL(self.expression))
        return sql.SQL("SELECT 1 FROM {} WHERE {} LIMIT {}").format(
            sql.Identifier(self.schema, self.table), match, sql.Literal(self.k)
        )

    def term_query(self) -> sql.Composed:
        """A search term taken from the stored data: a word of the text (trigram, wrapped in
        % for ILIKE) or a frequent lexeme of the tsvector."""
        table = sql.Identifier(self.schema, self.table)
        expression = sql.SQL(self.expression)
        if self.kind == "trigram":
            return sql.SQL(
                "SELECT '%%' || lower((regexp_match({e}, '[[:alpha:]]{{6,}}'))[1]) || '%%' AS t"
                " FROM {t} WHERE {e} ~ '[[:alpha:]]{{6,}}' LIMIT 1"
            ).format(e=expression, t=table)
        inner = sql.SQL("SELECT {} FROM {} LIMIT 200").format(expression, table)
        return sql.SQL("SELECT word AS t FROM ts_stat({}) ORDER BY ndoc DESC, word LIMIT 1").format(
            sql.Literal(inner.as_string())
        )


@dataclass(frozen=True)
class Lookup:
    """An equality lookup the app filters by ("Slow queries after migration"): the target must
    answer it from an index where the source does."""

    name: str
    schema: str
    table: str
    column: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class InventoryConfig:
    """The [inventory] section, validated."""

    text_columns: tuple[str, ...]
    app_columns: tuple[str, ...]
    max_filters: int
    readiness_blocking: bool
    ignore_roles: tuple[str, ...]
    columns: dict[str, dict[str, Any]] = field(hash=False)


@dataclass(frozen=True)
class Inventory:
    """What the source database holds, as every check reads it."""

    database: str
    schemas: tuple[str, ...]
    tables: tuple[Table, ...]
    vectors: tuple[EmbeddingColumn, ...]
    ann_indexes: tuple[AnnIndex, ...]
    text_indexes: tuple[TextIndex, ...]
    filters: tuple[FilterColumn, ...]
    roles: tuple[str, ...]
    settings: tuple[Setting, ...]
    shapes: tuple[Shape, ...]
    text_shapes: tuple[TextShape, ...]
    lookups: tuple[Lookup, ...]
    notes: tuple[str, ...] = ()

    def table(self, qualified: str) -> Table | None:
        """A table by `schema.name`."""
        return next((t for t in self.tables if t.qualified == qualified), None)

    def vector(self, qualified: str) -> EmbeddingColumn | None:
        """A vector column by `schema.table.column`."""
        return next((v for v in self.vectors if v.qualified == qualified), None)

    @property
    def app_vectors(self) -> tuple[EmbeddingColumn, ...]:
        """The app's own vector columns (judged against VECTOR_DB_DIMENSIONS and the model)."""
        return tuple(v for v in self.vectors if v.app)

    def to_json(self) -> dict[str, Any]:
        """The `inventory` block of signoff.json (and the state shared between workers)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Inventory:
        """Inverse of to_json."""
        return _build(cls, data)


def _build(kind: type, data: Any) -> Any:
    """A (nested) frozen dataclass from its asdict() form, lists back to tuples."""
    values = {}
    for item in dataclasses.fields(kind):
        if item.name not in data:
            continue
        value = data[item.name]
        element = _ELEMENTS.get((kind.__name__, item.name))
        if element is not None:
            value = tuple(_build(element, entry) for entry in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[item.name] = value
    return kind(**values)


_ELEMENTS: dict[tuple[str, str], type] = {
    ("Inventory", "tables"): Table,
    ("Inventory", "vectors"): EmbeddingColumn,
    ("Inventory", "ann_indexes"): AnnIndex,
    ("Inventory", "text_indexes"): TextIndex,
    ("Inventory", "filters"): FilterColumn,
    ("Inventory", "settings"): Setting,
    ("Inventory", "shapes"): Shape,
    ("Inventory", "text_shapes"): TextShape,
    ("Inventory", "lookups"): Lookup,
}


def _strings(section: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{WHERE}: {key} must be a list of strings", f"fix {key} in {WHERE}")
    return tuple(value)


def inventory_config(settings: Settings) -> InventoryConfig:
    """The [inventory] section, validated; errors name the key and the fix."""
    section = settings.section("inventory")
    max_filters = section.get("max_filters", 2)
    if not isinstance(max_filters, int) or isinstance(max_filters, bool) or max_filters < 0:
        raise ConfigError(
            f"{WHERE}: max_filters must be a whole number >= 0, got {max_filters!r}",
            "set max_filters = 2 (or 0 to discover no filtered shapes)",
        )
    blocking = section.get("readiness_blocking", False)
    if not isinstance(blocking, bool):
        raise ConfigError(
            f"{WHERE}: readiness_blocking must be true or false, got {blocking!r}",
            "set readiness_blocking = true or false",
        )
    columns = section.get("columns", {})
    allowed = {"model", "text_column", "filter_columns"}
    for name, entry in columns.items():
        if not isinstance(entry, dict) or not set(entry) <= allowed:
            raise ConfigError(
                f"{WHERE}: [inventory.columns.{name!r}] may hold only {sorted(allowed)}",
                "see fixtures/inventory.toml",
            )
        if name.count(".") != 2:
            raise ConfigError(
                f"{WHERE}: [inventory.columns.{name!r}] must name schema.table.column",
                'quote the name: [inventory.columns."public.items.embedding"]',
            )
    app_columns = _strings(section, "app_columns")
    for name in app_columns:
        if name.count(".") != 2:
            raise ConfigError(
                f"{WHERE}: app_columns entry {name!r} must be schema.table.column",
                "name each of the app's vector columns as schema.table.column",
            )
    return InventoryConfig(
        text_columns=_strings(section, "text_columns"),
        app_columns=app_columns,
        max_filters=max_filters,
        readiness_blocking=blocking,
        ignore_roles=_strings(section, "ignore_roles"),
        columns=dict(columns),
    )


def discover(conn: psycopg.Connection, settings: Settings) -> Inventory:
    """Read the inventory from the source's catalog (a connection to it) and apply the
    configuration; a configured shape or column the source lacks is a ConfigError."""
    config = inventory_config(settings)
    ignored = list(settings.ignored_schemas)
    params = {"ignored": ignored}
    tables = tuple(
        Table(*row[:5], tuple(row[5]), *row[6:])  # type: ignore[misc]
        for row in conn.execute(TABLES, params).fetchall()
    )
    indexes = tuple(ann_indexes(conn, settings.ignored_schemas))
    texts: dict[str, list[str]] = {}
    for table, column in conn.execute(TEXT_COLUMNS, params).fetchall():
        texts.setdefault(table, []).append(column)
    notes: list[str] = []
    vectors = _vectors(conn, params, settings, config, texts, notes)
    filter_rows = conn.execute(FILTER_COLUMNS, params).fetchall()
    filters = _filters(filter_rows, vectors, config)
    roles = tuple(role.name for role in referenced_roles(conn, settings.ignored_schemas))
    login = str(conn.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
    found_text = tuple(text_indexes(conn, settings.ignored_schemas))
    return Inventory(
        database=str(conn.info.dbname),
        schemas=tuple(user_schemas(conn, settings.ignored_schemas)),
        tables=tables,
        vectors=vectors,
        ann_indexes=indexes,
        text_indexes=found_text,
        filters=filters,
        roles=roles,
        settings=read_settings(conn, [*roles, login]),
        shapes=_shapes(settings, vectors, indexes, filters, config),
        text_shapes=tuple(_text_shape(index) for index in found_text if index.valid),
        lookups=_lookups(filter_rows, filters),
        notes=tuple(notes),
    )


def read_settings(conn: psycopg.Connection, roles: Sequence[str]) -> tuple[Setting, ...]:
    """The database's own settings and those of `roles` (everywhere or in this database)."""
    rows = conn.execute(SETTINGS, {"roles": list(roles)}).fetchall()
    found = []
    for scope, role, entry in rows:
        name, _, value = entry.partition("=")
        found.append(Setting(scope, role, name, value))
    return tuple(found)


def _vectors(
    conn: psycopg.Connection,
    params: dict[str, Any],
    settings: Settings,
    config: InventoryConfig,
    texts: dict[str, list[str]],
    notes: list[str],
) -> tuple[EmbeddingColumn, ...]:
    """Every vector column with the app flag, model and text column applied."""
    rows = conn.execute(VECTOR_COLUMNS, params).fetchall()
    found = {f"{r[0]}.{r[1]}.{r[2]}" for r in rows}
    unknown = sorted((set(config.app_columns) | set(config.columns)) - found)
    if unknown:
        raise ConfigError(
            f"{WHERE} names vector columns the source does not have: {', '.join(unknown)} "
            f"(the source has: {', '.join(sorted(found)) or 'none'})",
            "fix app_columns / [inventory.columns] to name the app's vector columns",
        )
    columns = []
    for schema, table, column, type_name, type_schema, declared, partition in rows:
        qualified = f"{schema}.{table}.{column}"
        override = config.columns.get(qualified, {})
        dimensions = declared
        if declared is None and type_name in DENSE_TYPES:
            dimensions = _stored_dimensions(conn, schema, table, column, type_schema)
            if dimensions is not None:
                notes.append(
                    f"{qualified} is declared without a dimension; its stored vectors have "
                    f"{dimensions}"
                )
        app = (
            qualified in config.app_columns
            if config.app_columns
            else dimensions == settings.vector_dimensions
        )
        text_column, text_from = _text_column(
            f"{schema}.{table}", override, texts, config.text_columns
        )
        if override.get("text_column") and text_column is None:
            raise ConfigError(
                f"{WHERE}: [inventory.columns.{qualified!r}] text_column "
                f"{override['text_column']!r} is not a text column of {schema}.{table}",
                "name a text, varchar or char column of the same table",
            )
        if text_column is None and app and not partition:
            notes.append(
                f"{qualified}: no text column found (tried {', '.join(config.text_columns)}); "
                f"set text_column in [inventory.columns.{qualified!r}] to check embedding drift"
            )
        columns.append(
            EmbeddingColumn(
                schema=schema,
                table=table,
                column=column,
                type_name=type_name,
                type_schema=type_schema,
                dimensions=dimensions,
                declared=declared,
                partition=partition,
                app=app,
                model=override.get("model") or (settings.embedding_model if app else None),
                text_column=text_column,
                text_column_from=text_from,
            )
        )
    return tuple(columns)


def _stored_dimensions(
    conn: psycopg.Connection, schema: str, table: str, column: str, type_schema: str
) -> int | None:
    """The dimension of one stored vector of a column declared without one (None: empty)."""
    row = conn.execute(
        sql.SQL("SELECT {}.vector_dims({}) FROM {} WHERE {} IS NOT NULL LIMIT 1").format(
            sql.Identifier(type_schema),
            sql.Identifier(column),
            sql.Identifier(schema, table),
            sql.Identifier(column),
        )
    ).fetchone()
    return int(row[0]) if row else None


def _text_column(
    table: str,
    override: Mapping[str, Any],
    texts: dict[str, list[str]],
    candidates: Sequence[str],
) -> tuple[str | None, str]:
    present = texts.get(table, [])
    if override.get("text_column"):
        name = str(override["text_column"])
        return (name, "configured") if name in present else (None, "")
    for name in candidates:
        if name in present:
            return name, "naming rule"
    return None, ""


def _filters(
    rows: Sequence[tuple[str, str, str, str, int]],
    vectors: Sequence[EmbeddingColumn],
    config: InventoryConfig,
) -> tuple[FilterColumn, ...]:
    """Filter columns of the tables holding vector columns: configured ones first, then
    discovered ones (RLS policy columns, indexed foreign keys, btree-indexed columns)."""
    vector_tables = {(v.schema, v.table) for v in vectors if not v.partition}
    vector_names = {(v.schema, v.table, v.column) for v in vectors}
    reasons: dict[tuple[str, str, str], list[str]] = {}
    for qualified, override in config.columns.items():
        schema, table, _ = qualified.split(".")
        for column in override.get("filter_columns", []):
            reasons.setdefault((schema, table, str(column)), []).append("configured")
    for schema, table, column, reason, _ in rows:
        if (schema, table) in vector_tables and (schema, table, column) not in vector_names:
            reasons.setdefault((schema, table, column), []).append(reason)
    return tuple(
        FilterColumn(schema, table, column, tuple(why))
        for (schema, table, column), why in reasons.items()
    )


def _operators(column: EmbeddingColumn, indexes: Sequence[AnnIndex]) -> list[AnnIndex | None]:
    """The valid ANN indexes on a column, one per (expression, operator) they serve; [None]
    when none does (the shape then orders by the type's default operator)."""
    served: dict[tuple[str | None, str], AnnIndex] = {}
    for index in indexes:
        if (
            (index.schema, index.table, index.column)
            == (column.schema, column.table, column.column)
            and index.valid
            and index.operator
        ):
            served.setdefault((index.expression, index.operator), index)
    return list(served.values()) or [None]


def _configured_shapes(settings: Settings) -> list[Shape]:
    """[[search.shapes]] from configuration, validated."""
    entries = settings.section("search").get("shapes", [])
    shapes = [configured_shape(entry, i) for i, entry in enumerate(entries)]
    names = [shape.name for shape in shapes]
    if len(set(names)) != len(names):
        raise ConfigError(f"search shapes repeat a name: {names}", "give every shape its own name")
    return shapes


def _shapes(
    settings: Settings,
    vectors: Sequence[EmbeddingColumn],
    indexes: Sequence[AnnIndex],
    filters: Sequence[FilterColumn],
    config: InventoryConfig,
) -> tuple[Shape, ...]:
    """The configured shapes, then for every other vector column (partitions are searched
    through their parent) one shape per index it has, and filtered variants of the first."""
    configured = _configured_shapes(settings)
    columns = {v.qualified: v for v in vectors}
    shapes: list[Shape] = []
    for shape in configured:
        column = columns.get(shape.qualified)
        if column is None:
            raise ConfigError(
                f"search shape {shape.name!r}: {shape.qualified} is not a vector column on the "
                f"source (the source has: {', '.join(sorted(columns)) or 'none'})",
                f"fix the shape in {SEARCH_WHERE} so it names the app's vector table",
            )
        shapes.append(
            dataclasses.replace(
                shape,
                type_name=column.type_name,
                type_schema=column.type_schema,
                column_type=column.type_name,
            )
        )
    named = {shape.qualified for shape in configured}
    for column in vectors:
        if column.qualified in named or column.partition:
            continue
        served = _operators(column, indexes)
        for position, index in enumerate(served):
            operator = index.operator if index else DEFAULT_OPERATORS[column.type_name]
            suffix = "" if position == 0 else f".{OPERATOR_NAMES.get(operator, 'other')}"
            base = Shape(
                name=column.qualified + suffix,
                schema=column.schema,
                table=column.table,
                column=column.column,
                operator=operator,  # type: ignore[arg-type]
                k=DISCOVERED_K,
                discovered=True,
                type_name=index.input_type if index else column.type_name,
                type_schema=index.input_type_schema if index else column.type_schema,
                expression=index.expression if index else None,
                column_type=column.type_name,
            )
            shapes.append(base)
            if position:
                continue
            mine = [f for f in filters if (f.schema, f.table) == (column.schema, column.table)]
            for found in mine[: config.max_filters]:
                shapes.append(
                    dataclasses.replace(
                        base, name=f"{base.name}.by_{found.column}", filter_column=found.column
                    )
                )
    return tuple(shapes)


def _text_shape(index: TextIndex) -> TextShape:
    return TextShape(
        name=f"text.{index.schema}.{index.name}",
        schema=index.schema,
        table=index.table,
        index=index.name,
        kind=index.kind,
        expression=index.expression,
    )


def _lookups(
    rows: Sequence[tuple[str, str, str, str, int]], filters: Sequence[FilterColumn]
) -> tuple[Lookup, ...]:
    """Equality lookups an index serves: every indexed foreign key (the joins of the app's
    relational schema) and every filter column of a vector table a btree serves."""
    served = ("indexed foreign key", "btree index")
    found = {(s, t, c) for s, t, c, reason, _ in rows if reason == "indexed foreign key"}
    found |= {(f.schema, f.table, f.column) for f in filters if any(r in served for r in f.reasons)}
    return tuple(
        Lookup(f"lookup.{schema}.{table}.{column}", schema, table, column)
        for schema, table, column in sorted(found)
    )


def _value(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing {key}", f"add {key} to {SEARCH_WHERE}")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(
            f"{where}: {key} must be a {kind.__name__}, got {value!r}",
            f"fix {key} in {SEARCH_WHERE}",
        )
    return value


def configured_shape(entry: Mapping[str, Any], index: int) -> Shape:
    """One [[search.shapes]] entry: name, table (schema.table), column, operator, k and an
    optional filter_column."""
    where = f"search shape #{index + 1}"
    name = _value(entry, "name", str, where)
    where = f"search shape {name!r}"
    schema, dot, table = _value(entry, "table", str, where).rpartition(".")
    if not table:
        raise ConfigError(f"{where}: table is empty", "name it as schema.table")
    operator = _value(entry, "operator", str, where)
    if operator not in OPERATOR_NAMES:
        raise ConfigError(
            f"{where}: operator {operator!r} is not a pgvector distance operator",
            f"use one of {', '.join(OPERATOR_NAMES)}",
        )
    k = _value(entry, "k", int, where)
    if k <= 0:
        raise ConfigError(f"{where}: k must be positive", "set k to the app's LIMIT")
    filter_column = entry.get("filter_column")
    if filter_column is not None and not isinstance(filter_column, str):
        raise ConfigError(f"{where}: filter_column must be a string", "name one column")
    return Shape(
        name=name,
        schema=schema if dot else "public",
        table=table,
        column=_value(entry, "column", str, where),
        operator=operator,
        k=k,
        filter_column=filter_column,
    )
