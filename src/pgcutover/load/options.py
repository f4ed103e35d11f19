"""The locustfile's own command-line options and what they resolve to: the database to load
(from targets.toml or a password-free DSN), whether it is a source, whether writes may run,
and the load configuration. No locust import: the pytest side uses it too."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgcutover.config import OPTIONS, Settings, build_settings, dsn_endpoint
from pgcutover.db import Endpoint, Role, connection
from pgcutover.errors import ConfigError
from pgcutover.inventory import discover
from pgcutover.load.config import LoadConfig, load_config

DEFAULT_PASSWORD_ENV = "PGPASSWORD"


def add_arguments(parser: Any) -> None:
    """Declare the --pg-* options on locust's parser (they also show in the web UI)."""
    group = parser.add_argument_group("pgcutover", "the PostgreSQL database to load")
    group.add_argument(
        "--pg-target",
        default="",
        help="name of an environment in targets.toml (host, user, password_env or env_file)",
    )
    group.add_argument("--pg-targets-file", default="targets.toml", help="the targets.toml to read")
    group.add_argument(
        "--pg-dsn",
        default="",
        help="postgresql://user@host:port/db without a password (instead of --pg-target)",
    )
    group.add_argument(
        "--pg-password-env",
        default=DEFAULT_PASSWORD_ENV,
        help="environment variable holding the password for --pg-dsn",
    )
    group.add_argument(
        "--pg-source",
        action="store_true",
        default=False,
        help="the database is a migration source: read-only sessions, write shapes never run",
    )
    group.add_argument(
        "--pg-writes",
        action="store_true",
        default=False,
        help="also run the write shapes (never allowed with --pg-source)",
    )
    group.add_argument(
        "--pg-load-config",
        default="",
        help="a resolved load configuration written by pgcutover (default: fixtures/load.toml "
        "with targets.toml [load] overrides)",
    )


@dataclass(frozen=True)
class LoadTarget:
    """Where a locust process sends its queries and what it may do there."""

    endpoint: Endpoint
    source: bool
    writes: bool
    config: LoadConfig

    @property
    def role(self) -> Role:
        """Sessions are read-only at the server unless writes are explicitly enabled."""
        return "target" if self.writes else "source"

    @property
    def session_options(self) -> str:
        """The app's view: its statement timeout, and row-level security applied as it is to
        the app (pgcutover's checks read with it off, to see every row or fail loudly)."""
        return f"-c statement_timeout={self.config.statement_timeout_ms} -c row_security=on"


def endpoint_from_dsn(dsn: str, password_env: str, environ: Mapping[str, str]) -> Endpoint:
    """An Endpoint from a DSN without a password (every libpq parameter kept: pgcutover
    passes its targets' DSNs here whole); the password comes from `password_env`."""
    return dsn_endpoint("locust database", dsn, "--pg-dsn", environ.get(password_env) or None)


def _settings(options: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    values = {option.name: option.default for option in OPTIONS}
    values.update(target=options.pg_target or None, targets_file=options.pg_targets_file)
    return build_settings(
        values, migrate=None, allow_destructive=False, rootdir=Path.cwd(), environ=environ
    )


def resolve(options: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> LoadTarget:
    """The parsed --pg-* options as a LoadTarget; refuses writes against a source."""
    if options.pg_source and options.pg_writes:
        raise ConfigError(
            "--pg-writes with --pg-source: pgcutover never writes to a migration source",
            "drop --pg-writes (the read shapes still run)",
        )
    if bool(options.pg_target) == bool(options.pg_dsn):
        raise ConfigError(
            "name the database to load with exactly one of --pg-target or --pg-dsn",
            "e.g. --pg-target staging (from targets.toml) or "
            "--pg-dsn postgresql://app@db:5432/app with PGPASSWORD exported",
        )
    settings = _settings(options, environ)
    if options.pg_target:
        endpoint = settings.target.endpoint  # type: ignore[union-attr]
    else:
        endpoint = endpoint_from_dsn(options.pg_dsn, options.pg_password_env, environ)
    if options.pg_load_config:
        config = LoadConfig.read(Path(options.pg_load_config))
    else:
        with connection(endpoint, role="source") as conn:  # reads the catalog only
            config = load_config(settings, discover(conn, settings))
    return LoadTarget(endpoint, bool(options.pg_source), bool(options.pg_writes), config)
