"""Run expectation suites with great-expectations on each side, read-only, in memory.

The context is ephemeral: connections come from pgcutover's own `connect` (read-only at the
server, password never in a connection string), nothing but the Data Docs touches the disk,
and those are written straight into the report folder.

Rows stay in the database at any size: with a SQL datasource great-expectations computes
column expectations as aggregates (sum(CASE ...), count(*) OVER (PARTITION BY ...)) and
reads at most a LIMITed sample of unexpected values. The one exception is
unexpected_rows_expectation, which fetches its query's whole result (psycopg buffers all of
it before great-expectations keeps 200 rows): its query is therefore wrapped to return at
most UNEXPECTED_ROWS_READ rows, each carrying the exact number of offending rows. Those
expectations run as a suite of their own per table with result_format COMPLETE (the rows,
and so the exact count, come back only in that format; for column expectations COMPLETE
would read every unexpected value, so they stay SUMMARY).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent.interfaces import GxDatasourceWarning
from great_expectations.exceptions import ExpectationNotFoundError
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from pgvector.sqlalchemy import HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy.dialects.postgresql.base import ischema_names

from pgcutover.catalog import user_tables
from pgcutover.db import Endpoint, connect, connection
from pgcutover.errors import ConfigError
from pgcutover.expectations.suites import Expectation

SITE = "pgcutover"
META_KEY = "pgcutover_id"
SAMPLE = 5
SAMPLE_WIDTH = 80
UNEXPECTED_ROWS = "unexpected_rows_expectation"
#: Offending rows an unexpected_rows_expectation reads back (the Data Docs show them).
UNEXPECTED_ROWS_READ = 20
#: The column the wrapped query adds: how many rows offend in all.
UNEXPECTED_TOTAL = "pgcutover_unexpected_rows"


@dataclass(frozen=True)
class Observation:
    """What one expectation found on one side: `unexpected` counts the offending values or
    rows, `error` says why great-expectations could not evaluate it."""

    success: bool
    unexpected: int | None = None
    total: int | None = None
    sample: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "unexpected": self.unexpected,
            "rows": self.total,
            "sample": self.sample,
            "error": self.error,
        }


def _register_pgvector_types() -> None:
    """Teach SQLAlchemy's reflection pgvector's types: without this every column expectation
    on a table with a vector column fails ("Can't generate DDL for NullType()")."""
    ischema_names.update({"vector": VECTOR, "halfvec": HALFVEC, "sparsevec": SPARSEVEC})


def _context(docs_dir: Path | None) -> Any:
    """An in-memory data context; its only site writes Data Docs into docs_dir."""
    sites = {}
    if docs_dir is not None:
        sites[SITE] = {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SAMPLE_WIDTH else text[: SAMPLE_WIDTH - 1] + "…"


def _observe(result: Any, endpoint: Endpoint) -> Observation:
    """One great-expectations result as an Observation (errors redacted)."""
    info = result.exception_info or {}
    failures = [info] if "raised_exception" in info else list(info.values())
    for failure in failures:
        if isinstance(failure, Mapping) and failure.get("raised_exception"):
            message = str(failure.get("exception_message") or "great-expectations raised")
            return Observation(success=False, error=endpoint.redact(message))
    found = result.result or {}
    unexpected = found.get("unexpected_count", found.get("observed_value"))
    values = found.get("partial_unexpected_list") or []
    rows = (found.get("details") or {}).get("unexpected_rows") or []
    if rows and isinstance(rows[0], Mapping) and UNEXPECTED_TOTAL in rows[0]:
        unexpected = int(rows[0][UNEXPECTED_TOTAL])
        values = [{k: v for k, v in row.items() if k != UNEXPECTED_TOTAL} for row in rows]
    sample = [_short(value) for value in values[:SAMPLE]]
    return Observation(
        success=bool(result.success),
        unexpected=unexpected if isinstance(unexpected, int) else None,
        total=found.get("element_count"),
        sample=sample,
    )


def _suites(context: Any, expectations: list[Expectation]) -> dict[tuple[str, str, str], Any]:
    """One great-expectations suite per (suite file, table, result format), shared by both
    sides: unexpected-rows queries apart (COMPLETE), column expectations (SUMMARY)."""
    suites: dict[tuple[str, str, str], Any] = {}
    for expectation in expectations:
        rows = expectation.type == UNEXPECTED_ROWS
        key = (expectation.suite, expectation.qualified_table, "COMPLETE" if rows else "SUMMARY")
        if key not in suites:
            name = f"{expectation.suite}.{expectation.qualified_table}" + (
                ".unexpected_rows" if rows else ""
            )
            suites[key] = context.suites.add(gx.ExpectationSuite(name=name))
        configuration = ExpectationConfiguration(
            type=expectation.type,
            kwargs=_bounded(expectation),
            meta={META_KEY: expectation.check_id},
        )
        try:
            suites[key].add_expectation(configuration.to_domain_obj())
        except ExpectationNotFoundError:
            raise ConfigError(
                f"suite {expectation.suite}: {expectation.type!r} is not a great-expectations "
                "expectation",
                "use a name from https://greatexpectations.io/expectations "
                "(e.g. expect_column_values_to_be_unique)",
            ) from None
        except (TypeError, ValueError) as error:
            raise ConfigError(
                f"suite {expectation.suite}: {expectation.check_id} has bad arguments: {error}",
                "fix the expectation's arguments in the suite file",
            ) from None
    return suites


def _bounded(expectation: Expectation) -> dict[str, Any]:
    """The expectation's arguments, an unexpected-rows query wrapped so that at most
    UNEXPECTED_ROWS_READ rows cross the network, each with the exact count of offenders."""
    query = expectation.kwargs.get("unexpected_rows_query")
    if expectation.type != UNEXPECTED_ROWS or not isinstance(query, str):
        return expectation.kwargs
    inner = query.strip().rstrip(";")
    wrapped = (
        f"SELECT unexpected.*, count(*) OVER () AS {UNEXPECTED_TOTAL} FROM ({inner}) AS "
        f"unexpected LIMIT {UNEXPECTED_ROWS_READ}"
    )
    return {**expectation.kwargs, "unexpected_rows_query": wrapped}


def _tables(endpoint: Endpoint) -> tuple[set[str], list[str]]:
    """The side's tables, and the schemas its extensions live in (Supabase keeps them in
    `extensions`: pgvector's type and vector_dims() must resolve there too)."""
    with connection(endpoint, role="source") as conn:
        tables = {f"{schema}.{table}" for schema, table in user_tables(conn, ())}
        rows = conn.execute(
            "SELECT DISTINCT n.nspname FROM pg_extension e"
            " JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE n.nspname <> 'pg_catalog' ORDER BY 1"
        ).fetchall()
    return tables, [row[0] for row in rows]


def _datasource(
    context: Any, side: str, schema: str, endpoint: Endpoint, extensions: list[str]
) -> Any:
    """A datasource for one schema of one side, through pgcutover's `connect`: read-only at
    the server (expectations never write), the schema then the extensions' schemas as
    search_path."""
    path = ",".join(_quoted(name) for name in dict.fromkeys([schema, *extensions]))
    creator = functools.partial(
        connect,
        endpoint,
        role="source",
        autocommit=False,
        options=f"-c search_path={path}",
    )
    with warnings.catch_warnings():
        # it suggests add_postgres, which needs the password in a connection string
        warnings.simplefilter("ignore", GxDatasourceWarning)
        return context.data_sources.add_sql(
            name=f"{side} {schema}",
            connection_string="postgresql+psycopg://",
            kwargs={"creator": creator},
        )


def _quoted(schema: str) -> str:
    """A schema name as search_path takes it inside libpq's options (spaces escaped)."""
    return '"' + schema.replace('"', '""').replace(" ", "\\ ") + '"'


def run(
    endpoints: Mapping[str, Endpoint], expectations: list[Expectation], docs_dir: Path | None
) -> dict[str, dict[str, Observation]]:
    """side -> check id -> Observation, for every expectation whose table exists on that
    side; Data Docs of all sides go to docs_dir when given."""
    _register_pgvector_types()
    context = _context(docs_dir)
    suites = _suites(context, expectations)
    observations: dict[str, dict[str, Observation]] = {}
    for side, endpoint in endpoints.items():
        observations[side] = {}
        present, extensions = _tables(endpoint)
        datasources: dict[str, Any] = {}
        try:
            for (_, table, result_format), suite in suites.items():
                if table not in present:
                    continue
                schema, _, name = table.partition(".")
                if schema not in datasources:
                    datasources[schema] = _datasource(context, side, schema, endpoint, extensions)
                asset = datasources[schema].add_table_asset(name=suite.name, table_name=name)
                definition = context.validation_definitions.add(
                    gx.ValidationDefinition(
                        name=f"{side}: {suite.name}",
                        data=asset.add_batch_definition_whole_table("whole table"),
                        suite=suite,
                    )
                )
                for result in definition.run(result_format=result_format).results:
                    check_id = result.expectation_config.meta[META_KEY]
                    observations[side][check_id] = _observe(result, endpoint)
        finally:
            for datasource in datasources.values():  # close pooled connections now: they
                datasource.get_execution_engine().close()  # count against max_connections,
                datasource.get_engine().dispose()  # and a source's sessions block its copies
    if docs_dir is not None:
        context.build_data_docs(site_names=[SITE])
    return observations
